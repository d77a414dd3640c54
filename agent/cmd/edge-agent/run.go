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
	"os"
	"path/filepath"
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
	"edgefleet/fleet/api"
	"edgefleet/models"
	"edgefleet/models/backend"
	"edgefleet/models/manifest"
	"edgefleet/models/meta"
	"edgefleet/models/yolo"
)

func init() {
	commands["run"] = command{summary: "run the agent from a config file", run: runAgent}
}

const runUsage = `usage: edge-agent run --config agent.yaml [--listen ADDR]

Runs the agent: cameras, detector, spool and the link to the fleet, as the
config file says. Stops cleanly on SIGINT or SIGTERM.

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
	return runConfig(ctx, cfg, newLogger(cfg.LogLevel))
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level)) // validated by config
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

// runConfig wires the parts from cfg and runs them until ctx is done.
func runConfig(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

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
	info := srv.slot.Engine().Info()
	name, version := srv.model()
	log.Info("model loaded", "model", name, "model_version", version,
		"engine", info.Engine, "delegate", info.Delegate, "threads", info.Threads)

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
	var pub agent.TelemetryPublisher
	if l != nil {
		ids := make([]string, len(cams))
		for i, c := range cams {
			ids[i] = c.ID
		}
		state := api.State{
			AgentVersion: agent.Version, Labels: cfg.Labels,
			Engine: info.Engine, Delegate: info.Delegate, Cameras: ids, SnapshotURL: snapshotURL,
		}
		stateNow := func() api.State {
			st := state
			st.Model, st.ModelVersion = srv.model()
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
				log.Info("model serving", "model", st.Model, "model_version", st.ModelVersion)
				pctx, cancel := context.WithTimeout(gctx, 15*time.Second)
				if err := l.SetState(pctx, st); err != nil && gctx.Err() == nil {
					log.Warn("state not published after a model swap; it goes out on the next connect", "err", err)
				}
				cancel()
			}
		})
		g.Go(func() error { forwardCommands(gctx, l, cfg.DeviceID, srv.x, log); return nil })
		pub = l
	}
	if srv.x != nil {
		g.Go(func() error { return srv.x.Run(gctx) })
	}

	opts := agent.Options{
		DeviceID: cfg.DeviceID, Cameras: cams, Detector: srv.slot, Spool: sp,
		SpoolStatus: func() agent.SpoolStatus {
			st := sp.Stats()
			return agent.SpoolStatus{Depth: st.Depth, Oldest: st.OldestAge, Dropped: st.Dropped()}
		},
		SpoolDir: filepath.Dir(cfg.Spool.Path),
		Model:    srv.baseName, ModelVersion: srv.baseVersion, ModelInfo: srv.model, Engine: info,
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

// forwardCommands hands the fleet's commands to the update executor, or,
// with updates disabled (x nil), fails each job at once so that the fleet
// does not wait for its timeout.
func forwardCommands(ctx context.Context, l *link.Link, device string, x *update.Executor, log *slog.Logger) {
	for {
		var c api.Command
		select {
		case <-ctx.Done():
			return
		case c = <-l.Commands():
		}
		if x != nil {
			if err := x.Handle(ctx, c); err != nil {
				log.Warn("command refused", "job_id", c.JobID, "kind", c.Kind, "err", err)
			}
			continue
		}
		log.Warn("command refused: updates are disabled", "job_id", c.JobID, "kind", c.Kind)
		st := api.JobStatus{DeviceID: device, JobID: c.JobID, State: api.JobFailed, Reason: errUpdatesDisabled.Error(), Time: time.Now().UnixMilli()}
		pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		if err := l.PublishJob(pctx, &st); err != nil && ctx.Err() == nil {
			log.Warn("job status not sent", "job_id", c.JobID, "err", err)
		}
		cancel()
	}
}

var errUpdatesDisabled = errors.New("update: updates are disabled on this device (no update.keys configured)")

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
}

// model names the model serving now.
func (s *served) model() (name, version string) {
	if m := s.slot.Manifest(); m != nil {
		return m.Name, m.Version
	}
	return s.baseName, s.baseVersion
}

// notifySwapper is the slot as the executor's Swapper, telling served.swapped.
type notifySwapper struct {
	*update.Slot
	swapped chan<- struct{}
}

func (n notifySwapper) Swap(ctx context.Context, eng models.Engine, m *manifest.Manifest) (models.Engine, error) {
	old, err := n.Slot.Swap(ctx, eng, m)
	if err == nil {
		select {
		case n.swapped <- struct{}{}:
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
	engOpts := models.Options{Threads: m.Threads, Delegate: m.Delegate}
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
	srv.slot, err = update.NewSlot(eng, man, yolo.Options{
		Params: yolo.Params{Conf: m.Conf, IoU: m.IoU}, Labels: labels, Batch: m.Batch, Workers: m.Threads,
	})
	if err != nil {
		eng.Close()
		return nil, fmt.Errorf("model.path %s: %w", path, err)
	}
	if srv.x != nil {
		srv.x.Attach(notifySwapper{Slot: srv.slot, swapped: srv.swapped}, srv.slot)
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
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           d.DialContext,
		TLSClientConfig:       &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 10 * time.Second,
		IdleConnTimeout:       time.Minute,
	}}, nil
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
