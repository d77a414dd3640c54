package rollout

import "context"

// AtomicSaver is a Store that can write shadow reports and rollouts in one
// atomic step (Bolt: one transaction); the engine then always does.
type AtomicSaver interface {
	SaveWithShadow(ctx context.Context, recs []ShadowRecord, rs ...*Rollout) error
}

// Store keeps rollouts, each with its jobs and history, for the Engine.
// The Engine holds every rollout in memory and writes through the Store;
// it calls one method at a time. Bolt is the implementation for one box;
// storeSuite in store_test.go is the behaviour every implementation must
// show.
type Store interface {
	// Epoch is a random tag made when the store was created and kept for
	// its life; job ids carry it.
	Epoch() string
	// Load returns every stored rollout, in no particular order.
	Load(ctx context.Context) ([]*Rollout, error)
	// Create takes the next rollout id (r1, r2, ...: never one given
	// before), has fill build the rollout for it and stores that: all or
	// nothing. An error from fill is returned as is and nothing is stored.
	Create(ctx context.Context, fill func(id string) (*Rollout, error)) (*Rollout, error)
	// Save writes the rollouts, each whole (jobs and history), in one
	// atomic step. The store keeps no reference to them.
	Save(ctx context.Context, rs ...*Rollout) error
	// SaveShadow writes devices' shadow reports: each record's non-nil
	// Latest and Final replace the stored ones of its (rollout, device).
	SaveShadow(ctx context.Context, recs ...ShadowRecord) error
	// LoadShadow returns the shadow records of one rollout, in no
	// particular order.
	LoadShadow(ctx context.Context, rolloutID string) ([]ShadowRecord, error)
	// Close releases the store; it is safe to call twice.
	Close() error
}
