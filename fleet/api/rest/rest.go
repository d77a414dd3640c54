// Package rest is the contract of fleetd's REST API under /api/v1: the
// request and response body of every route, shared by the server
// (fleet/server), the typed client (fleet/client) and fleetctl. It imports
// only fleet/api, so a client links no broker, database or interpreter.
//
// The JSON field names are the wire format; they only ever gain fields.
package rest

import (
	"time"

	"edgefleet/fleet/api"
)

// Prefix is the path prefix of every operator route.
const Prefix = "/api/v1"

// Error is the body of every error response.
type Error struct {
	Error  string `json:"error"`
	Status int    `json:"status"`
}

// Health is the body of GET /healthz when fleetd is ready.
type Health struct {
	Status string `json:"status"`
}

// Fleet is the body of GET /api/v1/fleet.
type Fleet struct {
	Devices          int     `json:"devices"`
	Online           int     `json:"online"`
	Unhealthy        int     `json:"unhealthy"`
	DetectionsPerMin float64 `json:"detections_per_min"`
	Groups           []Group `json:"groups"`
}

// Group counts devices online and offline for one site and line.
type Group struct {
	Site      string `json:"site"`
	Line      string `json:"line"`
	Online    int    `json:"online"`
	Offline   int    `json:"offline"`
	Unhealthy int    `json:"unhealthy"`
	// DetectionsPerMin is the sum of the devices' rates.
	DetectionsPerMin float64 `json:"detections_per_min"`
}

// DeviceFilter is the query of GET /api/v1/devices; zero fields match all.
type DeviceFilter struct {
	Site, Line string
	Online     *bool
}

// DeviceList is the body of GET /api/v1/devices.
type DeviceList struct {
	Devices []Device `json:"devices"`
}

// Device is the body of GET /api/v1/devices/{id}.
type Device struct {
	ID           string            `json:"id"`
	Labels       map[string]string `json:"labels,omitempty"`
	Online       bool              `json:"online"`
	AgentVersion string            `json:"agent_version,omitempty"`
	Model        string            `json:"model,omitempty"`
	ModelVersion string            `json:"model_version,omitempty"`
	Engine       string            `json:"engine,omitempty"`
	Delegate     string            `json:"delegate,omitempty"`
	Cameras      []string          `json:"cameras,omitempty"`
	SnapshotURL  string            `json:"snapshot_url,omitempty"`
	FirstSeen    time.Time         `json:"first_seen"`
	LastSeen     time.Time         `json:"last_seen"`
	// StateTime is when the device last changed its state (its clock).
	StateTime time.Time `json:"state_time,omitzero"`
	// Telemetry is the latest report and TelemetryAt when it arrived.
	Telemetry   *api.Telemetry `json:"telemetry,omitempty"`
	TelemetryAt time.Time      `json:"telemetry_at,omitzero"`
	// Detections counts the events stored for this device, and
	// DetectionsPerMin is the rate over the last minute.
	Detections       uint64  `json:"detections"`
	DetectionsPerMin float64 `json:"detections_per_min"`
	// LastJob is the latest job status the device reported.
	LastJob *api.JobStatus `json:"last_job,omitempty"`
	// Health lists the flags raised now; empty when healthy.
	Health []string `json:"health"`
	// Inventory describes the box (address, OS, disk, uptime...), as the
	// agent last reported it; absent until it does. Each camera's snapshot
	// is GET /api/v1/devices/{id}/cameras/{camera}/snapshot (SnapshotURL,
	// from older agents, is not reachable from an operator's browser).
	Inventory *api.Inventory `json:"inventory,omitempty"`
}

// Telemetry is the body of GET /api/v1/devices/{id}/telemetry.
type Telemetry struct {
	DeviceID string  `json:"device_id"`
	Points   []Point `json:"points"`
}

// Point is one telemetry sample in a device's history.
type Point struct {
	Time       time.Time `json:"time"`
	FPS        float64   `json:"fps"` // sum over cameras
	InferP50Ms float64   `json:"infer_p50_ms"`
	InferP99Ms float64   `json:"infer_p99_ms"`
	Dropped    uint64    `json:"dropped"`   // frames dropped since the previous point
	DropRate   float64   `json:"drop_rate"` // dropped / (dropped + processed) over that interval
	SpoolDepth uint64    `json:"spool_depth"`
	CamerasUp  int       `json:"cameras_up"`
}

// Page limits of GET /api/v1/detections.
const (
	DefaultLimit = 100
	MaxLimit     = 10000
)

// DetectionQuery is the query of the detection routes; zero fields match
// everything. From, To and Since take RFC 3339, unix milliseconds or a
// negative duration relative to now ("-1h").
type DetectionQuery struct {
	Device, Camera, Label string
	From, To              string
	// Limit is the page size (1..MaxLimit; 0: DefaultLimit).
	Limit int
	// Cursor continues from Page.Next.
	Cursor string
}

// Record is a stored detection: the event and the device that sent it.
type Record struct {
	Device string `json:"device_id"`
	api.Event
}

// Page is the body of GET /api/v1/detections: newest first.
type Page struct {
	Records []Record `json:"records"`
	// Next is the cursor for the following (older) page. It is set whenever
	// the page is full, so the last page may come back empty.
	Next string `json:"next,omitempty"`
}

// Counts is the body of GET /api/v1/detections/count.
type Counts struct {
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
	Bucket  string    `json:"bucket"`
	Total   int       `json:"total"`
	Buckets []Bucket  `json:"buckets"`
}

// Bucket is the number of records in [Start, Start+width).
type Bucket struct {
	Start time.Time `json:"start"`
	Count int       `json:"count"`
}

// CSVHeader is the first row of GET /api/v1/detections/export?format=csv.
var CSVHeader = []string{"device_id", "seq", "camera_id", "time", "label", "class_id", "score", "x1", "y1", "x2", "y2", "model", "model_version"}
