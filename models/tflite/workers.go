package tflite

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// workers is an interpreter's pool of threads-1 goroutines that help the
// invoking goroutine with the chunks of an operator (Interpreter.parallel).
//
// Starting goroutines per operator and waking an idle P for each costs
// microseconds per dispatch, and the YOLO graphs run hundreds of operators,
// many of them small. So while an invoke runs (hot) the workers spin on the
// current job pointer, yielding (runtime.Gosched, and sched_yield now and
// then so a busy machine's other threads get the core), for up to spinFor
// after their last job; when the invoke ends, or the spin runs out, they park
// on a channel and burn no CPU until the next job wakes them.
//
// Chunks are claimed from atomic counters (see job), so a worker that is
// late (parked, or descheduled on a busy machine) only takes what the others
// left: the invoking goroutine never waits for a chunk nobody has started.
type workers struct {
	n      int                 // worker goroutines, ids 1..n
	cur    atomic.Pointer[job] // the job to help with; nil between jobs
	seq    uint64              // the last job's sequence number (invoker only)
	hot    atomic.Bool         // an invoke is running: spin instead of parking
	closed atomic.Bool
	ws     []*worker
	wg     sync.WaitGroup
	busy   bool // a job is being run (nested parallel calls run inline)
	// trace, when set (BenchmarkParallelBalance), runs every chunk on the
	// invoker and is given each job's chunk costs in thread CPU time.
	trace func(costs []time.Duration)
	// spins counts spin rounds and parked the workers parked now; tests
	// read them to check that idle workers burn no CPU. They are written
	// by spinning workers, so on a line of their own.
	_      [64]byte
	spins  atomic.Int64
	parked atomic.Int32
}

// liveWorkers counts the worker goroutines of every pool, for the leak test.
var liveWorkers atomic.Int64

// spinFor is how long an idle worker spins during an invoke before parking.
const spinFor = 100 * time.Microsecond

// worker is one goroutine's parking place.
type worker struct {
	sleeping atomic.Bool
	wake     chan struct{}
}

// job is one parallel call: chunks of [0, n) claimed in order. A job is
// never reused, so a worker still holding an old one finds no chunk left.
type job struct {
	seq    uint64
	fn     func(worker, lo, hi int)
	n      int
	chunks int64
	align  int // chunk bounds are multiples of align (but for n)
	// The chunks are cut into parts, one per thread: thread t first claims
	// the chunks of part t in order (next[t] is the next one), then those
	// left in the other parts. On a quiet machine each thread so works on
	// the same region of the tensors operator after operator (its own
	// cache), as with a static split; a slow thread's work is still taken.
	parts int
	next  []partCounter
	next2 [2]partCounter // next's storage for up to 2 parts
	// done counts the chunks finished, added by each thread as it leaves
	// (not per chunk: fewer writes to a line all threads share).
	done atomic.Int64
	// waiting is set by the invoker before it parks on wake; the worker
	// finishing the last chunk clears it and sends.
	waiting atomic.Bool
	wake    chan struct{}
}

// partCounter is a part's next chunk, alone on its cache line so that the
// threads claiming from their own parts do not take the line from each
// other at every chunk.
type partCounter struct {
	atomic.Int64
	_ [56]byte
}

// bound is where chunk c starts: chunks differ in size by at most align.
func (j *job) bound(c int64) int {
	if c >= j.chunks {
		return j.n
	}
	b := int(c * int64(j.n) / j.chunks)
	return b - b%j.align
}

func newWorkers(n int) *workers {
	p := &workers{n: n, ws: make([]*worker, n)}
	for i := range p.ws {
		w := &worker{wake: make(chan struct{}, 1)}
		p.ws[i] = w
		p.wg.Add(1)
		liveWorkers.Add(1)
		go p.loop(i+1, w)
	}
	return p
}

// close stops the workers and waits for them to exit. Safe to call twice.
func (p *workers) close() {
	if p == nil || p.closed.Swap(true) {
		return
	}
	p.wakeUpTo(p.n)
	p.wg.Wait()
}

// setHot marks an invoke as running (workers spin between jobs) or ended
// (they park).
func (p *workers) setHot(on bool) {
	if p != nil {
		p.hot.Store(on)
	}
}

// loop is worker id's life: wait for a job newer than the last one seen,
// help with it, repeat until closed.
func (p *workers) loop(id int, w *worker) {
	defer p.wg.Done()
	defer liveWorkers.Add(-1)
	var seen uint64
	for {
		j := p.wait(w, seen)
		if j == nil {
			return
		}
		seen = j.seq
		j.run(id)
	}
}

