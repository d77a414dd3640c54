package backend

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"edgefleet/models"
	"edgefleet/models/modeltest"
	"edgefleet/models/native"
)

func TestOpen(t *testing.T) {
	model, err := os.ReadFile(modeltest.Path(t, "models", "yolov8n_full_integer_quant.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	noLib := filepath.Join(t.TempDir(), "libtensorflowlite_c.so")
	tests := []struct {
		name, backend string
		opts          models.Options
		engine        string // want Info().Engine, or "" for an error
		errIs         error
		errHas        string
	}{
		{"go", "go", models.Options{}, "go", nil, ""},
		{"go with a delegate", "go", models.Options{Delegate: "xnnpack"}, "", nil, `no "xnnpack" delegate`},
		{"native without library", "native", models.Options{Library: noLib}, "", native.ErrNoLibrary, noLib},
		{"auto without library", "auto", models.Options{Library: noLib}, "go", nil, ""},
		{"empty name is auto", "", models.Options{Library: noLib, Delegate: "xnnpack"}, "go", nil, ""},
		{"auto with a wrong library", "auto", models.Options{Library: "libc.so.6"}, "go", nil, ""},
		{"native with a wrong library", "native", models.Options{Library: "libc.so.6"}, "", native.ErrNotTFLite, "TfLiteVersion"},
		{"unknown", "tpu", models.Options{}, "", nil, "unknown backend"},
	}
	if !native.Built {
		tests[2].errIs, tests[2].errHas = native.ErrNotBuilt, "omit_native"
		tests[6].errIs, tests[6].errHas = native.ErrNotBuilt, "omit_native"
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Open(context.Background(), tt.backend, model, tt.opts)
			if tt.engine == "" {
				if err == nil {
					e.Close()
					t.Fatal("no error")
				}
				if tt.errIs != nil && !errors.Is(err, tt.errIs) {
					t.Errorf("err = %v, want %v", err, tt.errIs)
				}
				if !strings.Contains(err.Error(), tt.errHas) {
					t.Errorf("err = %v, want it to mention %q", err, tt.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			if got := e.Info().Engine; got != tt.engine {
				t.Errorf("engine = %q, want %q", got, tt.engine)
			}
		})
	}
}

func TestAutoNotAModel(t *testing.T) {
	_, err := Open(context.Background(), Auto, []byte("\x89PNG\r\n\x1a\n not a model"), models.Options{})
	if err == nil || strings.Count(err.Error(), "TFL3") != 1 {
		t.Fatalf("err = %v, want one not-a-model error", err)
	}
}

// TestAutoWithLibrary: with the library, auto picks native for the models
// it can run and the go engine for the others.
func TestAutoWithLibrary(t *testing.T) {
	lib := os.Getenv(native.LibraryEnv)
	if lib == "" || !native.Built {
		t.Skipf("needs the TFLite C library: set %s", native.LibraryEnv)
	}
	for _, name := range []string{"yolov8n_full_integer_quant.tflite", "yolo26n_int8_320_e2e.tflite"} {
		t.Run(name, func(t *testing.T) {
			model, err := os.ReadFile(modeltest.Path(t, "models", name))
			if err != nil {
				t.Fatal(err)
			}
			want := "native"
			if _, err := native.Open(context.Background(), model, models.Options{}); errors.Is(err, models.ErrUnsupported) {
				want = "go"
			} else if err != nil {
				t.Fatal(err)
			}
			e, err := Open(context.Background(), Auto, model, models.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			if got := e.Info(); got.Engine != want {
				t.Errorf("auto chose %+v, want %s", got, want)
			}
		})
	}
}

// TestAutoStrictDelegate: a strict delegate failure is an error, not a
// silent switch to the go engine.
func TestAutoStrictDelegate(t *testing.T) {
	lib := os.Getenv(native.LibraryEnv)
	if lib == "" || !native.Built {
		t.Skipf("needs the TFLite C library: set %s", native.LibraryEnv)
	}
	t.Setenv(native.GPULibraryEnv, filepath.Join(t.TempDir(), "none.so"))
	model, err := os.ReadFile(modeltest.Path(t, "models", "yolov8n_full_integer_quant.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(context.Background(), Auto, model, models.Options{Delegate: "gpu", Strict: true})
	if !errors.Is(err, native.ErrDelegate) {
		t.Fatalf("err = %v, want native.ErrDelegate", err)
	}
}
