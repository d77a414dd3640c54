package tflite

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"edgefleet/models"
	"edgefleet/models/modeltest"
)

// TestProfiler: every operator of each test model has a line in the
// profile (in run order, each once), the operator times add up to the
// invoke measured around Invoke within 10 %, and the table prints every
// operator and the per-type counts; at 1 thread and with the worker pool
// at 2 (an operator's time ends when its last chunk does).
func TestProfiler(t *testing.T) {
	// A float model with fused, folded and hybrid operators, and an int8
	// one; TestInfoProfile (edge-agent) runs a third. Emulated arm64 (CI's
	// qemu step, with its time limit) runs the small one only.
	for _, c := range []struct {
		name    string
		threads int
	}{{"yolo26n_int8_320_e2e", 1}, {"yolov8n_full_integer_quant", 1}, {"yolo26n_int8_320_e2e", 2}} {
		name := c.name
		t.Run(fmt.Sprintf("%s/threads=%d", name, c.threads), func(t *testing.T) {
			if (testing.Short() || runtime.GOARCH != "amd64") && name != "yolo26n_int8_320_e2e" {
				t.Skip("short, or not amd64: the small model only")
			}
			mb, err := os.ReadFile(modeltest.Path(t, "models", name+".tflite"))
			if err != nil {
				t.Fatal(err)
			}
			e, err := Open(context.Background(), mb, models.Options{Threads: c.threads})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			ip := e.(*Interpreter)
			ctx := context.Background()
			if err := ip.Invoke(ctx); err != nil { // warm up
				t.Fatal(err)
			}
			p := &Profiler{}
			ip.SetProfiler(p)
			const runs = 2
			var wall time.Duration
			for range runs {
				start := time.Now()
				if err := ip.Invoke(ctx); err != nil {
					t.Fatal(err)
				}
				wall += time.Since(start)
			}
			checkReport(t, ip, p.Report(), wall/runs)
			ip.SetProfiler(nil)
			if err := ip.Invoke(ctx); err != nil {
				t.Fatal(err)
			}
			if p.Report().Invokes != runs {
				t.Errorf("a detached profiler still counts invokes")
			}
		})
	}
}

func checkReport(t *testing.T, ip *Interpreter, r *ProfileReport, wall time.Duration) {
	t.Helper()
	nops := len(ip.Model().Subgraphs[0].Operators)
	if len(r.Ops) != nops {
		t.Fatalf("profile has %d operators, the model %d", len(r.Ops), nops)
	}
	var sum time.Duration
	convs := 0
	for i, o := range r.Ops {
		if o.Index != i {
			t.Fatalf("line %d is operator %d", i, o.Index)
		}
		sum += o.Time
		if o.Type == "CONV_2D" && !o.Folded {
			convs++
			if o.MACs <= 0 {
				t.Errorf("operator %d (CONV_2D %v) has no MACs", i, o.Shape)
			}
		}
	}
	if convs == 0 {
		t.Errorf("no CONV_2D profiled")
	}
	if diff := float64(sum-wall) / float64(wall); diff > 0.1 || diff < -0.1 {
		t.Errorf("operator times sum to %v, the invoke took %v (%+.1f%%)", sum, wall, 100*diff)
	}
	counted := 0
	for _, ty := range r.Types {
		counted += ty.Count
	}
	if counted != nops {
		t.Errorf("per-type counts add up to %d, want %d", counted, nops)
	}
	var buf bytes.Buffer
	if err := r.WriteTable(&buf, 0); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(buf.String(), "\n")
	for _, o := range r.Ops {
		if !hasLine(lines, fmt.Sprint(o.Index), o.Type) {
			t.Fatalf("table has no line for operator %d (%s):\n%s", o.Index, o.Type, buf.String())
		}
	}
	t.Logf("invoke %v, operators sum to %v\n%s", wall, sum, tableTop(r))
}

// hasLine says whether a line starts with the fields given.
func hasLine(lines []string, fields ...string) bool {
	for _, l := range lines {
		if f := strings.Fields(l); len(f) >= len(fields) && slices.Equal(f[:len(fields)], fields) {
			return true
		}
	}
	return false
}

func tableTop(r *ProfileReport) string {
	var buf bytes.Buffer
	_ = r.WriteTable(&buf, 10)
	return buf.String()
}

// TestProfilerOffCostsNothing: an invoke without a profiler allocates what
// it did before profiling existed, and attaching one adds no allocation.
func TestProfilerOffCostsNothing(t *testing.T) {
	mb, err := os.ReadFile(modeltest.Path(t, "models", "yolo26n_int8_320_e2e.tflite")) // the smallest
	if err != nil {
		t.Fatal(err)
	}
	e, err := Open(context.Background(), mb, models.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ip := e.(*Interpreter)
	ctx := context.Background()
	invoke := func() {
		if err := ip.Invoke(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// The mean of 10 invokes each: a rare allocation outside the
	// interpreter's control (the runtime, the race detector) does not count.
	off := testing.AllocsPerRun(10, invoke)
	ip.SetProfiler(&Profiler{})
	on := testing.AllocsPerRun(10, invoke)
	if on != off {
		t.Errorf("invoke allocates %v times with the profiler, %v without", on, off)
	}
}
