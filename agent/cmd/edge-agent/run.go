package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"image"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"edgefleet/agent"
	"edgefleet/agent/capture"
	"edgefleet/agent/config"
	"edgefleet/agent/link"
	"edgefleet/agent/spool"
	"edgefleet/agent/update"
	"edgefleet/firmware"
	"edgefleet/firmware/slot"
	"edgefleet/fleet/api"
	"edgefleet/models"
	"edgefleet/models/backend"
	"edgefleet/models/manifest"
	"edgefleet/models/meta"
	"edgefleet/models/native"
	"edgefleet/models/yolo"
)

func init() {
	commands["run"] = command{summary: "run the agent from a config file", run: runAgent}
}

const runUsage = `usage: edge-agent run --config agent.yaml [--listen ADDR]

Runs the agent: cameras, detector, spool and the link to the fleet, as the
config file says. Stops cleanly on SIGINT or SIGTERM. Under edge-launcher it
also takes firmware_update commands; after installing one it closes the
spool and exits with status 75 so that the launcher starts the new version.

flags:
`

func runAgent(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfgPath := fs.String("config", "", "`path` of the agent's YAML config (required)")
	listen := fs.String("listen", "", "override http.listen (host:port, or off)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(os.Stderr, runUsage)
			fs.SetOutput(os.Stderr)
			fs.PrintDefaults()
			return nil
		}
		return err
	}
	if *cfgPath == "" {
		return errors.New("--config is required")
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	if *listen != "" {
		cfg.HTTP.Listen = *listen
		if err := cfg.Validate(); err != nil {
			return fmt.Errorf("--listen: %w", err)
		}
	}
	if err := cfg.CheckDevices(); err != nil {
		return err
	}
	log := newLogger(cfg.LogLevel)
	err = runConfig(ctx, cfg, log)
	if errors.Is(err, firmware.ErrRestart) {
		// Everything is closed (spool included): the launcher starts the
		// slot that is active now.
		log.Info("exiting for edge-launcher to start the new agent version", "exit_status", slot.ExitSwitch)
		os.Exit(slot.ExitSwitch)
	}
	return err
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level)) // validated by config
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

