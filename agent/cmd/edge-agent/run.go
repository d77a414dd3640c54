package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"image"
	"io"
	"log/slog"
	"net"
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
	"edgefleet/fleet/api"
	"edgefleet/models"
	"edgefleet/models/backend"
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

	det, eng, err := openDetector(ctx, cfg)
	if err != nil {
		return err
	}
	defer eng.Close()
	info := eng.Info()
	log.Info("model loaded", "model", cfg.Model.Name, "model_version", cfg.Model.Version,
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
	if cfg.Fleet.Broker != "" {
		ids := make([]string, len(cams))
		for i, c := range cams {
			ids[i] = c.ID
		}
		password := cfg.Fleet.Password
		if cfg.Fleet.Token != "" {
			password = cfg.Fleet.Token
		}
		l, err := link.New(link.Options{
			Brokers: []string{cfg.Fleet.Broker}, DeviceID: cfg.DeviceID,
			Username: cfg.Fleet.Username, Password: password,
			CAFile: cfg.Fleet.CAFile, CertFile: cfg.Fleet.CertFile, KeyFile: cfg.Fleet.KeyFile,
			State: api.State{
				AgentVersion: agent.Version, Labels: cfg.Labels,
				Model: cfg.Model.Name, ModelVersion: cfg.Model.Version,
				Engine: info.Engine, Delegate: info.Delegate, Cameras: ids, SnapshotURL: snapshotURL,
			},
			Registerer: reg, Logger: log,
		})
		if err != nil {
			if ln != nil {
				ln.Close()
			}
			return fmt.Errorf("fleet: %w", err)
		}
		sender := link.NewSender(l, sp, link.SenderOptions{})
		g.Go(func() error { return l.Run(gctx) })
		g.Go(func() error { return sender.Run(gctx) })
		pub = l
	} else {
		log.Warn("no fleet.broker: detections stay in the spool")
	}

	opts := agent.Options{
		DeviceID: cfg.DeviceID, Cameras: cams, Detector: det, Spool: sp,
		SpoolStatus: func() agent.SpoolStatus {
			st := sp.Stats()
			return agent.SpoolStatus{Depth: st.Depth, Oldest: st.OldestAge, Dropped: st.Dropped()}
		},
		SpoolDir: filepath.Dir(cfg.Spool.Path),
		Model:    cfg.Model.Name, ModelVersion: cfg.Model.Version, Engine: info,
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

// openDetector loads the model and wraps it in a YOLO detector.
func openDetector(ctx context.Context, cfg *config.Config) (models.Detector, models.Engine, error) {
	m := cfg.Model
	b, err := os.ReadFile(m.Path)
	if err != nil {
		return nil, nil, fmt.Errorf("model.path: %w", err)
	}
	labels, _, err := meta.Labels(m.Labels, b)
	if err != nil {
		return nil, nil, fmt.Errorf("model.labels: %w", err)
	}
	lctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	eng, err := backend.Open(lctx, m.Backend, b, models.Options{Threads: m.Threads, Delegate: m.Delegate})
	if err != nil {
		return nil, nil, fmt.Errorf("model.path %s: %w", m.Path, err)
	}
	det, err := yolo.NewDetector(eng, yolo.Options{
		Params: yolo.Params{Conf: m.Conf, IoU: m.IoU}, Labels: labels, Batch: m.Batch, Workers: m.Threads,
	})
	if err != nil {
		eng.Close()
		return nil, nil, fmt.Errorf("model.path %s: %w", m.Path, err)
	}
	return det, eng, nil
}
