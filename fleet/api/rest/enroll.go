package rest

import "time"

// DeviceAdd is the body of POST /api/v1/devices: register a device for
// enrollment.
type DeviceAdd struct {
	ID     string            `json:"id"`
	Labels map[string]string `json:"labels,omitempty"`
}

// DeviceAdded is the answer to POST /api/v1/devices: the one-time token
// the device enrolls with (`edge-agent enroll --token`), shown only here.
type DeviceAdded struct {
	ID        string    `json:"id"`
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// DeviceRevoked is the answer to POST /api/v1/devices/{id}/revoke.
// Disconnected says whether a live MQTT session was dropped.
type DeviceRevoked struct {
	ID           string    `json:"id"`
	RevokedAt    time.Time `json:"revoked_at"`
	Disconnected bool      `json:"disconnected"`
}