// runConfig wires the parts from cfg and runs them until ctx is done.
func runConfig(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		native.DelegateFallbacks)

	// Cameras first: a bad camera setting fails before the model loads.
	cams, err := openCameras(cfg)
	if err != nil {
		return err
	}
	defer func() {
		for _, c := range cams {
			c.Source.Close()
		}
	}()

	if err := os.MkdirAll(filepath.Dir(cfg.Spool.Path), 0o755); err != nil {
		return fmt.Errorf("spool.path: %w", err)
	}
	sp, err := spool.Open(cfg.Spool.Path, spool.Options{MaxBytes: cfg.Spool.MaxBytes, MaxAge: cfg.Spool.MaxAge, Logger: log.With("component", "spool")})
	if err != nil {
		return fmt.Errorf("spool.path %s: %w", cfg.Spool.Path, err)
	}
	defer sp.Close()
	reg.MustRegister(sp.Collectors()...)

	// The link exists before the model so that the update executor can
	// report through it; it connects only once Run starts.
	var l *link.Link
	password := cfg.Fleet.Password
	if cfg.Fleet.Token != "" {
		password = cfg.Fleet.Token
	}
	if cfg.Fleet.Broker != "" {
		l, err = link.New(link.Options{
			Brokers: []string{cfg.Fleet.Broker}, DeviceID: cfg.DeviceID,
			Username: cfg.Fleet.Username, Password: password,
			CAFile: cfg.Fleet.CAFile, CertFile: cfg.Fleet.CertFile, KeyFile: cfg.Fleet.KeyFile,
			Registerer: reg, Logger: log,
		})
		if err != nil {
			return fmt.Errorf("fleet: %w", err)
		}
	} else {
		log.Warn("no fleet.broker: detections stay in the spool")
	}

	srv, err := openServed(ctx, cfg, l, password, log)
	if err != nil {
		return err
	}
	defer srv.slot.Close()
	info := srv.engine()
	name, version := srv.model()
	log.Info("model loaded", "model", name, "model_version", version,
		"engine", info.Engine, "delegate", info.Delegate, "engine_version", info.Version, "threads", info.Threads)

	fw, err := openFirmware(cfg, l, password, log)
	if err != nil {
		return err
	}
	det := &firstFrame{Detector: srv.slot, done: make(chan struct{})}

	var ln net.Listener
	snapshotURL := ""
	if cfg.HTTP.Listen != "off" {
		ln, err = net.Listen("tcp", cfg.HTTP.Listen)
		if err != nil {
			return fmt.Errorf("http.listen: %w", err)
		}
		snapshotURL = "http://" + ln.Addr().String() + "/snapshot/"
		log.Info("http listening", "addr", ln.Addr().String())
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { fw.whenHealthy(gctx, l, det.done, log); return nil })
	var pub agent.TelemetryPublisher
	if l != nil {
		ids := make([]string, len(cams))
		for i, c := range cams {
			ids[i] = c.ID
		}
		state := api.State{
			AgentVersion: agent.Version, Labels: cfg.Labels, Cameras: ids, SnapshotURL: snapshotURL,
		}
		stateNow := func() api.State {
			st := state
			st.Model, st.ModelVersion = srv.model()
			e := srv.engine()
			st.Engine, st.Delegate, st.EngineVersion = e.Engine, e.Delegate, e.Version
			return st
		}
		if err := l.SetState(ctx, stateNow()); err != nil {
			log.Debug("initial state", "err", err) // not connected yet: it is the template for the first connect
		}
		sender := link.NewSender(l, sp, link.SenderOptions{})
		g.Go(func() error { return l.Run(gctx) })
		g.Go(func() error { return sender.Run(gctx) })
		// The retained state follows the model serving.
		g.Go(func() error {
			for {
				select {
				case <-gctx.Done():
					return nil
				case <-srv.swapped:
				}
				st := stateNow()
				log.Info("model serving", "model", st.Model, "model_version", st.ModelVersion,
					"engine", st.Engine, "delegate", st.Delegate, "engine_version", st.EngineVersion)
				pctx, cancel := context.WithTimeout(gctx, 15*time.Second)
				if err := l.SetState(pctx, st); err != nil && gctx.Err() == nil {
					log.Warn("state not published after a model swap; it goes out on the next connect", "err", err)
				}
				cancel()
			}
		})
		g.Go(func() error { return forwardCommands(gctx, l, cfg.DeviceID, srv.x, fw, log) })
		pub = l
	}
	if srv.x != nil {
		g.Go(func() error { return srv.x.Run(gctx) })
	}

	opts := agent.Options{
		DeviceID: cfg.DeviceID, Cameras: cams, Detector: det, Spool: sp,
		SpoolStatus: func() agent.SpoolStatus {
			st := sp.Stats()
			return agent.SpoolStatus{Depth: st.Depth, Oldest: st.OldestAge, Dropped: st.Dropped()}
		},
		SpoolDir: filepath.Dir(cfg.Spool.Path),
		Model:    srv.baseName, ModelVersion: srv.baseVersion, ModelInfo: srv.model, Engine: info, EngineInfo: srv.engine,
		Batch:     cfg.Model.Batch,
		Telemetry: pub, TelemetryInterval: cfg.TelemetryInterval,
		Listener: ln, Registry: reg, Version: agent.Version, Logger: log,
	}
	a, err := agent.New(opts)
	if err != nil {
		if ln != nil {
			ln.Close()
		}
		return err
	}
	g.Go(func() error { return a.Run(gctx) })
	err = g.Wait()
	if err != nil {
		return err
	}
	log.Info("shut down")
	return nil
}

