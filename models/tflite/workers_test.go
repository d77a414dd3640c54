package tflite

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"edgefleet/internal/testutil"
	"edgefleet/models"
	tt "edgefleet/models/tflite/tflitetest"
)

// reduceModel is a float REDUCE_MAX over the last axis of [rows, 8]: a
// kernel that calls parallel with 64-row chunks.
func reduceModel(rows int) []byte {
	return tt.Build(tt.Model{
		Tensors: []tt.Tensor{
			{Name: "x", Type: models.Float32, Shape: []int{rows, 8}},
			{Name: "ax", Type: models.Int32, Shape: []int{1}, Data: tt.Int32s(1)},
			{Name: "y", Type: models.Float32, Shape: []int{rows}},
		},
		Ops:    []tt.Op{{Builtin: int32(OpReduceMax), Inputs: []int{0, 1}, Outputs: []int{2}, Options: []any{false}}},
		Inputs: []int{0}, Outputs: []int{2},
	})
}

func openThreads(t *testing.T, model []byte, threads int) *Interpreter {
	t.Helper()
	e, err := Open(context.Background(), model, models.Options{Threads: threads})
	if err != nil {
		t.Fatal(err)
	}
	return e.(*Interpreter)
}

// TestWorkersCloseNoLeak: Close stops every worker goroutine, and so does
// dropping an interpreter without Close once it is collected.
func TestWorkersCloseNoLeak(t *testing.T) {
	model := reduceModel(4096)
	base := liveWorkers.Load()
	for _, threads := range []int{2, 3, 4} {
		ip := openThreads(t, model, threads)
		if got := liveWorkers.Load(); got < base+int64(threads-1) {
			t.Fatalf("threads=%d: %d workers, want %d", threads, got, base+int64(threads-1))
		}
		if err := ip.Invoke(context.Background()); err != nil {
			t.Fatal(err)
		}
		ip.Close()
		ip.Close() // twice is fine
		if got := liveWorkers.Load(); got > base {
			t.Fatalf("threads=%d: %d workers after Close, %d before Open", threads, got, base)
		}
	}
	func() {
		ip := openThreads(t, model, 3)
		if err := ip.Invoke(context.Background()); err != nil {
			t.Fatal(err)
		}
	}()
	testutil.WaitFor(t, "the workers of a dropped interpreter to exit", 10*time.Second, func() bool {
		runtime.GC()
		return liveWorkers.Load() <= base
	})
}

// TestWorkersParkAfterInvoke: once Invoke returns, the workers park and
// stop spinning, so an idle agent burns no CPU; the next Invoke wakes them.
func TestWorkersParkAfterInvoke(t *testing.T) {
	ip := openThreads(t, reduceModel(4096), 3)
	defer ip.Close()
	p := ip.pool
	for round := 0; round < 3; round++ {
		for i := 0; i < 5; i++ {
			if err := ip.Invoke(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		testutil.WaitFor(t, "both workers to park", 10*time.Second, func() bool { return p.parked.Load() == 2 })
		spins := p.spins.Load()
		// Parked workers cannot spin; give a spinning one time to show.
		for i := 0; i < 1000; i++ {
			runtime.Gosched()
		}
		time.Sleep(5 * time.Millisecond)
		if got := p.spins.Load(); got != spins || p.parked.Load() != 2 {
			t.Fatalf("round %d: spins %d -> %d, parked %d after Invoke returned", round, spins, got, p.parked.Load())
		}
	}
}

// TestParallelChunks: parallel visits every index of [0, n) exactly once,
// with worker indexes below threads and chunks no smaller than minChunk
// (less up to 64 for cache-line bounds; but for the last), for splits that do and do not divide evenly; a
// nested call runs inline.
func TestParallelChunks(t *testing.T) {
	for _, c := range []struct{ threads, n, minChunk int }{
		{1, 100, 1}, {2, 1, 1}, {2, 7, 1}, {2, 20, 1}, {2, 100, 64}, {2, 127, 64}, {2, 128, 64},
		{3, 1000, 1}, {4, 1 << 16, 1 << 10}, {8, 5, 1}, {2, 1 << 20, 1 << 14},
	} {
		t.Run(fmt.Sprintf("threads=%d/n=%d/min=%d", c.threads, c.n, c.minChunk), func(t *testing.T) {
			ip := &Interpreter{threads: c.threads}
			if c.threads > 1 {
				ip.pool = newWorkers(c.threads - 1)
				defer ip.pool.close()
			}
			ip.pool.setHot(true)
			hits := make([]atomic.Int32, c.n)
			var mu sync.Mutex
			var bad []string
			var nested atomic.Int32
			ip.parallel(c.n, c.minChunk, func(w, lo, hi int) {
				if w < 0 || w >= c.threads || lo >= hi || (hi-lo < c.minChunk-64 && hi != c.n) {
					mu.Lock()
					bad = append(bad, fmt.Sprintf("worker %d chunk [%d,%d)", w, lo, hi))
					mu.Unlock()
				}
				for i := lo; i < hi; i++ {
					hits[i].Add(1)
				}
				if lo == 0 {
					ip.parallel(4, 1, func(_, lo2, hi2 int) { nested.Add(int32(hi2 - lo2)) })
				}
			})
			ip.pool.setHot(false)
			if len(bad) > 0 {
				t.Fatalf("bad chunks: %v", bad)
			}
			for i := range hits {
				if h := hits[i].Load(); h != 1 {
					t.Fatalf("index %d visited %d times", i, h)
				}
			}
			if nested.Load() != 4 {
				t.Fatalf("nested parallel covered %d of 4", nested.Load())
			}
		})
	}
}

// parallelSpawn is the dispatch parallel had before the worker pool: a
// goroutine per extra chunk and a WaitGroup, kept to compare against.
func parallelSpawn(threads, n int, fn func(worker, lo, hi int)) {
	var wg sync.WaitGroup
	chunk := (n + threads - 1) / threads
	for i := 1; i < threads; i++ {
		lo, hi := i*chunk, min(n, (i+1)*chunk)
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(i, lo, hi)
		}()
	}
	fn(0, 0, min(n, chunk))
	wg.Wait()
}

// BenchmarkParallelDispatch is the cost of one parallel call over two
// threads with almost no work (a 1 KiB memset per chunk), the overhead
// each of an invoke's hundreds of operators pays: a goroutine per chunk
// (spawn) against the interpreter's pool during an invoke (pool).
func BenchmarkParallelDispatch(b *testing.B) {
	buf := make([]byte, 1<<12)
	work := func(_, lo, hi int) { clear(buf[lo:hi]) }
	b.Run("spawn", func(b *testing.B) {
		for b.Loop() {
			parallelSpawn(2, len(buf), work)
		}
	})
	b.Run("pool", func(b *testing.B) {
		ip := &Interpreter{threads: 2, pool: newWorkers(1)}
		defer ip.pool.close()
		ip.pool.setHot(true)
		defer ip.pool.setHot(false)
		for b.Loop() {
			ip.parallel(len(buf), 1<<10, work)
		}
	})
}
