package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"edgefleet/models/modeltest"
	"edgefleet/models/native"
)

func TestInfoModel(t *testing.T) {
	model := modeltest.Path(t, "models", "yolov8n_full_integer_quant.tflite")
	noLib := filepath.Join(t.TempDir(), "libtensorflowlite_c.so")
	r, err := info(context.Background(), &infoFlags{model: model, library: noLib, threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	m := r.Model
	if m == nil || len(m.Inputs) != 1 || len(m.Outputs) != 1 {
		t.Fatalf("model = %+v", m)
	}
	// From MODELS.md, which the real runtime produced.
	in, out := m.Inputs[0], m.Outputs[0]
	if in.Name != "serving_default_images:0" || in.Type != "int8" || !equalShape(in.Shape, 1, 640, 640, 3) || in.ZeroPoint[0] != -14 {
		t.Errorf("input = %+v", in)
	}
	if out.Name != "PartitionedCall:0" || out.Type != "int8" || !equalShape(out.Shape, 1, 84, 8400) || out.ZeroPoint[0] != -128 {
		t.Errorf("output = %+v", out)
	}
	if n := opCount(m.Operators); n != 255 {
		t.Errorf("%d operators, want 255", n)
	}
	found := false
	for _, op := range m.Operators {
		if op.Name == "CONV_2D" {
			found = op.Version == 3 && op.Count == 64
		}
		if !op.Go {
			t.Errorf("operator %s not marked as in the go engine", op.Name)
		}
	}
	if !found {
		t.Errorf("no CONV_2D v3 ×64 in %+v", m.Operators)
	}
	if m.Metadata == nil || len(m.Metadata.Names) != 80 {
		t.Errorf("metadata = %+v", m.Metadata)
	}
	if len(r.Engines) < 2 || r.Engines[0].Engine != "go" || !r.Engines[0].Usable {
		t.Fatalf("engines = %+v", r.Engines)
	}
	nat := r.Engines[1]
	if nat.Engine != "native" || nat.Usable || !strings.Contains(nat.Error, noLib) {
		t.Errorf("native = %+v, want not usable naming %s", nat, noLib)
	}

	var buf bytes.Buffer
	if err := r.print(&buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"serving_default_images:0", "scale 0.018658448 zero_point -14", "CONV_2D", "×64", "engines on this box", "native  not usable"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("text output lacks %q:\n%s", want, buf.String())
		}
	}
}

func equalShape(s []int, want ...int) bool {
	if len(s) != len(want) {
		return false
	}
	for i := range s {
		if s[i] != want[i] {
			return false
		}
	}
	return true
}

func TestInfoBadInputs(t *testing.T) {
	dir := t.TempDir()
	png := filepath.Join(dir, "x.tflite")
	if err := os.WriteFile(png, []byte("\x89PNG\r\n\x1a\n not a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, model, want string }{
		{"missing", filepath.Join(dir, "none.tflite"), "no such file"},
		{"not a model", png, "TFL3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := info(context.Background(), &infoFlags{model: tt.model, threads: 1})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestInfoWithoutModel(t *testing.T) {
	r, err := info(context.Background(), &infoFlags{library: "libc.so.6", threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if r.Model != nil || len(r.Engines) < 2 || !r.Engines[0].Usable {
		t.Fatalf("report = %+v", r)
	}
	if native.Built && (r.Engines[1].Usable || !strings.Contains(r.Engines[1].Error, "TfLiteVersion")) {
		t.Errorf("native with libc = %+v, want a missing-symbol error", r.Engines[1])
	}
}

// TestInfoNativeLibrary: with the library, info says which engines and
// delegates run the model.
func TestInfoNativeLibrary(t *testing.T) {
	lib := os.Getenv(native.LibraryEnv)
	if lib == "" || !native.Built {
		t.Skipf("needs the TFLite C library: set %s", native.LibraryEnv)
	}
	model := modeltest.Path(t, "models", "yolov5n-int8.tflite")
	r, err := info(context.Background(), &infoFlags{model: model, threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if r.Native.Version == "" || len(r.Engines) != 4 {
		t.Fatalf("report = %+v", r)
	}
	if nat := r.Engines[1]; !nat.Usable || nat.Version != r.Native.Version {
		t.Errorf("native = %+v", nat)
	}
	for i, d := range r.Native.Delegates {
		if u := r.Engines[2+i]; u.Delegate != d.Name || (!d.Available && u.Usable) {
			t.Errorf("delegate %s: %+v vs probe %+v", d.Name, u, d)
		}
	}
}

func TestParseInfoFlags(t *testing.T) {
	tests := []struct {
		args []string
		ok   bool
	}{
		{nil, true},
		{[]string{"--model", "m.tflite", "--json", "--threads", "2"}, true},
		{[]string{"--threads", "0"}, false},
		{[]string{"extra"}, false},
		{[]string{"--nope"}, false},
		{[]string{"--delegate", "gpu", "--backend", "native", "--strict"}, true},
		{[]string{"--delegate", "cuda"}, false},
		{[]string{"--backend", "tpu"}, false},
		{[]string{"--model", "m.tflite", "--profile", "--profile-top", "0", "--profile-runs", "2"}, true},
		{[]string{"--profile"}, false},
		{[]string{"--model", "m.tflite", "--profile", "--profile-runs", "0"}, false},
		{[]string{"--model", "m.tflite", "--profile", "--profile-top", "-1"}, false},
	}
	for _, tt := range tests {
		_, err := parseInfoFlags(tt.args, io.Discard)
		if (err == nil) != tt.ok {
			t.Errorf("parseInfoFlags(%q) err = %v", tt.args, err)
		}
	}
}

// TestInfoProfile: info --profile reports every operator of the model once,
// with times that add up to the invoke, and prints the table.
func TestInfoProfile(t *testing.T) {
	model := modeltest.Path(t, "models", "yolov8n_full_integer_quant.tflite")
	f, err := parseInfoFlags([]string{"--model", model, "--profile", "--profile-runs", "1", "--library", filepath.Join(t.TempDir(), "none.so")}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	r, err := info(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	p := r.Profile
	if p == nil || p.Invokes != 1 || len(p.Ops) != 255 {
		t.Fatalf("profile = %+v, want 255 operators over 1 invoke", p)
	}
	var sum time.Duration
	for _, o := range p.Ops {
		sum += o.Time
	}
	if d := sum - p.Invoke; d < -p.Invoke/10 || d > p.Invoke/10 {
		t.Errorf("operators sum to %v, invoke %v", sum, p.Invoke)
	}
	var buf bytes.Buffer
	if err := writeProfile(&buf, model, p, 5); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`top 5 of 255 operators by time`, `by operator type`, `\nCONV_2D +64 `} {
		if !regexp.MustCompile(want).MatchString(buf.String()) {
			t.Errorf("table lacks %q:\n%s", want, buf.String())
		}
	}
}
