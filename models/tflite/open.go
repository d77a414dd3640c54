package tflite

import (
	"context"
	"errors"

	"edgefleet/models"
)

// Open parses a model and prepares an interpreter for it.
// (Temporary stub while the interpreter lands.)
func Open(ctx context.Context, model []byte, opts models.Options) (models.Engine, error) {
	return nil, errors.New("tflite: interpreter not implemented yet")
}
