//go:build !linux || !(amd64 || arm64) || omit_native

package native

import (
	"context"
	"fmt"
	"runtime"

	"edgefleet/models"
)

// Built reports whether this binary has the native engine.
const Built = false

var _ models.Opener = Open

// Open always fails with ErrNotBuilt in this build.
func Open(ctx context.Context, model []byte, opts models.Options) (models.Engine, error) {
	return nil, fmt.Errorf("native: open: %w (%s/%s, or built with -tags omit_native)", ErrNotBuilt, runtime.GOOS, runtime.GOARCH)
}

// Probe reports that this build has no native engine.
func Probe(opts models.Options) Report {
	_, err := Open(context.Background(), nil, opts)
	return Report{Built: false, Error: err.Error()}
}
