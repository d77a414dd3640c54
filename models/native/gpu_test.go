//go:build linux && (amd64 || arm64) && !omit_native

package native

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebitengine/purego"

	"edgefleet/models"
)

// fakeGPU compiles testdata/fakegpu.c, a stand-in for the GPU delegate
// library (there is no GPU here), and returns its path and state reader.
func fakeGPU(t *testing.T) (string, func() ([8]int64, string, string)) {
	t.Helper()
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Skip("no C compiler to build the fake GPU delegate library")
	}
	so := filepath.Join(t.TempDir(), "libtensorflowlite_gpu_delegate.so")
	if out, err := exec.Command(cc, "-shared", "-fPIC", "-o", so, "testdata/fakegpu.c", "-lpthread").CombinedOutput(); err != nil {
		t.Skipf("cannot build the fake GPU delegate: %v\n%s", err, out)
	}
	h, err := purego.Dlopen(so, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		t.Skipf("cannot load the fake GPU delegate (cross-compiled test?): %v", err)
	}
	var state func(out *int64, dir, token *byte)
	purego.RegisterLibFunc(&state, h, "fake_gpu_state")
	return so, func() ([8]int64, string, string) {
		var out [8]int64
		var dir, token [1024]byte
		state(&out[0], &dir[0], &token[0])
		cstr := func(b []byte) string { return string(b[:bytes.IndexByte(b, 0)]) }
		return out, cstr(dir[:]), cstr(token[:])
	}
}

// TestGPUDelegate drives the GPU delegate code with a fake delegate
// library: the options it gets, the thread it runs on, and the fallbacks.
func TestGPUDelegate(t *testing.T) {
	lib := libPath(t)
	so, state := fakeGPU(t)
	cache := t.TempDir()
	t.Setenv(GPULibraryEnv, so)
	t.Setenv(GPUCacheEnv, cache)
	model := readModel(t, "yolov8n_full_integer_quant.tflite")

	t.Run("applied", func(t *testing.T) {
		before, _, _ := state()
		e, err := Open(context.Background(), model, models.Options{Library: lib, Delegate: "gpu", Strict: true})
		if err != nil {
			t.Fatal(err)
		}
		if d := e.Info().Delegate; d != "gpu" {
			t.Errorf("Info().Delegate = %q", d)
		}
		if err := e.Invoke(context.Background()); err != nil {
			t.Fatal(err)
		}
		e.Close()
		s, dir, token := state()
		if s[0] != 1 || s[1] != gpuPreferenceSustainedSpeed || s[2] != 1 {
			t.Errorf("precision loss %d, preference %d, priority1 %d: want 1, sustained speed (1), the default (1)", s[0], s[1], s[2])
		}
		if s[3] != 1|gpuFlagEnableSerialization {
			t.Errorf("experimental flags %#x, want the default ENABLE_QUANT plus ENABLE_SERIALIZATION", s[3])
		}
		if dir != cache || !strings.HasPrefix(token, "edgefleet-") {
			t.Errorf("kernel cache %q token %q, want %q and edgefleet-<model hash>", dir, token, cache)
		}
		if s[4]-before[4] != 1 || s[5]-before[5] != 1 || s[6]-before[6] != 1 {
			t.Errorf("create/prepare/delete ran %d/%d/%d times, want once each", s[4]-before[4], s[5]-before[5], s[6]-before[6])
		}
		if s[7] != 1 {
			t.Error("create, prepare and delete ran on different OS threads; a GL context would break")
		}
	})

	tests := []struct {
		name, env, stage string
	}{
		{"create fails", "FAKE_GPU_FAIL", "load"},
		{"delegate rejects the model", "FAKE_GPU_REJECT", "apply"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(tt.env, "1")
			before := fallbacks("gpu", tt.stage)
			e, err := Open(context.Background(), model, models.Options{Library: lib, Delegate: "gpu"})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			if d := e.Info().Delegate; d != "" {
				t.Errorf("Info().Delegate = %q after a failed GPU delegate", d)
			}
			if got := fallbacks("gpu", tt.stage) - before; got != 1 {
				t.Errorf("fallback counter (stage %s) rose by %v, want 1", tt.stage, got)
			}
			if err := e.Invoke(context.Background()); err != nil {
				t.Fatalf("CPU fallback: %v", err)
			}
			_, err = Open(context.Background(), model, models.Options{Library: lib, Delegate: "gpu", Strict: true})
			if !errors.Is(err, ErrDelegate) || !strings.Contains(err.Error(), tt.stage) {
				t.Errorf("strict: err = %v, want ErrDelegate at %s", err, tt.stage)
			}
		})
	}
}
