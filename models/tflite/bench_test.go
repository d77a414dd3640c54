package tflite

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"edgefleet/models"
	"edgefleet/models/modeltest"
)

func openBench(b *testing.B, name string, threads int) *Interpreter {
	b.Helper()
	mb, err := os.ReadFile(modeltest.Path(b, "models", name+".tflite"))
	if err != nil {
		b.Fatal(err)
	}
	e, err := Open(context.Background(), mb, models.Options{Threads: threads})
	if err != nil {
		b.Fatal(err)
	}
	return e.(*Interpreter)
}

// BenchmarkInvoke measures one inference of yolov8n int8 at 640 with 1 and
// 2 threads, and batch 4 per image.
func BenchmarkInvoke(b *testing.B) {
	for _, c := range []struct {
		threads, batch int
	}{{1, 1}, {2, 1}, {2, 4}} {
		b.Run(fmt.Sprintf("yolov8n_int8_640/threads=%d/batch=%d", c.threads, c.batch), func(b *testing.B) {
			benchInvoke(b, "yolov8n_full_integer_quant", c.threads, c.batch)
		})
	}
}

// benchNetworks are the four networks of issue 15, by their row names:
// full int8 yolov8n and yolo11n, yolov8n with float I/O and int8 weights
// (hybrid), and yolo26n end to end at 320.
var benchNetworks = []struct{ row, model string }{
	{"yolov8n_full_int8_640", "yolov8n_full_integer_quant"},
	{"yolo11n_full_int8_640", "yolo11n_full_integer_quant"},
	{"yolov8n_hybrid_640", "yolov8n_int8"},
	{"yolo26n_e2e_320", "yolo26n_int8_320_e2e"},
}

// BenchmarkNetworks measures one inference of each of the four networks at
// 1 and 2 threads, on the photo the golden tensors were made from; the ONNX
// Runtime figures beside them come from scripts/speedtable.sh.
func BenchmarkNetworks(b *testing.B) {
	for _, nw := range benchNetworks {
		for _, threads := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/threads=%d", nw.row, threads), func(b *testing.B) {
				benchInvoke(b, nw.model, threads, 1)
			})
		}
	}
}

// benchInput is the golden input tensor of model (chelsea), nil if absent.
func benchInput(model string) []byte {
	for _, dir := range []string{"native", "wasm"} {
		in, err := os.ReadFile(filepath.Join(modeltest.Dir(), "tensors", dir, model+"__chelsea.input.bin"))
		if err == nil {
			return in
		}
	}
	return nil
}

func benchInvoke(b *testing.B, model string, threads, batch int) {
	ip := openBench(b, model, threads)
	defer ip.Close()
	if err := ip.SetBatch(batch); err != nil {
		b.Fatal(err)
	}
	if in := benchInput(model); len(in) > 0 {
		for i := 0; i < batch; i++ {
			copy(ip.Input(0)[i*len(in):], in)
		}
	}
	ctx := context.Background()
	if err := ip.Invoke(ctx); err != nil { // warm up
		b.Fatal(err)
	}
	var ms runtime.MemStats
	times := make([]time.Duration, 0, b.N)
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if err := ip.Invoke(ctx); err != nil {
			b.Fatal(err)
		}
		times = append(times, time.Since(start))
	}
	b.StopTimer()
	runtime.ReadMemStats(&ms)
	perImage := float64(b.Elapsed().Microseconds()) / 1000 / float64(b.N) / float64(batch)
	b.ReportMetric(perImage, "ms/image")
	// The median invoke, as ONNX Runtime's harness reports it.
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000/float64(batch), "median-ms/image")
	// CPU time stays meaningful when other work loads the machine.
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(b.N)/float64(batch), "cpu-ms/image")
	b.ReportMetric(float64(ip.ArenaBytes())/(1<<20), "arena-MiB")
	b.ReportMetric(float64(ms.HeapSys)/(1<<20), "heap-MiB")
	if hwm := peakRSS(); hwm > 0 {
		b.ReportMetric(float64(hwm)/(1<<20), "peak-RSS-MiB")
	}
}

// peakRSS is the process's peak resident set (VmHWM) in bytes, 0 if unknown.
func peakRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// benchInvokes invokes e once to warm it up (make bench runs each benchmark
// once), then b.N times, and returns the CPU time per invoke.
func benchInvokes(b *testing.B, e models.Engine) time.Duration {
	b.Helper()
	ctx := context.Background()
	if err := e.Invoke(ctx); err != nil {
		b.Fatal(err)
	}
	cpu0 := cpuTime()
	for b.Loop() {
		if err := e.Invoke(ctx); err != nil {
			b.Fatal(err)
		}
	}
	return (cpuTime() - cpu0) / time.Duration(b.N)
}

// cpuTime is the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
