// Package memlimit keeps the Go runtime's soft memory limit a little above
// what the agent really holds, so that the garbage collector gives freed
// memory back instead of letting the heap grow to twice its live size.
//
// The limit follows the live heap: after each check it is the live heap,
// plus the runtime's own memory outside the heap (stacks, metadata), plus a
// headroom of a quarter of the live heap and at least MinHeadroom. A model swap that
// grows the live heap raises the limit at the next check, so the limit never
// pins a larger model under a smaller one's budget for long; and the Go
// runtime bounds the CPU the collector spends near the limit to 50%.
package memlimit

import (
	"context"
	"log/slog"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// MinHeadroom is the least room above the live heap: a few camera frames
// (one 640x480 RGBA frame is 1.2 MiB) and the detector's per-frame garbage.
const MinHeadroom = 8 << 20

// Every is how often Follow checks the live heap.
const Every = 2 * time.Second

// Limit is the soft memory limit for a live heap of live bytes and other
// bytes of runtime memory outside the heap.
func Limit(live, other uint64) int64 {
	room := max(live/4, MinHeadroom)
	const most = math.MaxInt64
	if live > most || other > most-live || room > most-live-other {
		return most
	}
	return int64(live + other + room)
}

// Usage reads the live heap (as marked by the last collection) and the
// runtime's memory outside the heap.
func Usage() (live, other uint64) {
	s := []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
	}
	metrics.Read(s)
	v := make([]uint64, len(s))
	for i := range s {
		if s[i].Value.Kind() == metrics.KindUint64 {
			v[i] = s[i].Value.Uint64()
		}
	}
	heap := v[2] + v[3] + v[4] + v[5]
	if v[1] > heap {
		other = v[1] - heap
	}
	return v[0], other
}

// Follow sets the soft memory limit from the live heap every Every until ctx
// is done, unless the GOMEMLIMIT environment variable sets one already. It
// restores the runtime's previous limit when it returns.
func Follow(ctx context.Context, log *slog.Logger) {
	if os.Getenv("GOMEMLIMIT") != "" {
		log.Info("memory limit from GOMEMLIMIT", "limit_bytes", debug.SetMemoryLimit(-1))
		return
	}
	prev := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(prev)
	runtime.GC() // mark what the agent holds once it is open

	t := time.NewTicker(Every)
	defer t.Stop()
	last := int64(0)
	for {
		lim := Limit(Usage())
		debug.SetMemoryLimit(lim)
		if last == 0 || lim > last+last/4 || lim < last-last/4 {
			log.Debug("memory limit", "limit_bytes", lim)
			last = lim
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
