package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"edgefleet/models"
	"edgefleet/models/modeltest"
	"edgefleet/models/tflite"
	"edgefleet/models/yolo/yolotest"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// agentBinary builds edge-agent once per test run.
func agentBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "edge-agent-test-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "edge-agent")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = errors.New("go build: " + err.Error() + "\n" + string(out))
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// run runs edge-agent with a time limit and returns stdout, stderr and the exit code.
func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(agentBinary(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(3 * time.Minute):
		cmd.Process.Kill()
		t.Fatalf("edge-agent %v: timed out", args)
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

// withUnsupportedOp returns a copy of a real model whose first operator code
// is a builtin the pure-Go interpreter does not implement.
func withUnsupportedOp(t *testing.T, model []byte) []byte {
	t.Helper()
	supported := map[tflite.BuiltinOp]bool{tflite.OpCustom: true}
	for _, op := range tflite.SupportedOps() {
		supported[op] = true
	}
	op := -1
	for c := 1; c < 127; c++ {
		if !supported[tflite.BuiltinOp(c)] {
			op = c
			break
		}
	}
	if op < 0 {
		t.Skip("the interpreter supports every builtin below 127")
	}
	b := append([]byte(nil), model...)
	u32 := func(p int) int { return int(binary.LittleEndian.Uint32(b[p:])) }
	// field returns the position of field i of the table at p, or 0.
	field := func(p, i int) int {
		vt := p - int(int32(binary.LittleEndian.Uint32(b[p:])))
		if 4+2*i >= int(binary.LittleEndian.Uint16(b[vt:])) {
			return 0
		}
		off := int(binary.LittleEndian.Uint16(b[vt+4+2*i:]))
		if off == 0 {
			return 0
		}
		return p + off
	}
	root := u32(0)
	vec := field(root, 1) // Model.operator_codes
	vec += u32(vec)
	code0 := vec + 4 + u32(vec+4) // first OperatorCode table
	patched := false
	if f := field(code0, 0); f != 0 { // deprecated_builtin_code (int8)
		b[f] = byte(op)
		patched = true
	}
	if f := field(code0, 3); f != 0 { // builtin_code (int32)
		binary.LittleEndian.PutUint32(b[f:], uint32(op))
		patched = true
	}
	if !patched {
		t.Skip("model stores no builtin code to patch")
	}
	if _, err := tflite.Open(t.Context(), b, models.Options{}); !errors.Is(err, models.ErrUnsupported) {
		t.Fatalf("patched model opens with %v, want ErrUnsupported", err)
	}
	return b
}

// TestDetectBadInputs: each bad input gives one error line naming the file
// and the problem, nothing on stdout, and exit status 1; a usage error (a
// flag or argument wrong or missing) gives the error line, then the usage,
// and exit status 2.
func TestDetectBadInputs(t *testing.T) {
	dir := t.TempDir()
	realModel := modeltest.Path(t, "models", "yolov8n_full_integer_quant.tflite")
	img := modeltest.Path(t, "images", "chelsea.png")
	mb, err := os.ReadFile(realModel)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	notModel := write("notes.tflite", []byte("these are my notes, not a model\n"))
	truncated := write("truncated.tflite", mb[:len(mb)/3])
	unsupported := write("unsupported.tflite", withUnsupportedOp(t, mb))
	fakePNG := write("fake.png", []byte("GIF89a this is not a PNG"))
	missingModel := filepath.Join(dir, "missing.tflite")
	missingImage := filepath.Join(dir, "missing.png")

	tests := []struct {
		name string
		args []string
		want []string // substrings of the first stderr line
	}{
		{"missing model", []string{"--model", missingModel, img}, []string{missingModel, "no such file"}},
		{"not a model", []string{"--model", notModel, img}, []string{notModel, "not a .tflite model"}},
		{"truncated model", []string{"--model", truncated, img}, []string{truncated, "invalid model"}},
		{"unsupported op", []string{"--model", unsupported, img}, []string{unsupported, "unsupported", "not implemented"}},
		{"not a png", []string{"--model", realModel, fakePNG}, []string{fakePNG, "not a PNG or JPEG"}},
		{"missing image", []string{"--model", realModel, img, missingImage}, []string{missingImage, "no such file"}},
		{"no model flag", []string{img}, []string{"--model is required"}},
		{"no images", []string{"--model", realModel}, []string{"no images"}},
		{"unknown flag", []string{"--model", realModel, "--colour", "red", img}, []string{"-colour"}},
		{"bad conf", []string{"--model", realModel, "--conf", "2", img}, []string{"--conf 2"}},
		{"bad backend", []string{"--model", realModel, "--backend", "tpu", img}, []string{realModel, "tpu"}},
		{"native library missing", []string{"--model", realModel, "--backend", "native", "--library", filepath.Join(dir, "libtensorflowlite_c.so"), img},
			[]string{filepath.Join(dir, "libtensorflowlite_c.so"), "TFLite C library not found"}},
		{"native library not a library", []string{"--model", realModel, "--backend", "native", "--strict", "--library", notModel, img}, []string{notModel}},
	}
	usageErrors := map[string]bool{"no model flag": true, "no images": true, "unknown flag": true, "bad conf": true}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := run(t, append([]string{"detect"}, tt.args...)...)
			want := 1
			if usageErrors[tt.name] {
				want = 2
			}
			if code != want {
				t.Errorf("exit status %d, want %d", code, want)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
			lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
			switch {
			case want == 2 && (len(lines) < 2 || !strings.HasPrefix(lines[1], "usage: edge-agent detect --model PATH IMAGE...")):
				t.Fatalf("stderr lacks the usage after the error:\n%s", stderr)
			case want == 1 && (len(lines) != 1 || lines[0] == ""):
				t.Fatalf("stderr has %d lines, want 1:\n%s", len(lines), stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(lines[0], w) {
					t.Errorf("error line %q does not mention %q", lines[0], w)
				}
			}
		})
	}
}

// TestDetectReferencePairs is issue 2's acceptance test: on every reference
// pair, `edge-agent detect --json` finds the same objects as the real TFLite
// runtime, by yolotest.Agree. Each model runs once over its four photos in
// batches of 4; one model also runs with batch 1, which must give the same
// detections.
func TestDetectReferencePairs(t *testing.T) {
	byModel := map[string][]*yolotest.Reference{}
	for _, p := range modeltest.Glob(t, "reference/*.json") {
		r, err := yolotest.ReadReference(p)
		if err != nil {
			t.Fatal(err)
		}
		byModel[r.Model] = append(byModel[r.Model], r)
	}
	var names []string
	for m := range byModel {
		names = append(names, m)
	}
	sort.Strings(names)
	dir := t.TempDir()
	for _, m := range names {
		t.Run(m, func(t *testing.T) {
			refs := byModel[m]
			args := []string{"detect", "--json", "--threads", "2", "--batch", "4",
				"--model", modeltest.Path(t, "models", m), "--annotate", dir}
			if m == "yolov5n-int8.tflite" {
				// No embedded metadata: names come from --labels.
				args = append(args, "--labels", modeltest.Path(t, "models", "coco80.txt"))
			}
			for _, r := range refs {
				args = append(args, modeltest.Path(t, "images", r.Image))
			}
			got := runJSON(t, args)
			if len(got) != len(refs) {
				t.Fatalf("%d output lines for %d images", len(got), len(refs))
			}
			for i, r := range refs {
				l := got[i]
				if filepath.Base(l.Image) != r.Image || l.Width != r.ImageSizeWH[0] || l.Height != r.ImageSizeWH[1] {
					t.Errorf("line %d: image %s %dx%d, want %s %v", i, l.Image, l.Width, l.Height, r.Image, r.ImageSizeWH)
				}
				if err := yolotest.Agree(r.Dets(), l.Detections); err != nil {
					t.Errorf("%s: does not agree with the reference:\n%v\ngot:  %v\nwant: %v", r.Pair(), err, l.Detections, r.Dets())
				}
				for _, d := range l.Detections {
					if want := refName(refs, d.ClassID); want != "" && d.Label != want {
						t.Errorf("%s: class %d labelled %q, want %q", r.Pair(), d.ClassID, d.Label, want)
					}
				}
				if l.TimingsMS.Inference <= 0 {
					t.Errorf("%s: inference time %v", r.Pair(), l.TimingsMS.Inference)
				}
				if _, err := os.Stat(filepath.Join(dir, r.Image)); err != nil {
					t.Errorf("annotated picture: %v", err)
				}
			}
			if m != "yolov8n_full_integer_quant.tflite" {
				return
			}
			for i := range args {
				if args[i] == "--batch" {
					args[i+1] = "1"
				}
			}
			one := runJSON(t, args)
			for i := range one {
				if !reflect.DeepEqual(one[i].Detections, got[i].Detections) {
					t.Errorf("%s: batch 1 gives %v, batch 4 gives %v", one[i].Image, one[i].Detections, got[i].Detections)
				}
			}
		})
	}
}

func refName(refs []*yolotest.Reference, class int) string {
	for _, r := range refs {
		for _, d := range r.Detections {
			if d.Class == class {
				return d.Name
			}
		}
	}
	return ""
}

func runJSON(t *testing.T, args []string) []detectLine {
	t.Helper()
	stdout, stderr, code := run(t, args...)
	if code != 0 {
		t.Fatalf("edge-agent %v: exit %d: %s", args, code, stderr)
	}
	var out []detectLine
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	for dec.More() {
		var l detectLine
		if err := dec.Decode(&l); err != nil {
			t.Fatalf("output %q: %v", stdout, err)
		}
		if l.Detections == nil {
			t.Errorf("%s: detections is null, want a list", l.Image)
		}
		out = append(out, l)
	}
	return out
}

func TestParseDetectFlags(t *testing.T) {
	f, err := parseDetectFlags([]string{"a.png", "--model", "m.tflite", "--json", "b.jpg", "--batch", "4", "--classes", "0, 2"}, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f.images, []string{"a.png", "b.jpg"}) || f.model != "m.tflite" || !f.jsonOut || f.batch != 4 || f.conf != 0.25 || f.iou != 0.45 {
		t.Errorf("flags %+v", f)
	}
	if f.strict || f.library != "" {
		t.Errorf("--strict and --library default to off and empty: %+v", f)
	}
	if ids, err := f.classIDs(nil); err != nil || !reflect.DeepEqual(ids, []int{0, 2}) {
		t.Errorf("classes %v %v", ids, err)
	}
	for _, bad := range [][]string{
		{"--model", "m", "--iou", "0", "a"},
		{"--model", "m", "--threads", "0", "a"},
		{"--model", "m", "--batch", "100", "a"},
		{"--model", "m", "--delegate", "npu", "a"},
		{"--model", "m", "--max-det", "0", "a"},
		{"--model", "m", "--backend", "go", "--library", "/lib/libtensorflowlite_c.so", "a"},
		{"--model", "m", "--strict=maybe", "a"},
		{"--model", "m", "--profile", "--backend", "native", "a"},
		{"--model", "m", "--profile", "--profile-top", "-2", "a"},
	} {
		if _, err := parseDetectFlags(bad, os.Stderr); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	f, err = parseDetectFlags([]string{"--model", "m", "--backend", "native", "--delegate", "xnnpack", "--strict", "--library", "/opt/tflite/libtensorflowlite_c.so", "a"}, os.Stderr)
	if err != nil || !f.strict || f.library != "/opt/tflite/libtensorflowlite_c.so" {
		t.Errorf("--strict --library: %+v %v", f, err)
	}
	f, _ = parseDetectFlags([]string{"--model", "m", "--classes", "x", "a"}, os.Stderr)
	if _, err := f.classIDs(nil); err == nil {
		t.Error("--classes x accepted for a model without labels")
	}
	labels := []string{"person", "bicycle", "car"}
	for _, tt := range []struct {
		classes string
		ids     []int
		err     string
	}{
		{"person, car", []int{0, 2}, ""},
		{"car,1", []int{2, 1}, ""},
		{"persn", nil, `--classes: "persn" is not a label of model m`},
		{"3", nil, `--classes: "3" is not a label of model m`},
	} {
		f, _ := parseDetectFlags([]string{"--model", "m", "--classes", tt.classes, "a"}, os.Stderr)
		ids, err := f.classIDs(labels)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("--classes %s: error %v, want %s", tt.classes, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(ids, tt.ids) {
			t.Errorf("--classes %s: %v %v, want %v", tt.classes, ids, err, tt.ids)
		}
	}
}

// TestDetectText checks the readable output and the class filter.
func TestDetectText(t *testing.T) {
	model := modeltest.Path(t, "models", "yolov8n_full_integer_quant.tflite")
	img := modeltest.Path(t, "images", "chelsea.png")
	tests := []struct {
		name    string
		args    []string
		want    []string
		notWant []string
	}{
		{"all classes", []string{img}, []string{img + " 451x300:", "cat 0.", "inference"}, nil},
		{"only cats", []string{"--classes", "15", img}, []string{"cat 0."}, []string{"clock"}},
		{"only clocks", []string{"--classes", "74", img}, []string{"clock 0."}, []string{"cat"}},
		{"only cats, by name", []string{"--classes", "cat", img}, []string{"cat 0."}, []string{"clock"}},
		{"clocks and cats, by name and id", []string{"--classes", "clock,15", img}, []string{"cat 0.", "clock 0."}, nil},
		{"nothing above 0.99", []string{"--conf", "0.99", img}, []string{"nothing found"}, []string{"cat"}},
		{"profile", []string{"--profile", "--profile-top", "3", img}, []string{"cat 0.", "top 3 of 255 operators by time", "by operator type", "MAX_POOL_2D"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := run(t, append([]string{"detect", "--model", model}, tt.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if n := strings.Count(stdout, "\n"); n != 1 && tt.name != "profile" {
				t.Errorf("%d lines, want 1: %q", n, stdout)
			}
			for _, w := range tt.want {
				if !strings.Contains(stdout, w) {
					t.Errorf("output %q lacks %q", stdout, w)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(stdout, w) {
					t.Errorf("output %q has %q", stdout, w)
				}
			}
		})
	}
}
