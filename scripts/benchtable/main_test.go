package main

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

const passing = `goos: linux
goarch: amd64
pkg: edgefleet/models/yolo
cpu: AMD EPYC
BenchmarkLetterbox1080p-2   	     100	   2279734 ns/op	         2.280 ms/op	     133 B/op	       1 allocs/op
BenchmarkDecodeNMS-2        	     100	    149620 ns/op	         0.1496 ms/op	      22 B/op	       0 allocs/op
PASS
ok  	edgefleet/models/yolo	0.624s
?   	edgefleet/fleet/api	[no test files]
goos: linux
pkg: edgefleet/models/tflite
BenchmarkInvoke/yolov8n_int8_640/threads=1/batch=1-2         	       1	 512000000 ns/op	       512.0 ms/image	        31.50 arena-MiB	 1024 B/op	       7 allocs/op
--- SKIP: BenchmarkOther
    bench_test.go:12: test asset missing: x.tflite
PASS
ok  	edgefleet/models/tflite	3.1s
`

const failing = `pkg: edgefleet/models/yolo
BenchmarkDecodeNMS-2        	     100	    149620 ns/op	      22 B/op	       0 allocs/op
--- FAIL: BenchmarkLetterbox1080p
    bench_test.go:30: letterbox: boom
FAIL
exit status 1
FAIL	edgefleet/models/yolo	0.1s
# edgefleet/models/tflite/kernel
models/tflite/kernel/x.go:1:1: undefined: y
ok  	edgefleet/scripts	0.1s
`

func TestParsePassing(t *testing.T) {
	var fail bytes.Buffer
	tb, err := parse(strings.NewReader(passing), &fail)
	if err != nil {
		t.Fatal(err)
	}
	if tb.failed || fail.Len() != 0 {
		t.Fatalf("failed=%v, passed through %q", tb.failed, fail.String())
	}
	if len(tb.rows) != 3 {
		t.Fatalf("%d rows, want 3", len(tb.rows))
	}
	if r := tb.rows[2]; r.pkg != "edgefleet/models/tflite" || r.name != "Invoke/yolov8n_int8_640/threads=1/batch=1" || r.metrics["ms/image"] != 512 {
		t.Errorf("row %+v", r)
	}
	if got := strings.Join(tb.units, ","); got != "ms/image,arena-MiB" {
		t.Errorf("units %q", got)
	}
	var out bytes.Buffer
	tb.print(&out)
	want := []string{
		"edgefleet/models/yolo",
		"  benchmark       runs  ms/op   B/op  allocs/op",
		"  Letterbox1080p  100   2.28    133   1",
		"  DecodeNMS       100   0.1496  22    0",
		"",
		"edgefleet/models/tflite",
		"  benchmark                                  runs  ms/op  ms/image  arena-MiB  B/op  allocs/op",
		"  Invoke/yolov8n_int8_640/threads=1/batch=1  1     512    512       31.50      1024  7",
		"",
		"note: SKIP: BenchmarkOther: bench_test.go:12: test asset missing: x.tflite",
	}
	got := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	if len(got) != len(want) {
		t.Fatalf("table:\n%s", out.String())
	}
	for i := range want {
		if strings.Join(strings.Fields(got[i]), " ") != strings.Join(strings.Fields(want[i]), " ") {
			t.Errorf("line %d:\n got %q\nwant %q", i, got[i], want[i])
		}
	}
}

func TestParseFailing(t *testing.T) {
	var fail bytes.Buffer
	tb, err := parse(strings.NewReader(failing), &fail)
	if err != nil {
		t.Fatal(err)
	}
	if !tb.failed || len(tb.rows) != 1 {
		t.Fatalf("failed=%v rows=%d", tb.failed, len(tb.rows))
	}
	for _, w := range []string{"--- FAIL: BenchmarkLetterbox1080p", "letterbox: boom", "FAIL\tedgefleet/models/yolo", "undefined: y"} {
		if !strings.Contains(fail.String(), w) {
			t.Errorf("passed-through text lacks %q:\n%s", w, fail.String())
		}
	}
	if strings.Contains(fail.String(), "ok  \tedgefleet/scripts") {
		t.Error("ok line passed through as a failure")
	}
}

func TestParseRow(t *testing.T) {
	tests := []struct {
		line string
		ok   bool
	}{
		{"BenchmarkX-8 10 100 ns/op", true},
		{"BenchmarkX-8 10 100 ns/op 5 B/op", true},
		{"BenchmarkX-8 ten 100 ns/op", false},
		{"BenchmarkX-8 10 abc ns/op", false},
		{"BenchmarkX-8 10 100", false},
		{"BenchmarkX", false},
	}
	for _, tt := range tests {
		if _, ok := parseRow(tt.line); ok != tt.ok {
			t.Errorf("parseRow(%q) ok = %v, want %v", tt.line, ok, tt.ok)
		}
	}
}

// TestExitStatus runs the command: non-zero on failures and on empty input.
func TestExitStatus(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command")
	}
	bin := t.TempDir() + "/benchtable"
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	for _, tt := range []struct {
		in   string
		code int
	}{{passing, 0}, {failing, 1}, {"", 1}} {
		cmd := exec.Command(bin)
		cmd.Stdin = strings.NewReader(tt.in)
		cmd.Stderr = os.Stderr
		var out bytes.Buffer
		cmd.Stdout = &out
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		if code != tt.code {
			t.Errorf("exit %d, want %d (output %q)", code, tt.code, out.String())
		}
	}
}
