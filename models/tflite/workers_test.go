package tflite

import (
	"context"
	"fmt"
	"runtime"
	"slices"
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
		// Parked workers cannot spin; yield the processor so that a worker
		// still spinning would run and show in the counter.
		for i := 0; i < 1000; i++ {
			runtime.Gosched()
		}
		if got := p.spins.Load(); got != spins || p.parked.Load() != 2 {
			t.Fatalf("round %d: spins %d -> %d, parked %d after Invoke returned", round, spins, got, p.parked.Load())
		}
	}
}

// TestWorkersManyInterpreters: several interpreters with their own pools
// (an agent's cameras) invoke at once and give the 1-thread result, and
// afterwards every worker of every pool parks.
func TestWorkersManyInterpreters(t *testing.T) {
	model := reduceModel(1 << 14)
	x := make([]float32, 8<<14)
	for i := range x {
		x[i] = float32((i*7919)%1000) - 500
	}
	ref := openThreads(t, model, 1)
	defer ref.Close()
	copy(f32s(ref.Input(0)), x)
	if err := ref.Invoke(context.Background()); err != nil {
		t.Fatal(err)
	}
	ips := make([]*Interpreter, 4)
	for i := range ips {
		ips[i] = openThreads(t, model, 2+i%2)
		defer ips[i].Close()
		copy(f32s(ips[i].Input(0)), x)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(ips))
	for i, ip := range ips {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				if err := ip.Invoke(context.Background()); err != nil {
					errs[i] = err
					return
				}
				if string(ip.Output(0)) != string(ref.Output(0)) {
					errs[i] = fmt.Errorf("interpreter %d: output differs from 1 thread", i)
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for i, ip := range ips {
		testutil.WaitFor(t, fmt.Sprintf("interpreter %d's workers to park", i), 10*time.Second, func() bool {
			return int(ip.pool.parked.Load()) == ip.pool.n
		})
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
func parallelSpawn(n, chunks int, fn func(worker, lo, hi int)) {
	var wg sync.WaitGroup
	chunk := (n + chunks - 1) / chunks
	for i := 1; i < chunks; i++ {
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
// threads, the overhead each of an invoke's hundreds of operators pays: a
// goroutine per chunk (spawn, before the pool) against the interpreter's
// pool during an invoke (pool). "tiny" dispatches a 4 KiB clear, the
// dispatch cost alone; "gap" runs 20 µs of serial work (an operator that
// does not split) before each call of two 10 µs chunks, so the helper
// thread has gone idle: ideally 30 µs per op.
func BenchmarkParallelDispatch(b *testing.B) {
	buf := make([]byte, 1<<12)
	tiny := func(_, lo, hi int) { clear(buf[lo:hi]) }
	spin := func(d time.Duration) {
		for t0 := time.Now(); time.Since(t0) < d; {
		}
	}
	chunk10 := func(_, lo, hi int) { spin(time.Duration(hi-lo) * 10 * time.Microsecond) }
	type dispatch func(n, chunks int, fn func(worker, lo, hi int))
	for _, c := range []struct {
		name string
		run  func(d dispatch)
	}{
		{"tiny", func(d dispatch) { d(len(buf), 2, tiny) }},
		{"gap", func(d dispatch) { spin(20 * time.Microsecond); d(2, 2, chunk10) }},
	} {
		b.Run(c.name+"/spawn", func(b *testing.B) {
			for b.Loop() {
				c.run(parallelSpawn)
			}
		})
		b.Run(c.name+"/pool", func(b *testing.B) {
			ip := &Interpreter{threads: 2, pool: newWorkers(1)}
			defer ip.pool.close()
			ip.pool.setHot(true)
			defer ip.pool.setHot(false)
			d := func(n, chunks int, fn func(worker, lo, hi int)) { ip.parallelChunks(n, chunks, 2, fn) }
			for b.Loop() {
				c.run(d)
			}
		})
	}
}

// BenchmarkParallelBalance estimates, without needing a quiet machine, how
// well each network splits over 2 threads: every operator runs on one
// thread with its chunks timed in thread CPU time (which does not count
// the time other processes held the core), and the chunks are then
// scheduled as the pool would, each to the first free thread. It reports
// the 1-thread CPU time, the estimated 2-thread time and their ratio, and
// logs (-v) the operators that lose the most against a perfect split. It
// leaves out dispatch cost and memory-bandwidth contention, so it is an
// upper bound on the speedup.
func BenchmarkParallelBalance(b *testing.B) {
	for _, nw := range benchNetworks {
		b.Run(nw.row, func(b *testing.B) {
			ip := openBench(b, nw.model, 2)
			defer ip.Close()
			if in := benchInput(nw.model); len(in) > 0 {
				copy(ip.Input(0), in)
			}
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			var jobs [][]time.Duration
			ip.pool.trace = func(c []time.Duration) { jobs = append(jobs, c) }
			clockCost := threadCPU()
			for range 1000 {
				threadCPU()
			}
			clockCost = (threadCPU() - clockCost) / 1001
			cpu1 := make([]time.Duration, len(ip.nodes))
			est2 := make([]time.Duration, len(ip.nodes))
			for b.Loop() {
				for i, n := range ip.nodes {
					if n.skip {
						continue
					}
					jobs = jobs[:0]
					t0 := threadCPU()
					if err := n.k.eval(ip, n); err != nil {
						b.Fatal(err)
					}
					op := threadCPU() - t0
					serial := op
					var split time.Duration
					for _, c := range jobs {
						for _, d := range c {
							serial -= d + clockCost
						}
						split += makespan(c, 2)
					}
					cpu1[i] += op
					est2[i] += max(serial, 0) + split
				}
			}
			var t1, t2 time.Duration
			loss := make([]int, 0, len(ip.nodes))
			for i := range ip.nodes {
				t1, t2 = t1+cpu1[i], t2+est2[i]
				if cpu1[i] > 0 {
					loss = append(loss, i)
				}
			}
			lost := func(i int) time.Duration { return est2[i] - cpu1[i]/2 }
			slices.SortFunc(loss, func(a, b int) int { return int(lost(b) - lost(a)) })
			nb := time.Duration(b.N)
			for _, i := range loss[:min(12, len(loss))] {
				n := ip.nodes[i]
				b.Logf("%-4d %-16s %-18s 1 thread %7.3f ms, 2 threads est %7.3f ms (lost %.3f)", i, n.code.Name(), fmt.Sprint(n.out[0].shape),
					ms(cpu1[i]/nb), ms(est2[i]/nb), ms(lost(i)/nb))
			}
			b.ReportMetric(ms(t1/nb), "cpu1-ms")
			b.ReportMetric(ms(t2/nb), "est2-ms")
			b.ReportMetric(float64(t1)/float64(t2), "est-speedup")
		})
	}
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// makespan is when the last of costs finishes on threads threads that
// claim chunks as job.run does: the chunks of their own part first, then
// those left in the others; whichever thread is free first claims next.
func makespan(costs []time.Duration, threads int) time.Duration {
	j := &job{chunks: int64(len(costs))}
	j.split(threads)
	next := make([]int64, j.parts)
	for p := range next {
		next[p] = j.partStart(p)
	}
	free := make([]time.Duration, threads)
	for range costs {
		t := slices.Index(free, slices.Min(free))
		for k := range j.parts {
			if p := (t + k) % j.parts; next[p] < j.partStart(p+1) {
				free[t] += costs[next[p]]
				next[p]++
				break
			}
		}
	}
	return slices.Max(free)
}
