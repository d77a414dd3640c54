package broker

import (
	"strings"

	"edgefleet/fleet/api"
)

// Allow reports whether a client with identity id may publish to topic
// (write) or subscribe to the filter topic and receive messages on it (!write).
//
// Services may do anything. A device may publish only to
// edgefleet/v1/<its id>/{state,telemetry,detections,jobs/<job>,snapshot/<request>} and subscribe
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
	rest, ok := ownSubtree(topic, id.DeviceID)
	if !ok {
		return false
	}
	if !write {
		return rest == api.KindAcks || rest == api.KindCommands
	}
	switch rest {
	case api.KindState, api.KindTelemetry, api.KindDetections:
		return true
	}
	job, ok := strings.CutPrefix(rest, api.KindJobs+"/")
	if !ok {
		job, ok = strings.CutPrefix(rest, api.KindSnapshot+"/") // snapshot replies: job is the request id
	}
	return ok && api.ValidateID(job) == nil
}

// ownSubtree returns what follows edgefleet/v1/<device>/ in topic, without
// allocating: this runs for every publish.
func ownSubtree(topic, device string) (string, bool) {
	rest, ok := strings.CutPrefix(topic, api.Prefix)
	if !ok || len(rest) < 1 || rest[0] != '/' {
		return "", false
	}
	rest, ok = strings.CutPrefix(rest[1:], device)
	if !ok || len(rest) < 1 || rest[0] != '/' {
		return "", false
	}
	return rest[1:], true
}
