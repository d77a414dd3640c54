package api

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// State is the retained per-device state. The agent publishes Online=true on
// connect; its MQTT last will publishes Online=false.
type State struct {
	DeviceID     string            `json:"device_id"`
	Online       bool              `json:"online"`
	Time         int64             `json:"time_ms"` // unix milliseconds
	AgentVersion string            `json:"agent_version,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"` // site, line, ...
	Model        string            `json:"model,omitempty"`
	ModelVersion string            `json:"model_version,omitempty"`
	Engine       string            `json:"engine,omitempty"`
	Delegate     string            `json:"delegate,omitempty"`
	// EngineVersion is the TFLite library's (or the pure-Go interpreter's) version.
	EngineVersion string   `json:"engine_version,omitempty"`
	Cameras       []string `json:"cameras,omitempty"`
	// SnapshotURL was where older agents served /snapshot/; agents no longer
	// set it (their endpoint listens on loopback): operators get snapshots
	// through fleetd (CommandSnapshot).
	SnapshotURL string `json:"snapshot_url,omitempty"`
	// Inventory describes the box; nil in a last will.
	Inventory *Inventory `json:"inventory,omitempty"`
}

// CameraStats is one camera's share of a Telemetry message.
type CameraStats struct {
	ID      string  `json:"id"`
	Up      bool    `json:"up"`
	FPS     float64 `json:"fps"`
	Dropped uint64  `json:"dropped"` // frames dropped since start
	Error   string  `json:"error,omitempty"`
	// Lines and Zones are the camera's counters since the agent started
	// (analytics.go); empty when the camera has no lines or zones.
	Lines []LineCount `json:"lines,omitempty"`
	Zones []ZoneCount `json:"zones,omitempty"`
}

// Telemetry is what a device reports every few seconds.
type Telemetry struct {
	DeviceID      string        `json:"device_id"`
	Time          int64         `json:"time_ms"`
	UptimeS       float64       `json:"uptime_s"`
	AgentVersion  string        `json:"agent_version,omitempty"`
	Model         string        `json:"model,omitempty"`
	ModelVersion  string        `json:"model_version,omitempty"`
	Engine        string        `json:"engine,omitempty"`
	Delegate      string        `json:"delegate,omitempty"`
	EngineVersion string        `json:"engine_version,omitempty"`
	Cameras       []CameraStats `json:"cameras,omitempty"`
	InferP50Ms    float64       `json:"infer_p50_ms"`
	InferP99Ms    float64       `json:"infer_p99_ms"`
	SpoolDepth    uint64        `json:"spool_depth"`
	SpoolOldestS  float64       `json:"spool_oldest_s"`
	SpoolDropped  uint64        `json:"spool_dropped"`
	DiskFreeBytes uint64        `json:"disk_free_bytes"`
}

// Event is one detection as it travels from device to fleet. (DeviceID, Seq)
// identifies it; Seq is per device, monotonic, never reused.
type Event struct {
	Seq          uint64     `json:"seq"`
	CameraID     string     `json:"camera_id"`
	Time         int64      `json:"time_us"` // capture time, unix microseconds
	Model        string     `json:"model,omitempty"`
	ModelVersion string     `json:"model_version,omitempty"`
	ClassID      int        `json:"class_id"`
	Label        string     `json:"label"`
	Score        float32    `json:"score"`
	Box          [4]float32 `json:"box"`

	// Type is TypeDetection ("") for a detection, else an analytics event
	// (analytics.go) whose payload is in Track, Line or Zone; V is that
	// payload's version (EventVersion).
	Type     string         `json:"type,omitempty"`
	V        int            `json:"v,omitempty"`
	Track    *TrackInfo     `json:"track,omitempty"`
	Line     *LineCross     `json:"line,omitempty"`
	Zone     *ZoneInfo      `json:"zone,omitempty"`
	Snapshot *EventSnapshot `json:"snapshot,omitempty"`
}

// DetectionBatch carries events of one device, in increasing Seq.
type DetectionBatch struct {
	DeviceID string  `json:"device_id"`
	Events   []Event `json:"events"`
}

