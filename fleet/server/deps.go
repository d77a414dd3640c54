package server

import (
	"context"
	"time"

	"edgefleet/fleet/registry"
	"edgefleet/fleet/rollout"
	"edgefleet/fleet/store"
)

// Detections is what the server reads of the detection store
// (store.Store satisfies it).
type Detections interface {
	Query(ctx context.Context, q store.Query) (store.Page, error)
	Count(ctx context.Context, q store.Query, width time.Duration) ([]store.Bucket, error)
}

// Events is what the analytics routes (events.go) read of the store
// (store.Store satisfies it).
type Events interface {
	QueryEvents(ctx context.Context, q store.EventQuery) (store.EventPage, error)
	CountLines(ctx context.Context, q store.CountQuery, width time.Duration) ([]store.LineCount, error)
	EventSnapshot(ctx context.Context, device string, seq uint64, part string) ([]byte, error)
}

// Devices is what the server reads of the device registry
// (*registry.Registry satisfies it).
type Devices interface {
	List(f registry.Filter) []registry.Device
	Get(id string) (registry.Device, bool)
	History(id string, since time.Time) ([]registry.Point, bool)
	Summarize() []registry.Summary
}

// Rollouts is what the rollout routes need of the rollout engine
// (*rollout.Engine satisfies it).
type Rollouts interface {
	// CreateBy starts a rollout; by is the operator, for its history.
	CreateBy(ctx context.Context, spec rollout.Spec, by string) (rollout.Summary, error)
	Get(id string) (*rollout.Rollout, error)
	List() []rollout.Summary
	// ArtifactInUse lists the unfinished rollouts that send an artifact.
	ArtifactInUse(sha256 string) []string
	// Act pauses, resumes, aborts or rolls back a rollout, or accepts a
	// device's failed shadow phase, for an operator.
	Act(ctx context.Context, id string, a rollout.Action) (rollout.Summary, error)
	// Shadow returns the shadow reports of a rollout's devices.
	Shadow(ctx context.Context, id string) ([]rollout.ShadowRecord, error)
}

var (
	_ Detections = store.Store(nil)
	_ Events     = store.Store(nil)
	_ Devices    = (*registry.Registry)(nil)
	_ Rollouts   = (*rollout.Engine)(nil)
	_ Rollouts   = (*rollout.Cluster)(nil)
)
