package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"time"

	"edgefleet/fleet/api/rest"
	"edgefleet/fleet/sim"
	"edgefleet/internal/faultnet"
	"edgefleet/scripts/soak/check"
)

// phases of a run: warm-up (no faults; start readings at its end), faults,
// then quiet (faults healed; rollouts, simulator and spools drain).
func (s *soak) phases() (warm, quiet time.Duration) {
	warm = min(max(s.dur/10, 20*time.Second), time.Minute)
	quiet = min(max(s.dur/4, 40*time.Second), 2*time.Minute)
	return warm, quiet
}

// tick is the mean time between fault decisions: 3 decisions for each
// fault a run of its length must show, over a fault phase of window (in a
// short run about half of the decisions find their target busy, held by a
// condition, and do nothing).
func (s *soak) tick(window time.Duration) time.Duration {
	want := float64(minFaultsPer10m) * s.dur.Minutes() / 10
	return min(1500*time.Millisecond, time.Duration(float64(window)/(3*want)))
}

// run starts the fleet, injects faults, drains and checks.
func (s *soak) run() (*report, error) {
	start := time.Now()
	s.log.Info("soak starting", "seed", s.seed, "duration", s.dur, "agents", s.nAgent, "simulated", s.nSim, "dir", s.dir)
	if err := s.setUp(); err != nil {
		return nil, err
	}
	warm, quiet := s.phases()
	simDone := s.startSim(s.dur - warm)
	watchCtx, stopWatch := context.WithCancel(s.ctx)
	defer stopWatch()
	go s.watch(watchCtx)

	if err := sleep(s.ctx, warm); err != nil {
		return nil, err
	}
	startSamples := s.samples(s.ctx)
	faultCtx, stopFaults := context.WithTimeout(s.ctx, s.dur-warm-quiet)
	defer stopFaults()
	inj := newInjector(s)
	injDone := make(chan struct{})
	go func() { inj.run(faultCtx, s.tick(s.dur-warm-quiet)); close(injDone) }()
	s.rolloutRounds(faultCtx)
	<-injDone // every condition healed, every killed process started again
	s.log.Info("faults stopped; draining", "faults", inj.total())

	rep := &report{seed: s.seed, dur: s.dur, faults: inj.summary(), nFaults: inj.total(), faultErrs: inj.errs, fleetds: len(s.fleetds)}
	if err := s.drain(simDone, rep); err != nil {
		return rep, err
	}
	stopWatch()
	in, err := s.observe(startSamples, rep)
	if err != nil {
		return rep, err
	}
	rep.in = in
	rep.result = check.Check(in)
	rep.elapsed = time.Since(start)
	return rep, nil
}

// setUp builds the binaries and starts mosquitto, fleetd and the agents.
func (s *soak) setUp() error {
	if err := s.build(); err != nil {
		return err
	}
	var ids []string
	for i := range s.nAgent {
		ids = append(ids, fmt.Sprintf("soak-agent-%d", i+1))
	}
	if err := s.startMosquitto(ids); err != nil {
		return err
	}
	var err error
	if s.httpProxy, err = faultnet.Listen(s.ctx, "127.0.0.1:1", s.seed+1000); err != nil {
		return err
	}
	s.proxies = append(s.proxies, s.httpProxy)
	replicas, dbURL := 1, ""
	if pg := os.Getenv("EDGEFLEET_POSTGRES"); pg != "" {
		if dbURL, s.dropDB, err = database(s.ctx, pg, s.seed); err != nil {
			return err
		}
		replicas = 2
	}
	for i := range replicas {
		f, err := s.startFleetd(i, dbURL, ids)
		if err != nil {
			return err
		}
		s.fleetds = append(s.fleetds, f)
	}
	s.httpProxy.SetTarget(s.fleetds[0].http)
	if err := s.exportKey(); err != nil {
		return err
	}
	for i := range s.nAgent {
		a, err := s.startAgent(i)
		if err != nil {
			return err
		}
		s.agents = append(s.agents, a)
	}
	return waitFor(s.ctx, "the agents online in fleetd", 3*time.Minute, func() bool {
		on := true
		devs, err := s.api().Devices(s.ctx, rest.DeviceFilter{Online: &on})
		n := 0
		for _, d := range devs {
			if d.Labels["site"] == "soak" {
				n++
			}
		}
		return err == nil && n == s.nAgent
	})
}

