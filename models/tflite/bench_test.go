package tflite

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
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
			ip := openBench(b, "yolov8n_full_integer_quant", c.threads)
			defer ip.Close()
			if err := ip.SetBatch(c.batch); err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			if err := ip.Invoke(ctx); err != nil { // warm up
				b.Fatal(err)
			}
			var ms runtime.MemStats
			cpu0 := cpuTime()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := ip.Invoke(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			runtime.ReadMemStats(&ms)
			perImage := float64(b.Elapsed().Microseconds()) / 1000 / float64(b.N) / float64(c.batch)
			b.ReportMetric(perImage, "ms/image")
			// CPU time stays meaningful when other work loads the machine.
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(b.N)/float64(c.batch), "cpu-ms/image")
			b.ReportMetric(float64(ip.ArenaBytes())/(1<<20), "arena-MiB")
			b.ReportMetric(float64(ms.HeapSys)/(1<<20), "heap-MiB")
			if hwm := peakRSS(); hwm > 0 {
				b.ReportMetric(float64(hwm)/(1<<20), "peak-RSS-MiB")
			}
		})
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

// cpuTime is the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
