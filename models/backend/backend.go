// Package backend chooses and opens an inference engine by name: the pure-Go
// interpreter ("go"), the native TFLite library ("native"), or the best one
// this box has ("auto").
package backend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"edgefleet/models"
	"edgefleet/models/native"
	"edgefleet/models/tflite"
)

// Names of the backends.
const (
	Auto   = "auto"
	Go     = "go"
	Native = "native"
)

// Names lists the backend names Open accepts.
var Names = []string{Auto, Go, Native}

// Open opens model with the named backend:
//
//   - "go": the pure-Go interpreter, which needs nothing installed. It has
//     no delegates, so asking for one is an error.
//   - "native": the TFLite C library (see package native for where it is
//     looked for); an error when it is missing or cannot run the model.
//   - "auto" or "": native when the library is present and runs the model,
//     else go. Only a delegate failure under opts.Strict stops the fallback;
//     when both engines fail, the error says why each did.
//
// Engine.Info says which engine and delegate were chosen.
func Open(ctx context.Context, name string, model []byte, opts models.Options) (models.Engine, error) {
	switch strings.ToLower(name) {
	case Go:
		if d := strings.ToLower(opts.Delegate); d != "" && d != "none" {
			return nil, fmt.Errorf("backend: the go engine has no %q delegate (use --backend native or auto)", opts.Delegate)
		}
		return tflite.Open(ctx, model, opts)
	case Native:
		return native.Open(ctx, model, opts)
	case "", Auto:
		e, nerr := native.Open(ctx, model, opts)
		if nerr == nil {
			return e, nil
		}
		if errors.Is(nerr, native.ErrDelegate) || ctx.Err() != nil {
			return nil, nerr
		}
		noLib := errors.Is(nerr, native.ErrNoLibrary) || errors.Is(nerr, native.ErrNotBuilt)
		delegate := opts.Delegate
		opts.Delegate = ""
		g, gerr := tflite.Open(ctx, model, opts)
		if gerr != nil {
			if noLib || errors.Is(nerr, tflite.ErrFormat) { // nothing more to say
				return nil, gerr
			}
			return nil, fmt.Errorf("%w (native engine: %v)", gerr, nerr)
		}
		// No library is the usual case on a box without it: say so only
		// when the user asked for a native delegate.
		level := slog.LevelWarn
		if noLib && (delegate == "" || strings.EqualFold(delegate, "none")) {
			level = slog.LevelDebug
		}
		slog.Log(ctx, level, "backend: native engine unavailable, using the go engine", "err", nerr, "delegate", delegate)
		return g, nil
	default:
		return nil, fmt.Errorf("backend: unknown backend %q (want auto, go or native)", name)
	}
}
