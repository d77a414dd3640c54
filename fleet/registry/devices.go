package registry

import (
	"context"
	"time"

	"edgefleet/fleet/api"
)

// Devices is the registry as fleetd's parts use it (ingest feeds it; the
// REST API, the console and the rollout engine read it). *Registry keeps it
// in memory behind a bbolt file; *Postgres keeps it in PostgreSQL, shared
// by every fleetd replica.
type Devices interface {
	UpdateState(api.State) error
	UpdateTelemetry(api.Telemetry) error
	RecordJob(api.JobStatus) error
	RecordDetections(device string, n int)
	// List returns the devices matching the filter, sorted by id.
	List(Filter) []Device
	// Delete forgets a device (decommissioning): its description, history
	// and counts; it reports whether the device was known. A device that
	// reports again afterwards is registered anew.
	Delete(id string) (bool, error)
	Counts() (total, online int)
	Get(id string) (Device, bool)
	History(id string, since time.Time) ([]Point, bool)
	Summarize() []Summary
	// Run does the periodic work (flushing, refreshing) until ctx ends.
	Run(ctx context.Context) error
	Close() error
}

var (
	_ Devices = (*Registry)(nil)
	_ Devices = (*Postgres)(nil)
)
