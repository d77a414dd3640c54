//go:build linux && (amd64 || arm64) && !omit_native

package native

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"edgefleet/models"
	"edgefleet/models/modeltest"
	"edgefleet/models/tflite"
)

// referenceInput returns the exact chelsea.png input tensor the shared test
// data holds for a model (native/ first, then wasm/).
func referenceInput(t testing.TB, model string) []byte {
	t.Helper()
	stem := strings.TrimSuffix(model, ".tflite")
	for _, dir := range []string{"native", "wasm"} {
		p := filepath.Join(modeltest.Path(t), "tensors", dir, stem+"__chelsea.input.bin")
		if b, err := os.ReadFile(p); err == nil {
			return b
		}
	}
	t.Fatalf("no reference input tensor for %s", model)
	return nil
}

// TestEnginesAgree runs the native and the pure-Go engine on the same input
// for every model the library loads, and reports how far their raw output
// tensors are apart: in quantization steps for int8/uint8, in absolute value
// for float32. They must stay within the drift two real TFLite runtimes
// show on these files (see diffStats.tooFar).
func TestEnginesAgree(t *testing.T) {
	lib := libPath(t)
	for _, path := range modeltest.Glob(t, "models/*.tflite") {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			if (testing.Short() || raceEnabled) && name != "yolov8n_full_integer_quant.tflite" {
				// The go engine is slow under -race: one model there, all without it.
				t.Skip("-short or -race: one model")
			}
			model := readModel(t, name)
			opts := models.Options{Library: lib, Threads: 2}
			ne, err := Open(context.Background(), model, opts)
			if errors.Is(err, models.ErrUnsupported) {
				t.Skipf("this library cannot load it: %v", err)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer ne.Close()
			ge, err := tflite.Open(context.Background(), model, models.Options{Threads: 2})
			if err != nil {
				t.Fatal(err)
			}
			defer ge.Close()
			in := referenceInput(t, name)
			for _, e := range []models.Engine{ne, ge} {
				if got := len(e.Input(0)); got != len(in) {
					t.Fatalf("%s engine input is %d bytes, reference %d", e.Info().Engine, got, len(in))
				}
				copy(e.Input(0), in)
				if err := e.Invoke(context.Background()); err != nil {
					t.Fatalf("%s: %v", e.Info().Engine, err)
				}
			}
			for i, out := range ne.Outputs() {
				if g := ge.Outputs()[i]; g.Type != out.Type || !equalInts(g.Shape, out.Shape) {
					t.Fatalf("output %d: native %v %v, go %v %v", i, out.Type, out.Shape, g.Type, g.Shape)
				}
				s := compare(t, out.Type, ge.Output(i), ne.Output(i))
				t.Logf("%s output %d %v%v: go vs native TFLite %s: max %.4g mean %.4g p99 %.4g %s, %.2f%% of %d elements differ",
					name, i, out.Type, out.Shape, ne.Info().Version, s.max, s.mean, s.p99, unit(out.Type), 100*float64(s.differ)/float64(max(s.n, 1)), s.n)
				if s.tooFar(out.Type) {
					t.Errorf("the engines drift apart more than two real TFLite runtimes do")
				}
			}
		})
	}
}

// BenchmarkNative compares the native library with the pure-Go engine on
// the same models and threads (make bench; skipped without the library).
func BenchmarkNative(b *testing.B) {
	lib := libPath(b)
	delegates := []string{"none"}
	if l, err := loadLibrary(lib); err == nil && l.xnnCreate != nil {
		delegates = append(delegates, "xnnpack")
	}
	for _, name := range []string{"yolov8n_full_integer_quant.tflite", "yolo11n_full_integer_quant.tflite", "yolov5n-int8.tflite"} {
		model := readModel(b, name)
		in := referenceInput(b, name)
		for _, threads := range []int{1, 2} {
			type cfg struct {
				label string
				open  func() (models.Engine, error)
			}
			cfgs := []cfg{{"engine=go", func() (models.Engine, error) {
				return tflite.Open(context.Background(), model, models.Options{Threads: threads})
			}}}
			for _, d := range delegates {
				cfgs = append(cfgs, cfg{"engine=native/delegate=" + d, func() (models.Engine, error) {
					return Open(context.Background(), model, models.Options{Library: lib, Threads: threads, Delegate: d, Strict: true})
				}})
			}
			for _, c := range cfgs {
				b.Run(fmt.Sprintf("model=%s/threads=%d/%s", strings.TrimSuffix(name, ".tflite"), threads, c.label), func(b *testing.B) {
					e, err := c.open()
					if err != nil {
						b.Skip(err)
					}
					defer e.Close()
					copy(e.Input(0), in)
					if err := e.Invoke(context.Background()); err != nil { // warm up: weight packing, caches
						b.Fatal(err)
					}
					b.ResetTimer()
					cpu0 := cpuTime()
					for b.Loop() {
						if err := e.Invoke(context.Background()); err != nil {
							b.Fatal(err)
						}
					}
					// CPU time of the whole process (all threads) per invoke:
					// unlike wall time (ms/op), it holds still on a busy machine.
					b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(b.N), "cpu-ms/op")
				})
			}
		}
	}
}

// cpuTime is the CPU time (user+system) the process has used so far.
func cpuTime() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