// exportKey writes fleetd's signing key for the agents to pin.
func (s *soak) exportKey() error {
	keys, err := s.api().Keys(s.ctx)
	if err != nil {
		return fmt.Errorf("soak: fleetd keys: %w", err)
	}
	for _, k := range keys {
		if k.Signing {
			s.keyFile = filepath.Join(s.dir, "fleet.pub")
			return os.WriteFile(s.keyFile, []byte(k.PublicKey), 0o644)
		}
	}
	return fmt.Errorf("soak: fleetd has no signing key")
}

// startSim runs the simulated devices for d; the channel gives the report
// once they have sent for d and drained.
func (s *soak) startSim(d time.Duration) <-chan simResult {
	done := make(chan simResult, 1)
	go func() {
		rep, err := sim.Run(s.ctx, sim.Options{Broker: "tcp://" + s.mq, Devices: s.nSim, Rate: 0.2, Events: 3, TelemetryEvery: 15 * time.Second,
			Duration: d, Drain: 3 * time.Minute, ResendAfter: 5 * time.Second, Sites: 3, ConnectRate: 200,
			UpdateStep: 20 * time.Millisecond, MaxHealthWindow: time.Second,
			Login: func(string) (string, string) { return "sim", simPass }})
		done <- simResult{rep, err}
	}()
	return done
}

type simResult struct {
	rep sim.Report
	err error
}

// rolloutRounds pushes a new model version for the agents and one for the
// simulated devices of site-0 and rolls both out, at the start of the
// fault phase and then every few minutes while it lasts (leaving the last
// two minutes for them to finish under faults). The first round also
// rolls firmware fwNew out to the agent under edge-launcher.
func (s *soak) rolloutRounds(ctx context.Context) {
	model, err := os.ReadFile(s.model)
	if err != nil {
		s.log.Error("rollouts skipped", "err", err)
		return
	}
	s.firmwareRollout(ctx)
	every := max(s.dur/4, 2*time.Minute)
	for v := 2; ; v++ {
		ver := fmt.Sprint(v)
		for _, r := range []struct{ name, selector string }{{"belt-detector", "site=soak"}, {"yolo-sim", "site=site-0"}} {
			// Each version's file differs by a few trailing bytes (the
			// model reader ignores them): fleetd stores one name and
			// version per content.
			file := append(append([]byte(nil), model...), fmt.Sprintf("edgefleet-soak %s@%s", r.name, ver)...)
			req := rest.CreateRollout{Model: r.name + "@" + ver, Selector: r.selector, Canary: 1, Waves: "50%,100%", MaxFailures: "1", HealthWindow: "5s", JobTimeout: "2m"}
			if err := s.rollout(ctx, rest.KindModel, rest.Upload{Name: r.name, Version: ver}, file, req); err != nil {
				s.log.Warn("rollout not created", "model", r.name+"@"+ver, "err", err)
			}
		}
		deadline, _ := ctx.Deadline()
		if time.Until(deadline) < every+30*time.Second {
			<-ctx.Done()
			return
		}
		if sleep(ctx, every) != nil {
			return
		}
	}
}

// firmwareRollout pushes the agent stamped fwNew and rolls it out to the
// agent under edge-launcher.
func (s *soak) firmwareRollout(ctx context.Context) {
	if !slices.ContainsFunc(s.agents, func(a *agent) bool { return a.fwData != "" }) {
		return
	}
	bin, err := os.ReadFile(s.bins["edge-agent-"+fwNew])
	if err == nil {
		up := rest.Upload{Name: "edge-agent", Version: fwNew, OS: "linux", Arch: goruntime.GOARCH}
		req := rest.CreateRollout{Firmware: "edge-agent@" + fwNew, Selector: "fw=launcher", Canary: 1, Waves: "100%", MaxFailures: "0", HealthWindow: "10s", JobTimeout: "3m"}
		err = s.rollout(ctx, rest.KindFirmware, up, bin, req)
	}
	if err != nil {
		s.log.Warn("firmware rollout not created", "err", err)
	}
}

