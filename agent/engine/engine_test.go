package engine_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"edgefleet/agent/engine"
	"edgefleet/models"
	"edgefleet/models/modeltest"
)

// TestStrict: with strict, a delegate or the native backend asked for on a
// box without the library is an error naming the delegate and where the
// library was looked for; without strict, auto falls back to the Go engine.
func TestStrict(t *testing.T) {
	model, err := os.ReadFile(modeltest.Path(t, "models", "yolov8n_int8.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "libtensorflowlite_c.so")
	tests := []struct {
		name    string
		backend string
		opts    models.Options
		want    []string // in the error; none: opens
		wantEng string
	}{
		{"gpu strict, auto", "auto", models.Options{Delegate: "gpu", Strict: true, Library: missing}, []string{"engine: strict: the gpu delegate cannot be used", missing}, ""},
		{"xnnpack strict, native", "native", models.Options{Delegate: "xnnpack", Strict: true, Library: missing}, []string{"engine: strict: the xnnpack delegate cannot be used", missing}, ""},
		{"native strict", "native", models.Options{Strict: true, Library: missing}, []string{"engine: strict: the native backend cannot be used", missing}, ""},
		{"gpu, not strict: the go engine", "auto", models.Options{Delegate: "gpu", Library: missing}, nil, "go"},
		{"strict without a delegate: auto may pick go", "auto", models.Options{Strict: true, Library: missing}, nil, "go"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Threads = 1
			e, err := engine.Open(context.Background(), tt.backend, model, tt.opts)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				defer e.Close()
				if got := e.Info().Engine; got != tt.wantEng {
					t.Errorf("engine %s, want %s", got, tt.wantEng)
				}
				return
			}
			if err == nil {
				e.Close()
				t.Fatal("opened")
			}
			if !errors.Is(err, engine.ErrStrict) {
				t.Errorf("error %v does not wrap ErrStrict", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}
