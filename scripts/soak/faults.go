package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"

	"edgefleet/internal/faultnet"
)

// Fault kinds, as the report counts them.
const (
	faultLatency   = "latency+jitter"
	faultBandwidth = "bandwidth cap"
	faultDrop      = "dropped connections"
	faultHalfOpen  = "half-open connections"
	faultPartition = "partition"
	faultKillAgent = "kill -9 agent"
	faultKillFleet = "kill -9 fleetd"
	faultDiskFull  = "spool disk full"
	faultClock     = "clock step"
)

// injector keeps injecting faults, one decision per tick, from a seeded
// random source; conditions with a duration are healed by their own timer.
type injector struct {
	s   *soak
	rng *rand.Rand

	mu     sync.Mutex
	counts map[string]int
	busy   map[string]bool // what a condition holds now: a proxy, a process, the disk
	errs   []string
	wg     sync.WaitGroup
}

func newInjector(s *soak) *injector {
	return &injector{s: s, rng: rand.New(rand.NewPCG(s.seed, 0xfa17)), counts: map[string]int{}, busy: map[string]bool{}}
}

// kind is one fault with its weight in the draw.
type kind struct {
	name   string
	weight float64
	do     func(ctx context.Context) bool // false: nothing to do now
}

// run injects faults until ctx ends, then waits for every condition to be
// healed and every killed process to be back.
func (in *injector) run(ctx context.Context, every time.Duration) {
	kinds := in.kinds()
	var total float64
	for _, k := range kinds {
		total += k.weight
	}
	for {
		d := every/2 + time.Duration(in.rng.Int64N(int64(every)))
		select {
		case <-ctx.Done():
			in.wg.Wait()
			return
		case <-time.After(d):
		}
		x := in.rng.Float64() * total
		for _, k := range kinds {
			if x -= k.weight; x < 0 {
				if k.do(ctx) {
					in.count(k.name)
				}
				break
			}
		}
	}
}

func (in *injector) kinds() []kind {
	ks := []kind{
		{faultLatency, 3, in.latency},
		{faultBandwidth, 2, in.bandwidth},
		{faultDrop, 3, in.drop},
		{faultHalfOpen, 1, in.halfOpen},
		{faultPartition, 2, in.partition},
		{faultKillAgent, 1.5, in.killAgent},
		{faultKillFleet, 0.7, in.killFleetd},
		{faultClock, 1, in.clockStep},
	}
	if in.s.agents[0].tmpfs != "" {
		ks = append(ks, kind{faultDiskFull, 0.5, in.diskFull})
	}
	return ks
}

func (in *injector) count(k string) {
	in.mu.Lock()
	in.counts[k]++
	in.mu.Unlock()
}

func (in *injector) fail(format string, args ...any) {
	in.mu.Lock()
	in.errs = append(in.errs, fmt.Sprintf(format, args...))
	in.mu.Unlock()
}

// take marks key busy; false if it already was.
func (in *injector) take(key string) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.busy[key] {
		return false
	}
	in.busy[key] = true
	return true
}

func (in *injector) release(key string) {
	in.mu.Lock()
	delete(in.busy, key)
	in.mu.Unlock()
}

// hold runs heal after d (or when ctx ends), then frees key.
func (in *injector) hold(ctx context.Context, key string, d time.Duration, heal func()) {
	in.wg.Add(1)
	go func() {
		defer in.wg.Done()
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
		heal()
		in.release(key)
	}()
}

func (in *injector) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(in.rng.Int64N(int64(hi-lo)))
}

// links are the proxied links: each agent's to the broker, and the
// agents' to fleetd's HTTP.
func (in *injector) links() (keys []string, ps []*faultnet.Proxy) {
	for _, a := range in.s.agents {
		keys, ps = append(keys, "mqtt:"+a.id), append(ps, a.mqtt)
	}
	return append(keys, "http"), append(ps, in.s.httpProxy)
}

// condition sets f on a link without a condition, for a while.
func (in *injector) condition(ctx context.Context, f faultnet.Faults, lo, hi time.Duration) bool {
	keys, ps := in.links()
	for _, i := range in.rng.Perm(len(keys)) {
		if in.take(keys[i]) {
			p := ps[i]
			p.Set(f)
			in.hold(ctx, keys[i], in.between(lo, hi), func() { p.Set(faultnet.Faults{}) })
			return true
		}
	}
	return false
}

func (in *injector) latency(ctx context.Context) bool {
	f := faultnet.Faults{Latency: in.between(20*time.Millisecond, 500*time.Millisecond), Jitter: in.between(time.Millisecond, 200*time.Millisecond)}
	return in.condition(ctx, f, 5*time.Second, 20*time.Second)
}

func (in *injector) bandwidth(ctx context.Context) bool {
	f := faultnet.Faults{BytesPerSec: 2<<10 + in.rng.IntN(30<<10)}
	return in.condition(ctx, f, 5*time.Second, 20*time.Second)
}

