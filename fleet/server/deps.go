package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
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
	// Act pauses, resumes, aborts or rolls back a rollout for an operator.
	Act(ctx context.Context, id string, a rollout.Action) (rollout.Summary, error)
}

// Operators authenticates operator bearer tokens: Operator returns the
// operator's name, and false for an unknown token.
type Operators interface {
	Operator(token string) (name string, ok bool)
}

// Tokens is a fixed set of operator tokens (token to operator name); it
// compares in constant time.
type Tokens map[string]string

// Operator implements Operators.
func (t Tokens) Operator(tok string) (string, bool) {
	if tok == "" {
		return "", false
	}
	sum := sha256.Sum256([]byte(tok))
	name, found := "", 0
	for k, n := range t {
		ks := sha256.Sum256([]byte(k))
		if subtle.ConstantTimeCompare(sum[:], ks[:]) == 1 {
			name, found = n, 1
		}
	}
	return name, found == 1
}

var (
	_ Detections = store.Store(nil)
	_ Devices    = (*registry.Registry)(nil)
	_ Rollouts   = (*rollout.Engine)(nil)
	_ Operators  = Tokens(nil)
)
