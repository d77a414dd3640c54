package broker

import "edgefleet/fleet/api"

// Allow reports whether a client with identity id may publish to topic
// (write) or subscribe to the filter topic and receive messages on it (!write).
//
// Services may do anything. A device may publish only to
// edgefleet/v1/<its id>/{state,telemetry,detections,jobs/<job>} and subscribe
// only to exactly edgefleet/v1/<its id>/acks and edgefleet/v1/<its id>/commands
// (no wildcards, no shared subscriptions). Everything else is refused. The
// equivalent mosquitto ACL is in mosquitto.acl.example.
func Allow(id Identity, topic string, write bool) bool {
	switch id.Role {
	case RoleService:
		return true
	case RoleDevice:
	default:
		return false
	}
	if id.DeviceID == "" {
		return false
	}
	if !write {
		return topic == api.AcksTopic(id.DeviceID) || topic == api.CommandsTopic(id.DeviceID)
	}
	device, kind, _, err := api.ParseTopic(topic)
	if err != nil || device != id.DeviceID {
		return false
	}
	switch kind {
	case api.KindState, api.KindTelemetry, api.KindDetections, api.KindJobs:
		return true
	}
	return false
}