// SeqRange is an inclusive range of sequence numbers.
type SeqRange struct {
	From uint64 `json:"from"`
	To   uint64 `json:"to"`
}

// Ack tells a device which of its events the fleet has stored durably.
type Ack struct {
	DeviceID string     `json:"device_id"`
	Ranges   []SeqRange `json:"ranges"`
}

// Command kinds.
const (
	CommandModelUpdate    = "model_update"
	CommandFirmwareUpdate = "firmware_update"
	CommandRollback       = "rollback"
)

// Artifact identifies a signed model or agent bundle.
type Artifact struct {
	Kind     string `json:"kind"` // "model" or "firmware"
	Name     string `json:"name"`
	Version  string `json:"version"`
	SHA256   string `json:"sha256"`
	Size     int64  `json:"size"`
	URL      string `json:"url"`
	Manifest []byte `json:"manifest"`  // signed manifest bytes (JSON)
	Sig      []byte `json:"signature"` // ed25519 over Manifest
	KeyID    string `json:"key_id"`
}

// Command is sent by the fleet to one device; devices ignore a JobID they
// have already seen.
type Command struct {
	JobID    string    `json:"job_id"`
	Kind     string    `json:"kind"`
	Artifact *Artifact `json:"artifact,omitempty"`
	// DeadlineMs is the unix time after which the job counts as failed.
	DeadlineMs int64 `json:"deadline_ms,omitempty"`
	// HealthWindowS is how long the device watches the new version before it commits.
	HealthWindowS float64 `json:"health_window_s,omitempty"`
	// Shadow, on a model update, asks the device to run the candidate beside
	// the serving model before it swaps (shadow.go); nil: swap at once.
	Shadow *ShadowSpec `json:"shadow,omitempty"`
	// Snapshot is what a CommandSnapshot asks for; its JobID is the
	// request id the reply names.
	Snapshot *SnapshotRequest `json:"snapshot,omitempty"`
}

// Job states a device reports (JobPhase gives their order).
const (
	JobQueued      = "queued"
	JobDownloading = "downloading"
	JobVerifying   = "verifying"
	JobInstalling  = "installing"
	JobShadow      = "shadow" // running the candidate beside the serving model (shadow.go)
	JobHealthCheck = "health_check"
	JobSucceeded   = "succeeded"
	JobFailed      = "failed"
	JobRolledBack  = "rolled_back"
)

// JobPhase is the place of state s in the order a device passes through a
// job (the shadow phase runs between verifying and installing, as
// agent/update runs it): 1 for queued up to 6 for health_check, 7 for the
// states that end a job (succeeded, failed, rolled_back), and 0 for a state
// devices do not report. The rollout engine and the registry use it to
// ignore a report that arrives after a later one: fleetd handles one
// device's messages concurrently, and replicas split them.
func JobPhase(s string) int {
	switch s {
	case JobQueued:
		return 1
	case JobDownloading:
		return 2
	case JobVerifying:
		return 3
	case JobShadow:
		return 4
	case JobInstalling:
		return 5
	case JobHealthCheck:
		return 6
	case JobSucceeded, JobFailed, JobRolledBack:
		return 7
	}
	return 0
}

// JobReportStale reports whether a device's job report of state got is
// older than the one applied, cur: the job had ended, or got is an
// earlier phase.
func JobReportStale(cur, got string) bool {
	return JobPhase(cur) == JobPhase(JobSucceeded) || JobPhase(got) < JobPhase(cur)
}

// JobStatus is a device's report of a job state transition.
type JobStatus struct {
	DeviceID string  `json:"device_id"`
	JobID    string  `json:"job_id"`
	State    string  `json:"state"`
	Progress float64 `json:"progress,omitempty"` // 0..1 while downloading
	Reason   string  `json:"reason,omitempty"`
	Time     int64   `json:"time_ms"`
	// Shadow is the shadow phase's measurement (shadow.go): periodically
	// while State is JobShadow, and the final one when the phase ends.
	Shadow *ShadowReport `json:"shadow,omitempty"`
}