// forwardCommands hands the fleet's commands to the firmware updater
// (firmware_update, and rollbacks of firmware jobs) or the model update
// executor; with updates disabled (x nil, or no firmware updater) it fails
// each job at once so that the fleet does not wait for its timeout. It
// returns firmware.ErrRestart when a new agent version must start.
func forwardCommands(ctx context.Context, l *link.Link, device string, x *update.Executor, fw *selfUpdate, log *slog.Logger) error {
	refuse := func(c api.Command, reason error) {
		log.Warn("command refused", "job_id", c.JobID, "kind", c.Kind, "err", reason)
		st := api.JobStatus{DeviceID: device, JobID: c.JobID, State: api.JobFailed, Reason: reason.Error(), Time: time.Now().UnixMilli()}
		pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		if err := l.PublishJob(pctx, &st); err != nil && ctx.Err() == nil {
			log.Warn("job status not sent", "job_id", c.JobID, "err", err)
		}
		cancel()
	}
	for {
		var c api.Command
		select {
		case <-ctx.Done():
			return nil
		case c = <-l.Commands():
		}
		switch c.Kind {
		case api.CommandFirmwareUpdate:
			if fw.u == nil {
				refuse(c, fw.off)
				continue
			}
			err := fw.handle(ctx, c, log)
			if errors.Is(err, firmware.ErrRestart) {
				return err
			}
			if err != nil {
				log.Warn("firmware update failed", "job_id", c.JobID, "err", err) // reported by the updater
			}
			continue
		case api.CommandRollback:
			if fw.u != nil {
				handled, err := fw.u.Rollback(ctx, c)
				if errors.Is(err, firmware.ErrRestart) {
					log.Info("firmware: rolled back by the fleet", "job_id", c.JobID)
					return err
				}
				if handled {
					if err != nil {
						log.Warn("firmware rollback failed", "job_id", c.JobID, "err", err)
					}
					continue
				}
				if err != nil {
					log.Warn("firmware rollback: passing the command on to the model updater", "job_id", c.JobID, "err", err)
				}
			}
		}
		if x != nil {
			if err := x.Handle(ctx, c); err != nil {
				log.Warn("command refused", "job_id", c.JobID, "kind", c.Kind, "err", err)
			}
			continue
		}
		refuse(c, errUpdatesDisabled)
	}
}

var errUpdatesDisabled = errors.New("update: updates are disabled on this device (no update.keys configured)")

// errNoFleet is what a firmware report meets without fleet.broker; the
// outcome stays pending in the slot state.
var errNoFleet = errors.New("no fleet.broker configured")

// selfUpdate is the firmware side of the agent: under edge-launcher, the
// slots it runs from and, with keys pinned, the updater of its own binary.
type selfUpdate struct {
	u *firmware.Updater
	// off says why firmware_update commands are refused (u nil).
	off error
	// slots and slot are set under edge-launcher, even without keys, so that
	// a trial installed locally (edge-launcher install) is still committed.
	slots *slot.Slots
	slot  string
	// base resolves relative artifact URLs (update.artifact_url).
	base string
}