// wait returns the next job after seen, spinning while hot and parking
// otherwise; nil once the pool is closed.
func (p *workers) wait(w *worker, seen uint64) *job {
	start := time.Now()
	for i := 0; ; i++ {
		if p.closed.Load() {
			return nil
		}
		if j := p.cur.Load(); j != nil && j.seq != seen {
			return j
		}
		if p.hot.Load() && (i&63 != 0 || time.Since(start) < spinFor) {
			if i&15 == 15 {
				p.spins.Add(1)
				runtime.Gosched()
			}
			if i&63 == 63 {
				osYield()
			}
			continue
		}
		// Park. Whoever clears sleeping first decides: the dispatcher
		// (it sends a wake) or this worker (it saw the news itself).
		w.sleeping.Store(true)
		p.parked.Add(1)
		if j := p.cur.Load(); p.closed.Load() || (j != nil && j.seq != seen) {
			if !w.sleeping.CompareAndSwap(true, false) {
				<-w.wake
			}
		} else {
			<-w.wake
		}
		p.parked.Add(-1)
		start, i = time.Now(), 0
	}
}

// run claims and runs chunks of j until none is left.
func (j *job) run(id int) {
	var did int64
	for k := range j.parts {
		p := (id + k) % j.parts
		end := j.partStart(p + 1)
		for {
			c := j.next[p].Add(1) - 1
			if c >= end {
				break
			}
			if lo, hi := j.bound(c), j.bound(c+1); lo < hi {
				j.fn(id, lo, hi)
			}
			did++
		}
	}
	if did > 0 && j.done.Add(did) == j.chunks && j.waiting.CompareAndSwap(true, false) {
		j.wake <- struct{}{}
	}
}

// partStart is the first chunk of part p.
func (j *job) partStart(p int) int64 { return int64(p) * j.chunks / int64(j.parts) }

// split cuts j's chunks into parts for threads threads.
func (j *job) split(threads int) {
	j.parts = int(min(int64(threads), j.chunks))
	j.next = j.next2[:]
	if j.parts > len(j.next2) {
		j.next = make([]partCounter, j.parts)
	}
	for p := range j.parts {
		j.next[p].Store(j.partStart(p))
	}
}

// do runs fn over [0, n) in the given number of chunks, with bounds that
// are multiples of align, on the invoker (worker 0) and up to want-1
// workers, and returns when every chunk is done.
func (p *workers) do(n, chunks, align, want int, fn func(worker, lo, hi int)) {
	p.seq++
	j := &job{seq: p.seq, fn: fn, n: n, chunks: int64(chunks), align: max(align, 1)}
	j.split(want)
	if p.trace != nil {
		p.traced(j)
		return
	}
	p.busy = true
	p.cur.Store(j)
	p.wakeUpTo(want - 1)
	j.run(0)
	if j.done.Load() != j.chunks {
		p.finish(j)
	}
	p.cur.Store(nil) // drop fn (and what it holds) for the workers
	p.busy = false
}

// wakeUpTo wakes up to k parked workers.
func (p *workers) wakeUpTo(k int) {
	for _, w := range p.ws {
		if k <= 0 {
			return
		}
		if w.sleeping.CompareAndSwap(true, false) {
			w.wake <- struct{}{}
		}
		k--
	}
}

// finish waits for the chunks other workers are still running: a spin (the
// usual case is a chunk finishing soon), then parking.
func (p *workers) finish(j *job) {
	start := time.Now()
	for i := 1; i&63 != 0 || time.Since(start) < spinFor; i++ {
		if j.done.Load() == j.chunks {
			return
		}
		if i&15 == 15 {
			runtime.Gosched()
		}
		if i&63 == 63 {
			osYield()
		}
	}
	j.wake = make(chan struct{}, 1)
	j.waiting.Store(true)
	if j.done.Load() == j.chunks && j.waiting.CompareAndSwap(true, false) {
		return
	}
	<-j.wake
}

// traced runs j's chunks in order on the invoker, timing each.
func (p *workers) traced(j *job) {
	p.busy = true
	costs := make([]time.Duration, j.chunks)
	for c := range costs {
		t0 := threadCPU()
		j.fn(0, j.bound(int64(c)), j.bound(int64(c)+1))
		costs[c] = threadCPU() - t0
	}
	p.busy = false
	p.trace(costs)
}