// Decode parses a payload strictly into v: size-limited, unknown fields are
// an error, and trailing data is an error.
func Decode(payload []byte, v any) error {
	if len(payload) > MaxPayload {
		return fmt.Errorf("api: payload of %d bytes exceeds %d", len(payload), MaxPayload)
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("api: decode %T: %w", v, err)
	}
	if dec.More() {
		return fmt.Errorf("api: decode %T: trailing data", v)
	}
	if val, ok := v.(interface{ Validate() error }); ok {
		if err := val.Validate(); err != nil {
			return fmt.Errorf("api: %T: %w", v, err)
		}
	}
	return nil
}

// Validate checks a batch: a valid device id, events in strictly increasing seq.
func (b *DetectionBatch) Validate() error {
	if err := ValidateID(b.DeviceID); err != nil {
		return fmt.Errorf("device_id: %w", err)
	}
	for i, e := range b.Events {
		if i > 0 && e.Seq <= b.Events[i-1].Seq {
			return fmt.Errorf("events[%d]: seq %d not above %d", i, e.Seq, b.Events[i-1].Seq)
		}
		if err := ValidateID(e.CameraID); err != nil {
			return fmt.Errorf("events[%d].camera_id: %w", i, err)
		}
		if err := e.ValidateAnalytics(); err != nil {
			return fmt.Errorf("events[%d] (seq %d): %w", i, e.Seq, err)
		}
	}
	return nil
}

// Validate checks the ranges are well formed.
func (a *Ack) Validate() error {
	if err := ValidateID(a.DeviceID); err != nil {
		return fmt.Errorf("device_id: %w", err)
	}
	for i, r := range a.Ranges {
		if r.To < r.From {
			return fmt.Errorf("ranges[%d]: to %d below from %d", i, r.To, r.From)
		}
	}
	return nil
}

// Validate checks the device id.
func (s *State) Validate() error {
	if err := ValidateID(s.DeviceID); err != nil {
		return fmt.Errorf("device_id: %w", err)
	}
	return nil
}

// Validate checks the device id.
func (t *Telemetry) Validate() error {
	if err := ValidateID(t.DeviceID); err != nil {
		return fmt.Errorf("device_id: %w", err)
	}
	return nil
}

// Validate checks the job id and kind.
func (c *Command) Validate() error {
	if err := ValidateID(c.JobID); err != nil {
		return fmt.Errorf("job_id: %w", err)
	}
	switch c.Kind {
	case CommandModelUpdate, CommandFirmwareUpdate:
		if c.Artifact == nil {
			return fmt.Errorf("kind %s needs an artifact", c.Kind)
		}
		if c.Shadow != nil {
			if c.Kind != CommandModelUpdate {
				return fmt.Errorf("kind %s cannot have a shadow phase", c.Kind)
			}
			if err := c.Shadow.Validate(); err != nil {
				return fmt.Errorf("shadow: %w", err)
			}
		}
	case CommandRollback:
	case CommandSnapshot:
		if c.Snapshot == nil {
			return fmt.Errorf("kind %s needs a snapshot request", c.Kind)
		}
		if err := c.Snapshot.Validate(); err != nil {
			return fmt.Errorf("snapshot: %w", err)
		}
	default:
		return fmt.Errorf("unknown kind %q", c.Kind)
	}
	return nil
}

// Validate checks ids and state.
func (j *JobStatus) Validate() error {
	if err := ValidateID(j.DeviceID); err != nil {
		return fmt.Errorf("device_id: %w", err)
	}
	if err := ValidateID(j.JobID); err != nil {
		return fmt.Errorf("job_id: %w", err)
	}
	if JobPhase(j.State) == 0 {
		return fmt.Errorf("unknown state %q", j.State)
	}
	if j.Shadow != nil {
		if err := j.Shadow.Validate(); err != nil {
			return fmt.Errorf("shadow: %w", err)
		}
	}
	return nil
}
