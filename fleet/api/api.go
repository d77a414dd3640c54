// Package api holds the wire contract between edge agents and the fleet: MQTT
// topic names and the JSON payloads sent on them. It is a leaf package: the
// agent imports nothing of fleet/ but this.
//
// Topics live under one versioned prefix, one subtree per device:
//
//	edgefleet/v1/<device>/state       retained State; the MQTT last will sets it offline
//	edgefleet/v1/<device>/telemetry   Telemetry, every few seconds
//	edgefleet/v1/<device>/detections  DetectionBatch, QoS 1
//	edgefleet/v1/<device>/acks        Ack, from the fleet: what it has stored durably
//	edgefleet/v1/<device>/commands    Command, from the fleet (idempotent on job id)
//	edgefleet/v1/<device>/jobs/<id>   JobStatus, job state transitions from the device
//	edgefleet/v1/<device>/snapshot/<request id>
//	                                  SnapshotReply to a CommandSnapshot (snapshot.go)
package api

import (
	"errors"
	"fmt"
	"strings"
)

// Prefix is the root of every edgefleet topic.
const Prefix = "edgefleet/v1"

// MaxPayload is the largest payload either side accepts, in bytes.
const MaxPayload = 1 << 20

// Topic kinds, the last element(s) of a device topic.
const (
	KindState      = "state"
	KindTelemetry  = "telemetry"
	KindDetections = "detections"
	KindAcks       = "acks"
	KindCommands   = "commands"
	KindJobs       = "jobs"
)

// ErrBadTopic is returned by ParseTopic for topics outside the contract.
var ErrBadTopic = errors.New("api: bad topic")

// DeviceTopic returns Prefix/<device>/<kind>.
func DeviceTopic(device, kind string) string { return Prefix + "/" + device + "/" + kind }

// StateTopic is the retained device state topic.
func StateTopic(device string) string { return DeviceTopic(device, KindState) }

// TelemetryTopic carries periodic Telemetry.
func TelemetryTopic(device string) string { return DeviceTopic(device, KindTelemetry) }

// DetectionsTopic carries DetectionBatch messages.
func DetectionsTopic(device string) string { return DeviceTopic(device, KindDetections) }

// AcksTopic carries Ack messages from the fleet to the device.
func AcksTopic(device string) string { return DeviceTopic(device, KindAcks) }

// CommandsTopic carries Command messages from the fleet to the device.
func CommandsTopic(device string) string { return DeviceTopic(device, KindCommands) }

// JobTopic carries JobStatus messages for one job from the device.
func JobTopic(device, job string) string { return DeviceTopic(device, KindJobs) + "/" + job }

// Filter returns the subscription filter for one kind on all devices, e.g.
// edgefleet/v1/+/telemetry; for jobs it is edgefleet/v1/+/jobs/+ (and
// likewise for snapshot replies).
func Filter(kind string) string {
	if hasID(kind) {
		return Prefix + "/+/" + kind + "/+"
	}
	return Prefix + "/+/" + kind
}

// hasID reports whether topics of kind end in an id: jobs/<job id> and
// snapshot/<request id>.
func hasID(kind string) bool { return kind == KindJobs || kind == KindSnapshot }

// ParseTopic splits a device topic into device id, kind and (for jobs) job
// id (for snapshot replies, the request id).
func ParseTopic(topic string) (device, kind, job string, err error) {
	rest, ok := strings.CutPrefix(topic, Prefix+"/")
	if !ok {
		return "", "", "", fmt.Errorf("%w: %q lacks prefix %s", ErrBadTopic, topic, Prefix)
	}
	parts := strings.Split(rest, "/")
	switch {
	case len(parts) == 2 && !hasID(parts[1]):
		device, kind = parts[0], parts[1]
	case len(parts) == 3 && hasID(parts[1]):
		device, kind, job = parts[0], parts[1], parts[2]
	default:
		return "", "", "", fmt.Errorf("%w: %q", ErrBadTopic, topic)
	}
	if err := ValidateID(device); err != nil {
		return "", "", "", fmt.Errorf("%w: %v", ErrBadTopic, err)
	}
	switch kind {
	case KindState, KindTelemetry, KindDetections, KindAcks, KindCommands:
	case KindJobs, KindSnapshot:
		if err := ValidateID(job); err != nil {
			return "", "", "", fmt.Errorf("%w: %s: %v", ErrBadTopic, strings.TrimSuffix(kind, "s"), err)
		}
	default:
		return "", "", "", fmt.Errorf("%w: unknown kind %q", ErrBadTopic, kind)
	}
	return device, kind, job, nil
}

// ValidateID checks a device, camera or job id: 1..64 characters of
// [A-Za-z0-9._-], so it is safe in topics, file names and URLs.
func ValidateID(id string) error {
	if id == "" {
		return errors.New("empty id")
	}
	if len(id) > 64 {
		return fmt.Errorf("id %.16q... longer than 64 characters", id)
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("id %q has character %q (allowed: letters, digits, . _ -)", id, c)
		}
	}
	return nil
}