// rollout pushes the file and creates the rollout, retrying while fleetd
// is down (a fault).
func (s *soak) rollout(ctx context.Context, kind string, up rest.Upload, file []byte, req rest.CreateRollout) error {
	pushed := false
	var err error
	for range 30 {
		if !pushed {
			_, err = s.api().Push(ctx, kind, up, up.Name, bytes.NewReader(file))
			pushed = err == nil || strings.Contains(err.Error(), "(HTTP 409)") // stored before fleetd answered
		}
		if pushed {
			var sum rest.RolloutSummary
			if sum, err = s.api().CreateRollout(ctx, req); err == nil {
				s.mu.Lock()
				s.rolloutIDs = append(s.rolloutIDs, sum.ID)
				s.mu.Unlock()
				s.log.Info("rollout created", "id", sum.ID, "kind", kind, "artifact", up.Name+"@"+up.Version, "targets", sum.Targets)
				return nil
			}
		}
		if strings.Contains(err.Error(), "(HTTP 4") && !strings.Contains(err.Error(), "(HTTP 409)") {
			return err // refused, not a fault: retrying will not help
		}
		if sleep(ctx, 2*time.Second) != nil {
			return err
		}
	}
	return err
}

// drain waits for the rollouts to end, the simulator to finish and the
// agents' spools to empty.
func (s *soak) drain(simDone <-chan simResult, rep *report) error {
	ctx := s.ctx
	err := waitFor(ctx, "every rollout in a final state", 5*time.Minute, func() bool {
		rs, err := s.rollouts(ctx)
		if err != nil {
			return false
		}
		for _, r := range rs {
			if r.State != "completed" && r.State != "aborted" && r.State != "rolled_back" {
				return false
			}
		}
		return true
	})
	if err != nil {
		s.log.Warn("rollouts not final; the checker will say which", "err", err)
	}
	select {
	case r := <-simDone:
		if r.err != nil {
			return fmt.Errorf("soak: simulator: %w", r.err)
		}
		rep.sim = r.rep
	case <-ctx.Done():
		return ctx.Err()
	}
	return waitFor(ctx, "the agents' spools empty", 3*time.Minute, func() bool {
		for _, a := range s.agents {
			m, err := scrape(ctx, a.metrics)
			if err != nil || m["edgefleet_spool_depth_events"] != 0 {
				return false
			}
		}
		return true
	})
}

// observe takes the end readings, stops the agents and gathers the
// checker's input.
func (s *soak) observe(startSamples map[string]check.Sample, rep *report) (check.Input, error) {
	ctx := s.ctx
	in := check.Input{Bounds: check.DefaultBounds}
	for _, p := range s.procs {
		if !p.running() {
			rep.faultErrs = append(rep.faultErrs, fmt.Sprintf("%s is not running at the end: it exited on its own (see %s)", p.name, p.log))
		}
	}
	end := s.settledSamples(ctx) // after the simulator's devices left: see settleReads
	for name, st := range startSamples {
		if e, ok := end[name]; ok {
			in.Processes = append(in.Processes, check.Process{Name: name, Start: st, End: e})
		}
	}
	for _, p := range s.procs {
		_, a := startSamples[p.name]
		_, b := end[p.name]
		if !a || !b {
			rep.faultErrs = append(rep.faultErrs, fmt.Sprintf("%s: no reading of RSS and goroutines after warm-up (%v) or at the end (%v)", p.name, a, b))
		}
	}
	in.P99, rep.acked = s.acks.p99()
	var err error
	if in.Rollouts, err = s.rollouts(ctx); err != nil {
		return in, err
	}
	if in.Versions, in.Firmware, err = s.versions(ctx); err != nil {
		return in, err
	}
	for _, a := range s.agents {
		a.stop()
		st, dropped, err := a.spoolStats()
		if err != nil {
			return in, err
		}
		d := check.Device{ID: a.id, Produced: st.NextSeq - 1, Dropped: st.Dropped(), Unlisted: dropped.Unlisted, UnlistedTo: dropped.UnlistedTo}
		for _, r := range dropped.Ranges {
			d.DroppedSeqs = append(d.DroppedSeqs, check.Range{From: r.From, To: r.To})
		}
		in.Devices = append(in.Devices, d)
		rep.agentStarts += a.starts
	}
	for id, last := range rep.sim.LastSeq {
		in.Devices = append(in.Devices, check.Device{ID: id, Produced: last})
	}
	for i := range in.Devices {
		if in.Devices[i].Stored, err = s.storedSeqs(ctx, in.Devices[i].ID); err != nil {
			return in, err
		}
	}
	return in, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
