package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// sample is a package whose tests pass, fail and skip, and a package that
// does not build.
var sample = map[string]string{
	"go.mod": "module sample\n\ngo 1.26\n",
	"a/a_test.go": `package a

import "testing"

func TestPass(t *testing.T) { t.Log("quiet") }
func TestFail(t *testing.T) { t.Error("boom: wanted 1") }
func TestSkip(t *testing.T) { t.Skip("EDGEFLEET_X not set") }
func TestSub(t *testing.T) {
	t.Run("ok", func(t *testing.T) {})
	t.Run("skipped", func(t *testing.T) { t.Skipf("no %s here", "chromium") })
}
`,
	"b/b_test.go": "package b\n\nimport \"testing\"\n\nfunc TestBroken(t *testing.T) { undefined() }\n",
}

// TestReport runs a real `go test -json` over sample and checks the
// readable stream, the report and the exit verdict.
func TestReport(t *testing.T) {
	dir := t.TempDir()
	for name, src := range sample {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("go", "test", "-json", "./...")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off")
	stream, err := cmd.Output()
	if err == nil {
		t.Fatal("go test passed on a failing package")
	}
	var out, raw bytes.Buffer
	r, err := run(bytes.NewReader(stream), &out, &raw)
	if err != nil {
		t.Fatal(err)
	}
	r.summary(&out)
	if !bytes.Equal(raw.Bytes(), stream) {
		t.Error("the raw copy differs from the input")
	}
	if r.ok() {
		t.Error("report is ok for a failing run")
	}
	got := out.String()
	for _, want := range []string{
		"boom: wanted 1",       // a failing test's output
		"--- FAIL: TestFail",   //
		"undefined: undefined", // build output
		"FAIL\tsample/a",       // package result
		"failed (1):\n  sample/a TestFail\n",
		"BUILD FAILED sample/b",
		"sample/a TestSkip: a_test.go:7: EDGEFLEET_X not set\n", // skip with its message
		"EDGEFLEET_X not set",
		"sample/a TestSub/skipped: ",
		"no chromium here",
		"BUILD FAILED sample/b [sample/b.test]\nfailed", // no second line for sample/b
		"\n3 passed, 1 failed, 2 skipped\n",             // TestPass, TestSub, TestSub/ok
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	for _, unwanted := range []string{"=== RUN", "quiet", "--- PASS"} {
		if strings.Contains(got, unwanted) {
			t.Errorf("output has %q, which plain go test does not print:\n%s", unwanted, got)
		}
	}
}

func TestReportPassing(t *testing.T) {
	stream := `{"Action":"start","Package":"p"}
{"Action":"run","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}
{"Action":"output","Package":"p","Test":"TestA","Output":"--- PASS: TestA (0.00s)\n"}
{"Action":"pass","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Output":"PASS\n"}
{"Action":"output","Package":"p","Output":"ok  \tp\t0.01s\n"}
{"Action":"pass","Package":"p"}
`
	var out bytes.Buffer
	r, err := run(strings.NewReader(stream), &out, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.summary(&out)
	if !r.ok() {
		t.Error("report is not ok for a passing run")
	}
	want := "ok  \tp\t0.01s\n\n=== test report ===\nskipped (0):\n1 passed, 0 failed, 0 skipped\n"
	if out.String() != want {
		t.Errorf("output = %q, want %q", out.String(), want)
	}
}

// TestReportTimeout runs a real package whose test outlives -timeout: test2json
// gives that test no end event, and the report must still name it and show
// its last words and the panic.
func TestReportTimeout(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"go.mod": "module hang\n\ngo 1.26\n",
		"h_test.go": `package hang

import (
	"testing"
	"time"
)

func TestQuick(t *testing.T) {}
func TestHang(t *testing.T) {
	t.Log("waiting for the broker")
	<-time.After(time.Minute)
}
`,
	}
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("go", "test", "-json", "-timeout", "2s", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off")
	stream, err := cmd.Output()
	if err == nil {
		t.Fatal("go test passed past its timeout")
	}
	var out bytes.Buffer
	r, err := run(bytes.NewReader(stream), &out, nil)
	if err != nil {
		t.Fatal(err)
	}
	var sum bytes.Buffer
	r.summary(&sum)
	if r.ok() {
		t.Error("report is ok for a run that timed out")
	}
	for _, want := range []string{
		"FAIL hang (no failing test",
		"NEVER ENDED hang TestHang\n",
		"waiting for the broker",
		"panic: test timed out after 2s",
		"1 passed, 0 failed, 0 skipped",
	} {
		if !strings.Contains(sum.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, sum.String())
		}
	}
	if !strings.Contains(out.String(), "goroutine ") {
		t.Errorf("the stream lacks the goroutine dump:\n%s", out.String())
	}
}

// TestCrashDigest keeps the goroutines blocked in module code for minutes
// and drops the rest of the dump.
func TestCrashDigest(t *testing.T) {
	out := "    x_test.go:10: started fleetd\n" +
		"panic: test timed out after 25m0s\n\trunning tests:\n\t\tTestX (25m0s)\n\n" +
		"goroutine 1 [chan receive]:\ntesting.(*T).Run()\n\n" +
		"goroutine 7 [select, 24 minutes]:\nedgefleet/fleet/controller.(*Server).Stop()\n\t/src/edgefleet/fleet/controller/server.go:88\n\n" +
		"goroutine 9 [IO wait, 24 minutes]:\ninternal/poll.runtime_pollWait()\n\n"
	got := crashDigest(out)
	for _, want := range []string{"started fleetd", "panic: test timed out after 25m0s", "goroutine 7 [select, 24 minutes]", "(*Server).Stop()"} {
		if !strings.Contains(got, want) {
			t.Errorf("digest lacks %q:\n%s", want, got)
		}
	}
	for _, unwanted := range []string{"goroutine 1 ", "goroutine 9 "} {
		if strings.Contains(got, unwanted) {
			t.Errorf("digest has %q:\n%s", unwanted, got)
		}
	}
}