// drop closes the open connections of a link that has some.
func (in *injector) drop(context.Context) bool {
	_, ps := in.links()
	for _, i := range in.rng.Perm(len(ps)) {
		if ps[i].Drop() > 0 {
			return true
		}
	}
	return false
}

func (in *injector) halfOpen(ctx context.Context) bool {
	for _, i := range in.rng.Perm(len(in.s.agents)) {
		a := in.s.agents[i]
		key := "mqtt:" + a.id
		if a.mqtt.Conns() == 0 || !in.take(key) {
			continue
		}
		hold := in.between(20*time.Second, 60*time.Second)
		if a.mqtt.HalfOpen(hold) == 0 {
			in.release(key)
			continue
		}
		in.hold(ctx, key, hold, func() {})
		return true
	}
	return false
}

// partition cuts one or two agents off the broker.
func (in *injector) partition(ctx context.Context) bool {
	n := 1 + in.rng.IntN(min(2, len(in.s.agents)))
	took := false
	for _, i := range in.rng.Perm(len(in.s.agents))[:n] {
		a := in.s.agents[i]
		key := "mqtt:" + a.id
		if !in.take(key) {
			continue
		}
		took = true
		a.mqtt.Set(faultnet.Faults{Partition: true})
		in.hold(ctx, key, in.between(10*time.Second, 45*time.Second), func() { a.mqtt.Set(faultnet.Faults{}) })
	}
	return took
}

// restart kills p with -9 and starts it again after a pause.
func (in *injector) restart(ctx context.Context, key string, p *proc, lo, hi time.Duration, ready func() error) bool {
	if !in.take(key) {
		return false
	}
	p.kill9()
	in.hold(ctx, key, in.between(lo, hi), func() {
		if err := p.start(); err != nil {
			in.fail("restart %s: %v", p.name, err)
			return
		}
		if ready != nil {
			if err := ready(); err != nil {
				in.fail("%s after restart: %v", p.name, err)
			}
		}
	})
	return true
}

func (in *injector) killAgent(ctx context.Context) bool {
	a := in.s.agents[in.rng.IntN(len(in.s.agents))]
	return in.restart(ctx, "proc:"+a.id, a.proc, 500*time.Millisecond, 5*time.Second, nil)
}

// killFleetd kills one fleetd at a time (one replica of two, or the only
// one), no more often than every 30 s.
func (in *injector) killFleetd(ctx context.Context) bool {
	f := in.s.fleetds[in.rng.IntN(len(in.s.fleetds))]
	if !in.take("fleetd-cooldown") {
		return false
	}
	ok := in.restart(ctx, "proc:fleetd", f.proc, time.Second, 8*time.Second, func() error { return f.ready(context.Background()) })
	in.hold(ctx, "fleetd-cooldown", 30*time.Second, func() {})
	return ok
}

// diskFull fills agent 1's spool filesystem and cuts it off the broker so
// its backlog must grow into the full disk; then frees both.
func (in *injector) diskFull(ctx context.Context) bool {
	a := in.s.agents[0]
	if !in.take("disk") {
		return false
	}
	if !in.take("mqtt:" + a.id) {
		in.release("disk")
		return false
	}
	if err := a.fill(); err != nil {
		in.fail("fill %s: %v", a.tmpfs, err)
	}
	a.mqtt.Set(faultnet.Faults{Partition: true})
	in.hold(ctx, "disk", in.between(20*time.Second, 40*time.Second), func() {
		if err := a.unfill(); err != nil {
			in.fail("free %s: %v", a.tmpfs, err)
		}
		a.mqtt.Set(faultnet.Faults{})
		in.release("mqtt:" + a.id)
	})
	return true
}

// clockSteps are the offsets a clock step picks from: forwards past the
// agents' spool max_age (1h: the spool drops by age and counts it), small
// steps, and backwards.
var clockSteps = []time.Duration{2 * time.Hour, 30 * time.Minute, 5 * time.Minute, -5 * time.Minute, -time.Hour, -3 * time.Hour}

// clockStep moves an agent's clock, then back after a while.
func (in *injector) clockStep(ctx context.Context) bool {
	a := in.s.agents[in.rng.IntN(len(in.s.agents))]
	key := "clock:" + a.id
	if !in.take(key) {
		return false
	}
	if err := a.setClock(clockSteps[in.rng.IntN(len(clockSteps))]); err != nil {
		in.fail("clock step %s: %v", a.id, err)
	}
	in.hold(ctx, key, in.between(5*time.Second, 30*time.Second), func() {
		if err := a.setClock(0); err != nil {
			in.fail("clock back %s: %v", a.id, err)
		}
	})
	return true
}

// total is the number of faults injected.
func (in *injector) total() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	n := 0
	for _, c := range in.counts {
		n += c
	}
	return n
}

// summary is "kind n, kind n" sorted by kind.
func (in *injector) summary() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	var ks []string
	for k, n := range in.counts {
		ks = append(ks, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(ks)
	return strings.Join(ks, ", ")
}
