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

// proxy picks a link: one agent's to the broker, or the agents' to
// fleetd's HTTP.
func (in *injector) proxy() (string, *faultnet.Proxy) {
	if i := in.rng.IntN(len(in.s.agents) + 1); i < len(in.s.agents) {
		return "mqtt:" + in.s.agents[i].id, in.s.agents[i].mqtt
	}
	return "http", in.s.httpProxy
}

// condition sets f on a free link for a while.
func (in *injector) condition(ctx context.Context, f faultnet.Faults, lo, hi time.Duration) bool {
	key, p := in.proxy()
	if !in.take(key) {
		return false
	}
	p.Set(f)
	in.hold(ctx, key, in.between(lo, hi), func() { p.Set(faultnet.Faults{}) })
	return true
}

func (in *injector) latency(ctx context.Context) bool {
	f := faultnet.Faults{Latency: in.between(20*time.Millisecond, 500*time.Millisecond), Jitter: in.between(time.Millisecond, 200*time.Millisecond)}
	return in.condition(ctx, f, 5*time.Second, 20*time.Second)
}

func (in *injector) bandwidth(ctx context.Context) bool {
	f := faultnet.Faults{BytesPerSec: 2<<10 + in.rng.IntN(30<<10)}
	return in.condition(ctx, f, 5*time.Second, 20*time.Second)
}

func (in *injector) drop(context.Context) bool {
	_, p := in.proxy()
	p.Drop() // counted even with nothing open: the fault was applied
	return true
}

func (in *injector) halfOpen(ctx context.Context) bool {
	a := in.s.agents[in.rng.IntN(len(in.s.agents))]
	key := "mqtt:" + a.id
	if !in.take(key) {
		return false
	}
	hold := in.between(20*time.Second, 60*time.Second)
	a.mqtt.HalfOpen(hold)
	in.hold(ctx, key, hold, func() {})
	return true
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
