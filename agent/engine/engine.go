// Package engine opens the inference engine that the agent's config
// (model.backend, model.delegate, model.strict) or edge-agent's flags ask
// for, and makes strict mean strict: a delegate asked for with strict runs,
// or opening fails with the reason (no library, the delegate did not load
// or apply); it never falls back to the CPU or to the Go engine.
package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"edgefleet/models"
	"edgefleet/models/backend"
)

// ErrStrict is wrapped by Open's error when strict could not be honoured.
var ErrStrict = errors.New("engine: strict")

// Open opens model on the named backend (backend.Open). With opts.Strict
// and a delegate (xnnpack, gpu), the native engine must run it with that
// delegate: "auto" does not fall back to the Go engine when the library is
// missing, and an engine that runs without the delegate is an error. With
// opts.Strict and backend "native", a missing library is an error too (as
// it is without strict).
func Open(ctx context.Context, name string, model []byte, opts models.Options) (models.Engine, error) {
	d := strings.ToLower(strings.TrimSpace(opts.Delegate))
	wantDelegate := d != "" && d != "none"
	if opts.Strict && wantDelegate && (name == "" || strings.EqualFold(name, backend.Auto)) {
		name = backend.Native // delegates are the native engine's
	}
	e, err := backend.Open(ctx, name, model, opts)
	if err != nil {
		if opts.Strict && (wantDelegate || strings.EqualFold(name, backend.Native)) {
			return nil, fmt.Errorf("%w: %s cannot be used: %w", ErrStrict, asked(name, d), err)
		}
		return nil, err
	}
	if opts.Strict && wantDelegate {
		if got := e.Info().Delegate; !strings.EqualFold(got, d) {
			e.Close()
			if got == "" {
				got = "none"
			}
			return nil, fmt.Errorf("%w: %s cannot be used: the engine runs with delegate %s", ErrStrict, asked(name, d), got)
		}
	}
	return e, nil
}

func asked(name, delegate string) string {
	if delegate == "" || delegate == "none" {
		return "the " + strings.ToLower(name) + " backend"
	}
	return "the " + delegate + " delegate"
}