// openFirmware sets up firmware updates from cfg.Firmware and the
// environment edge-launcher gives the agent.
func openFirmware(cfg *config.Config, l *link.Link, token string, log *slog.Logger) (*selfUpdate, error) {
	f := &selfUpdate{base: cfg.Update.ArtifactURL}
	c := cfg.Firmware
	s, name, launched, err := slot.FromEnv()
	if err != nil {
		return nil, fmt.Errorf("firmware: %s %s: %w", slot.EnvDataDir, os.Getenv(slot.EnvDataDir), err)
	}
	if !launched {
		f.off = errors.New("firmware: the agent does not run under edge-launcher, so it cannot update itself")
		if c.DataDir != "" {
			log.Warn("firmware.data_dir is set but the agent was not started by edge-launcher: firmware updates are off", "data_dir", c.DataDir)
		} else {
			log.Debug("not under edge-launcher: firmware updates are off")
		}
		return f, nil
	}
	if c.DataDir != "" && !sameDir(c.DataDir, s.Dir()) {
		return nil, fmt.Errorf("firmware.data_dir %s: edge-launcher runs this agent from %s", c.DataDir, s.Dir())
	}
	f.slots, f.slot = s, name
	if !c.Enabled() {
		f.off = errors.New("firmware: no firmware.keys (or update.keys) configured to verify agent bundles")
		log.Warn("under edge-launcher without keys: firmware updates are refused", "data_dir", s.Dir(), "slot", name)
		return f, nil
	}
	keys, err := manifest.LoadKeySet(c.Keys...)
	if err != nil {
		return nil, fmt.Errorf("firmware.keys: %w", err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("firmware.keys: no public key in %v", c.Keys)
	}
	client, err := artifactClient(cfg.Fleet.CAFile)
	if err != nil {
		return nil, err
	}
	if client == nil {
		client = &http.Client{Transport: boundedTransport(nil)}
	}
	report := func(ctx context.Context, st api.JobStatus) error {
		if l == nil {
			return errNoFleet
		}
		return l.PublishJob(ctx, &st)
	}
	f.u, err = firmware.New(firmware.Options{
		Slots: s, Slot: name, Keys: keys, DeviceID: cfg.DeviceID, Token: token,
		Report: report, HTTP: client, MaxBoots: c.MaxBoots, Log: log.With("component", "firmware"),
	})
	if err != nil {
		return nil, err
	}
	log.Info("firmware updates enabled", "data_dir", s.Dir(), "slot", name, "keys", keys.IDs())
	return f, nil
}

func sameDir(a, b string) bool {
	if filepath.Clean(a) == filepath.Clean(b) {
		return true
	}
	ai, err1 := os.Stat(a)
	bi, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(ai, bi)
}

// handle runs a firmware_update command. A job that already installed one
// of the slots (the command delivered again after the restart) is not run
// again: its outcome is reported by whenHealthy.
func (f *selfUpdate) handle(ctx context.Context, c api.Command, log *slog.Logger) error {
	if st, err := f.slots.State(); err == nil && c.JobID != "" {
		for name, in := range st.Slots {
			if in.JobID == c.JobID {
				log.Info("firmware: job already installed; not running it again", "job_id", c.JobID, "slot", name, "version", in.Version)
				return nil
			}
		}
	}
	if a := c.Artifact; a != nil && f.base != "" {
		if u, err := url.Parse(a.URL); err == nil && !u.IsAbs() {
			if base, err := url.Parse(f.base); err == nil {
				art := *a
				art.URL = base.ResolveReference(u).String()
				c.Artifact = &art
			}
		}
	}
	return f.u.Handle(ctx, c)
}

// whenHealthy waits until the agent is healthy (the first frame inferred
// and, with a fleet, the link connected), then commits the trial this
// process runs, if any, and reports the finished trials, retrying with
// backoff until the reports are out.
func (f *selfUpdate) whenHealthy(ctx context.Context, l *link.Link, firstFrame <-chan struct{}, log *slog.Logger) {
	if f.slots == nil {
		return
	}
	select {
	case <-ctx.Done():
		return
	case <-firstFrame:
	}
	for delay := time.Second; ; delay = min(2*delay, time.Minute) {
		if l != nil {
			if _, err := l.WaitConnected(ctx); err != nil {
				return
			}
		}
		before, _ := f.slots.State()
		var err error
		if f.u != nil {
			err = f.u.Healthy(ctx)
		} else {
			_, _, err = f.slots.Commit(f.slot)
		}
		if before.Trial && before.Active == f.slot {
			if after, serr := f.slots.State(); serr == nil && !after.Trial {
				log.Info("firmware: healthy; this version is committed", "version", agent.Version, "slot", f.slot)
			}
		}
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			return
		}
		log.Warn("firmware: healthy report", "err", err, "retry_in", delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}

// firstFrame is the pipeline's detector, closing done after its first
// successful Detect: a sign of health for a new agent version.
type firstFrame struct {
	models.Detector
	once sync.Once
	done chan struct{}
}

func (d *firstFrame) Detect(ctx context.Context, imgs []image.Image) ([][]models.Detection, error) {
	res, err := d.Detector.Detect(ctx, imgs)
	if err == nil {
		d.once.Do(func() { close(d.done) })
	}
	return res, err
}

// served is the detector the pipeline runs: a slot holding the model the
// update state names (else the configured one), and the executor that
// replaces it (nil with updates disabled).
type served struct {
	slot *update.Slot
	x    *update.Executor
	// swapped receives a value after each swap (buffered by one).
	swapped chan struct{}
	// baseName and baseVersion name the model without a signed manifest:
	// the configured one (or the one adopted from it earlier).
	baseName, baseVersion string
	// info is the Info of the engine serving, taken before the engine is
	// handed to the slot (an engine is not safe for concurrent use).
	info atomic.Pointer[models.EngineInfo]
}

// engine says what the engine serving now runs.
func (s *served) engine() models.EngineInfo {
	if p := s.info.Load(); p != nil {
		return *p
	}
	return models.EngineInfo{}
}

// model names the model serving now.
func (s *served) model() (name, version string) {
	if m := s.slot.Manifest(); m != nil {
		return m.Name, m.Version
	}
	return s.baseName, s.baseVersion
}

// notifySwapper is the slot as the executor's Swapper, recording the new
// engine's Info and telling served.swapped.
type notifySwapper struct {
	*update.Slot
	srv *served
}

func (n notifySwapper) Swap(ctx context.Context, eng models.Engine, m *manifest.Manifest) (models.Engine, error) {
	info := eng.Info()
	old, err := n.Slot.Swap(ctx, eng, m)
	if err == nil {
		n.srv.info.Store(&info)
		select {
		case n.srv.swapped <- struct{}{}:
		default:
		}
	}
	return old, err
}

// openServed loads the model to serve. With update.keys it builds the
// executor, adopts the configured model as the last known good one when
// update.dir records none, and serves the model update.dir names current.
func openServed(ctx context.Context, cfg *config.Config, l *link.Link, token string, log *slog.Logger) (*served, error) {
	m := cfg.Model
	cfgData, err := os.ReadFile(m.Path)
	if err != nil {
		return nil, fmt.Errorf("model.path: %w", err)
	}
	labels, _, err := meta.Labels(m.Labels, cfgData)
	if err != nil {
		return nil, fmt.Errorf("model.labels: %w", err)
	}
	engOpts := models.Options{Threads: m.Threads, Delegate: m.Delegate, Strict: m.Strict, Library: m.Library}
	open := func(ctx context.Context, b []byte, o models.Options) (models.Engine, error) {
		return backend.Open(ctx, m.Backend, b, o)
	}
	srv := &served{swapped: make(chan struct{}, 1), baseName: m.Name, baseVersion: m.Version}

	data, path := cfgData, m.Path
	var man *manifest.Manifest
	if cfg.Update.Enabled() {
		x, err := newExecutor(cfg, l, token, open, engOpts, log)
		if err != nil {
			return nil, err
		}
		if err := x.Seed(ctx, m.Path, m.Name, m.Version); err != nil {
			return nil, fmt.Errorf("update.dir %s: %w", cfg.Update.Dir, err)
		}
		srv.x = x
		if cur, curPath, ok := x.Current(); ok {
			b, err := os.ReadFile(curPath)
			switch {
			case err != nil:
				log.Error("the current model in update.dir cannot be read; running model.path", "path", curPath, "err", err)
			case cur.Signed() == nil && cur.SHA256 != sha256Hex(cfgData):
				// Seed adopts model.path only into an empty update.dir.
				log.Warn("model.path differs from the model adopted into update.dir earlier; running that one (remove update.dir to adopt model.path)",
					"model_path", m.Path, "running", curPath, "model", cur.Name, "model_version", cur.Version)
				data, path, srv.baseName, srv.baseVersion = b, curPath, cur.Name, cur.Version
			default:
				data, path, man = b, curPath, cur.Signed()
				if man != nil {
					log.Info("running the model installed by an update (update.dir), not model.path",
						"model", man.Name, "model_version", man.Version, "path", curPath)
				}
			}
		}
	} else {
		log.Info("updates disabled: no update.keys configured")
	}

	lctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	eng, err := open(lctx, data, engOpts)
	if err != nil && path != m.Path {
		log.Error("the current model in update.dir does not open; running model.path", "path", path, "err", err)
		data, path, man = cfgData, m.Path, nil
		srv.baseName, srv.baseVersion = m.Name, m.Version
		eng, err = open(lctx, data, engOpts)
	}
	if err != nil {
		return nil, fmt.Errorf("model.path %s: %w", path, err)
	}
	if man != nil && len(man.Labels) == 0 {
		// A manifest without labels: the names embedded in the model.
		if l := update.Labels(nil, data); len(l) > 0 {
			c := *man
			c.Labels = l
			man = &c
		}
	}
	info := eng.Info()
	srv.info.Store(&info)
	srv.slot, err = update.NewSlot(eng, man, yolo.Options{
		Params: yolo.Params{Conf: m.Conf, IoU: m.IoU}, Labels: labels, Batch: m.Batch, Workers: m.Threads,
	})
	if err != nil {
		eng.Close()
		return nil, fmt.Errorf("model.path %s: %w", path, err)
	}
	if srv.x != nil {
		srv.x.Attach(notifySwapper{Slot: srv.slot, srv: srv}, srv.slot)
	}
	return srv, nil
}

// newExecutor builds the update executor from cfg.Update; its reports go
// out through l (only logged without a fleet).
func newExecutor(cfg *config.Config, l *link.Link, token string, open models.Opener, engOpts models.Options, log *slog.Logger) (*update.Executor, error) {
	u := cfg.Update
	keys, err := manifest.LoadKeySet(u.Keys...)
	if err != nil {
		return nil, fmt.Errorf("update.keys: %w", err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("update.keys: no public key in %v", u.Keys)
	}
	var rep update.Reporter
	if l != nil {
		rep = update.ReporterFunc(func(ctx context.Context, s api.JobStatus) error { return l.PublishJob(ctx, &s) })
	}
	client, err := artifactClient(cfg.Fleet.CAFile)
	if err != nil {
		return nil, err
	}
	if u.ArtifactURL == "" && l != nil {
		log.Info("no update.artifact_url: only absolute artifact URLs can be downloaded")
	}
	minDet := *u.Policy.MinDetectionRatio
	if minDet == 0 {
		minDet = -1 // off, in update.HealthPolicy's terms
	}
	x, err := update.New(update.Options{
		Dir: u.Dir, DeviceID: cfg.DeviceID, Token: token, Keys: keys, Reporter: rep,
		Open: open, EngineOptions: engOpts, BaseURL: u.ArtifactURL, Client: client,
		MaxAttempts: u.MaxAttempts, StallTimeout: u.StallTimeout, SmokeBudget: u.SmokeBudget, HealthWindow: u.HealthWindow,
		Policy: update.HealthPolicy{
			MaxErrors: u.Policy.MaxErrors, MinFrames: u.Policy.MinFrames,
			MaxLatencyRatio: u.Policy.MaxLatencyRatio, MinDetectionRatio: minDet,
		},
		Logger: log.With("component", "update"),
	})
	if err != nil {
		return nil, fmt.Errorf("update.dir %s: %w", u.Dir, err)
	}
	log.Info("updates enabled", "dir", u.Dir, "keys", keys.IDs(), "artifact_url", u.ArtifactURL)
	return x, nil
}

// artifactClient is the HTTP client for artifact downloads: nil (the
// executor's default) unless fleet.ca_file names the roots to trust.
func artifactClient(caFile string) (*http.Client, error) {
	if caFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("fleet.ca_file: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("fleet.ca_file %s: no PEM certificate in it", caFile)
	}
	return &http.Client{Transport: boundedTransport(roots)}, nil
}

// boundedTransport bounds each step of a download but its body (roots nil:
// the system's).
func boundedTransport(roots *x509.CertPool) *http.Transport {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           d.DialContext,
		TLSClientConfig:       &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 10 * time.Second,
		IdleConnTimeout:       time.Minute,
	}
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// openCameras builds a source per configured camera.
func openCameras(cfg *config.Config) ([]agent.Camera, error) {
	var cams []agent.Camera
	fail := func(err error) ([]agent.Camera, error) {
		for _, c := range cams {
			c.Source.Close()
		}
		return nil, err
	}
	for i, c := range cfg.Cameras {
		var src capture.Source
		switch c.Source {
		case config.SourceV4L2:
			src = capture.NewV4L2(capture.DeviceConfig{Path: c.Device, Format: c.Format, Width: c.Width, Height: c.Height, FPS: c.FPS}, capture.V4L2Options{})
		case config.SourceFiles:
			f, err := capture.OpenFiles(c.Path, capture.FilesOptions{FPS: c.FPS})
			if err != nil {
				return fail(fmt.Errorf("cameras[%d].path: %w", i, err))
			}
			src = f
		case config.SourceMJPEG:
			src = capture.NewMJPEG(c.URL, capture.MJPEGOptions{})
		case config.SourceSynth:
			var sprites []image.Image
			if c.Path != "" {
				s, err := capture.LoadSprites(c.Path)
				if err != nil {
					return fail(fmt.Errorf("cameras[%d].path: %w", i, err))
				}
				sprites = s
			}
			src = capture.NewSynth(capture.SynthOptions{Width: c.Width, Height: c.Height, FPS: c.FPS, Seed: c.Seed, Sprites: sprites})
		default:
			return fail(fmt.Errorf("cameras[%d].source: unknown source %q", i, c.Source))
		}
		var classes map[string]bool
		if len(c.Classes) > 0 {
			classes = map[string]bool{}
			for _, cl := range c.Classes {
				classes[cl] = true
			}
		}
		cams = append(cams, agent.Camera{ID: c.ID, Source: src, Filter: agent.Filter{Region: c.Region, Classes: classes, MinScore: c.MinScore}})
	}
	return cams, nil
}
