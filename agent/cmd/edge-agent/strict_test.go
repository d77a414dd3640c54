package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"edgefleet/models/modeltest"
)

// TestStrictMeansStrict: a delegate (or the native backend) asked for with
// strict, on a box where the TFLite library is missing, fails detect, run
// (model.strict) and info with exit status 1 and a message naming the
// delegate and where the library was looked for; detect without strict
// falls back to the Go engine and succeeds.
func TestStrictMeansStrict(t *testing.T) {
	model := modeltest.Path(t, "models", "yolov8n_int8.tflite")
	photo := modeltest.Path(t, "images", "chelsea.png")
	dir := t.TempDir()
	lib := filepath.Join(dir, "libtensorflowlite_c.so") // missing
	runCfg := writeConfig(t, dir, strings.Replace(fmt.Sprintf(agentYAML, model, modeltest.Path(t, "images"), filepath.Join(dir, "spool.db"), ""),
		`  version: "1"`, `  version: "1"
  delegate: gpu
  strict: true
  library: `+lib, 1))
	tests := []struct {
		name string
		args []string
		code int
		want []string // in stderr
	}{
		{"detect gpu strict", []string{"detect", "--model", model, "--delegate", "gpu", "--strict", "--library", lib, photo}, 1,
			[]string{"the gpu delegate cannot be used", lib}},
		{"detect xnnpack strict, native", []string{"detect", "--model", model, "--backend", "native", "--delegate", "xnnpack", "--strict", "--library", lib, photo}, 1,
			[]string{"the xnnpack delegate cannot be used", lib}},
		{"detect native strict", []string{"detect", "--model", model, "--backend", "native", "--strict", "--library", lib, photo}, 1,
			[]string{"the native backend cannot be used", lib}},
		{"detect gpu without strict falls back", []string{"detect", "--model", model, "--delegate", "gpu", "--library", lib, "--json", photo}, 0, nil},
		{"run model.strict", []string{"run", "--config", runCfg}, 1,
			[]string{"model.path", "the gpu delegate cannot be used", lib}},
		{"info gpu strict", []string{"info", "--model", model, "--delegate", "gpu", "--strict", "--library", lib}, 1,
			[]string{"--strict: the gpu delegate cannot be used", lib}},
		{"info native strict", []string{"info", "--backend", "native", "--strict", "--library", lib}, 1,
			[]string{"--strict: the native engine cannot be used", lib}},
		{"info without strict", []string{"info", "--delegate", "gpu", "--library", lib}, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, code := run(t, tt.args...)
			if code != tt.code {
				t.Fatalf("exit status %d, want %d; stderr:\n%s", code, tt.code, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr does not say %q:\n%s", w, stderr)
				}
			}
		})
	}
}
