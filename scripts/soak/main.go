// Command soak runs a fleet under continuous faults for a bounded time and
// checks the invariants the README promises (scripts/soak/check): no event
// lost or stored twice beyond what the spools counted as dropped, every
// rollout final, every device on the version its rollout says, no process
// growing without bound, fleetd's ingest-to-ack p99 in bounds.
//
// It runs a private mosquitto, fleetd (one on bbolt, or two replicas on a
// fresh PostgreSQL database when EDGEFLEET_POSTGRES is set), real
// edge-agent processes behind fault proxies (internal/faultnet) to the
// broker and to fleetd's HTTP, simulated devices (fleet/sim), and rollouts
// of models to both, while a seeded injector adds latency, bandwidth caps,
// dropped and half-open connections, partitions, kill -9 of agents and
// fleetd, and a full spool disk (a tmpfs, where it may mount one).
// Everything is on loopback on free ports and is stopped at the end, also
// on failure. `make soak` runs it.
//
// Environment: SOAK (duration, default 10m), SEED (default from the clock;
// the report prints it), SOAK_AGENTS (3), SOAK_DEVICES (200), SOAK_DIR
// (logs and data; default out/soak), EDGEFLEET_TESTDATA.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"edgefleet/firmware/bundle"
	"edgefleet/internal/faultnet"
)

// soak is one run.
type soak struct {
	ctx    context.Context
	log    *slog.Logger
	root   string // the module's root
	dir    string // logs and data of this run
	seed   uint64
	dur    time.Duration
	nAgent int
	nSim   int

	bins    map[string]string
	images  string
	model   string
	keyFile string
	mq      string

	httpProxy *faultnet.Proxy
	proxies   []*faultnet.Proxy
	procs     []*proc
	fleetds   []*fleetd
	agents    []*agent
	dropDB    func()

	mu         sync.Mutex
	rolloutIDs []string
	acks       ackHist
}

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	s, err := configure(log)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	s.ctx = ctx
	rep, err := s.run()
	stop()
	if err != nil || rep == nil || !rep.ok() || os.Getenv("SOAK_DUMP") != "" {
		s.dumpGoroutines()
	}
	s.teardown()
	if rep != nil {
		rep.print(os.Stdout)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "soak: FAILED (seed %d): %v\n", s.seed, err)
		os.Exit(1)
	}
	if rep == nil || !rep.ok() {
		fmt.Fprintf(os.Stderr, "soak: FAILED (seed %d); replay with SEED=%d\n", s.seed, s.seed)
		os.Exit(1)
	}
}

// configure reads the environment.
func configure(log *slog.Logger) (*soak, error) {
	s := &soak{log: log, dur: 10 * time.Minute, seed: uint64(time.Now().UnixNano() % 1e9), nAgent: 3, nSim: 200}
	if v := os.Getenv("SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Minute {
			return nil, fmt.Errorf("soak: SOAK=%q: want a duration of at least 1m (e.g. 10m)", v)
		}
		s.dur = d
	}
	for _, e := range []struct {
		key string
		dst *int
		min int
	}{{"SOAK_AGENTS", &s.nAgent, 1}, {"SOAK_DEVICES", &s.nSim, 1}} {
		if v := os.Getenv(e.key); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < e.min {
				return nil, fmt.Errorf("soak: %s=%q: want a whole number >= %d", e.key, v, e.min)
			}
			*e.dst = n
		}
	}
	if v := os.Getenv("SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("soak: SEED=%q: want a whole number", v)
		}
		s.seed = n
	}
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	s.root = root
	td := os.Getenv("EDGEFLEET_TESTDATA")
	if td == "" {
		td = filepath.Join(root, "..", "shared", "testdata")
	}
	s.images = filepath.Join(td, "images")
	s.model = filepath.Join(td, "models", "yolo26n_int8_320_e2e.tflite") // the cheapest test model: 2 cores
	if _, err := os.Stat(s.model); err != nil {
		return nil, fmt.Errorf("soak: test data: %w (set EDGEFLEET_TESTDATA)", err)
	}
	s.dir = os.Getenv("SOAK_DIR")
	if s.dir == "" {
		s.dir = filepath.Join(root, "out", "soak")
	}
	if s.dir, err = filepath.Abs(s.dir); err != nil {
		return nil, fmt.Errorf("soak: SOAK_DIR: %w", err)
	}
	if err := os.RemoveAll(s.dir); err != nil {
		return nil, fmt.Errorf("soak: SOAK_DIR: %w", err)
	}
	return s, os.MkdirAll(s.dir, 0o755)
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", errors.New("soak: run it inside the edgefleet module")
		}
		dir = up
	}
}

// Firmware versions: the agent under edge-launcher starts on fwOld and a
// firmware rollout moves it to fwNew.
const (
	fwOld = "1.0.0"
	fwNew = "2.0.0"
)

// build compiles fleetd, edge-agent (as is, and stamped with the two
// firmware versions) and edge-launcher once.
func (s *soak) build() error {
	bin := filepath.Join(s.dir, "bin")
	s.bins = map[string]string{}
	builds := []struct{ name, pkg, ldflags string }{
		{"fleetd", "./fleet/cmd/fleetd", ""},
		{"edge-agent", "./agent/cmd/edge-agent", ""},
		{"edge-launcher", "./firmware/cmd/edge-launcher", ""},
		{"edge-agent-" + fwOld, "./agent/cmd/edge-agent", "-X " + bundle.VersionVar + "=" + fwOld},
		{"edge-agent-" + fwNew, "./agent/cmd/edge-agent", "-X " + bundle.VersionVar + "=" + fwNew},
	}
	for _, b := range builds {
		out := filepath.Join(bin, b.name)
		cmd := exec.CommandContext(s.ctx, "go", "build", "-o", out, "-ldflags", b.ldflags, b.pkg)
		cmd.Dir = s.root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("soak: go build %s: %v\n%s", b.name, err, out)
		}
		s.bins[b.name] = out
	}
	return nil
}

// dumpGoroutines asks every Go process still up (those serving /metrics)
// for its goroutine dump (SIGQUIT: the Go runtime prints every stack to
// stderr, the process's log, and exits), for a failed run's diagnosis, or
// for any run's with SOAK_DUMP=1.
func (s *soak) dumpGoroutines() {
	for _, p := range s.procs {
		if p.metrics != "" && p.running() {
			p.signal(syscall.SIGQUIT, 5*time.Second)
			fmt.Fprintf(os.Stderr, "soak: goroutine dump of %s in %s\n", p.name, p.log)
		}
	}
}

// teardown stops everything the run started, whatever happened.
func (s *soak) teardown() {
	for i := len(s.procs) - 1; i >= 0; i-- {
		s.procs[i].kill9()
	}
	for _, p := range s.proxies {
		p.Close()
	}
	for _, a := range s.agents {
		a.unmount()
	}
	if s.dropDB != nil {
		s.dropDB()
	}
}
