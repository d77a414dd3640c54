package rest

import "time"

// Key sources, for Key.Source.
const (
	// KeySourceFleetd is a key of fleetd's key ring (made by fleetd, or
	// taken over from its old key file).
	KeySourceFleetd = "fleetd"
	// KeySourceConfig is a key from a file of fleetd's config
	// (ota.signing_key or ota.public_keys).
	KeySourceConfig = "config"
)

// KeyFormatPEM is the format query value (GET /api/v1/keys/{id}?format=pem)
// that answers the public key file itself, as GET /api/v1/keys/{id}.pub does.
const KeyFormatPEM = "pem"

// SigningKeyID names the signing key in GET /api/v1/keys/{id}, whatever its id.
const SigningKeyID = "signing"

// Key is one of fleetd's signing keys: the body of GET /api/v1/keys/{id}.
type Key struct {
	ID        string `json:"id"`
	PublicKey string `json:"public_key"` // PEM, the file agents pin
	// Signing is true for the key that signs new artifacts.
	Signing bool   `json:"signing"`
	Source  string `json:"source"` // KeySourceFleetd or KeySourceConfig
	// CreatedAt is when fleetd made or took the key (zero for key files);
	// RetiredAt when a rotation replaced it.
	CreatedAt time.Time `json:"created_at,omitzero"`
	RetiredAt time.Time `json:"retired_at,omitzero"`
}

// KeyList is the body of GET /api/v1/keys: the signing key first, then the
// retired ones (most recent first), then those of ota.public_keys.
type KeyList struct {
	Keys []Key `json:"keys"`
}

// KeyRotation is the body of POST /api/v1/keys/rotate: the new signing key
// and the one it retired (still listed: agents accept artifacts signed by
// any key they pin, so they can pin the new one before dropping the old).
type KeyRotation struct {
	Signing Key `json:"signing"`
	Retired Key `json:"retired"`
}
