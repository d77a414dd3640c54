// Package runtime is the running edge agent: it builds every part from the
// config (cameras, spool, link to the fleet, the model serving, the update
// executor, firmware self-update, local endpoints) and runs them together.
// edge-agent run only parses flags, loads the config and calls Open and Run.
package runtime

import (
	"context"
	"errors"
	"fmt"
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
	"edgefleet/agent/config"
	"edgefleet/agent/enroll"
	"edgefleet/agent/link"
	"edgefleet/agent/memlimit"
	"edgefleet/agent/shadow"
	"edgefleet/agent/spool"
	"edgefleet/agent/update"
	"edgefleet/firmware"
	"edgefleet/fleet/api"
	"edgefleet/models/native"
)

// ErrRestart is returned by Run after a firmware update or rollback was
// installed: everything is closed (the spool included), and the process must
// exit with slot.ExitSwitch so that edge-launcher starts the active slot.
var ErrRestart = firmware.ErrRestart

// Runtime owns the running agent: cameras, spool, link, the model serving
// (update.Serving), the update executor, firmware self-update and the one
// job reporter every update path reports through. Open it, Run it once;
// Close releases what Open built when Run is never called (Run closes
// everything itself). It is not safe for concurrent use.
type Runtime struct {
	cfg *config.Config
	log *slog.Logger
	reg *prometheus.Registry

	cams    []agent.Camera
	spool   *spool.Spool
	link    *link.Link // nil without fleet.broker
	jobs    update.Reporter
	dl      *update.Downloader // every artifact download: models and bundles
	serving *update.Serving
	updates *update.Executor // nil with updates disabled
	shadow  shadow.Hub       // the pipeline's tap for a shadow phase's candidate
	fw      *selfUpdate
	ln      net.Listener // nil with http.listen off
	agent   *agent.Agent
	snaps   *snapshotter // nil without fleet.broker
	// renewer keeps the device certificate fresh (nil without one); the
	// link and the downloader present its current certificate (identity.go).
	renewer     *enroll.Renewer
	dlTransport *http.Transport
}

// Open builds the agent's parts from cfg (already validated). Cameras open
// first, so a bad camera setting fails before the model loads.
func Open(ctx context.Context, cfg *config.Config, log *slog.Logger) (_ *Runtime, err error) {
	r := &Runtime{cfg: cfg, log: log, reg: prometheus.NewRegistry()}
	r.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		native.DelegateFallbacks)
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	if r.cams, err = openCameras(cfg); err != nil {
		return nil, err
	}
	if err := r.openIdentity(); err != nil {
		return nil, err
	}
	if r.dl, err = newDownloader(cfg, log, r.withIdentity); err != nil {
		return nil, err
	}
	if err := r.openSpool(); err != nil {
		return nil, err
	}
	if err := r.openLink(); err != nil {
		return nil, err
	}
	if err := r.openServing(ctx); err != nil {
		return nil, err
	}
	if err := r.resolveClasses(); err != nil {
		return nil, err
	}
	if r.fw, err = openFirmware(cfg, r.dl, r.jobs, r.log); err != nil {
		return nil, err
	}
	if err := r.openAgent(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Runtime) openSpool() error {
	c := r.cfg.Spool
	if err := os.MkdirAll(filepath.Dir(c.Path), 0o755); err != nil {
		return fmt.Errorf("spool.path: %w", err)
	}
	sp, err := spool.Open(c.Path, spool.Options{MaxBytes: c.MaxBytes, MaxAge: c.MaxAge, Logger: r.log.With("component", "spool"), Now: clockFromEnv(r.log)})
	if err != nil {
		return fmt.Errorf("spool.path %s: %w", c.Path, err)
	}
	r.spool = sp
	r.reg.MustRegister(sp.Collectors()...)
	return nil
}

// openLink builds the link (it connects only once Run starts) and the one
// job reporter every update path reports through.
func (r *Runtime) openLink() error {
	f := r.cfg.Fleet
	if f.Broker == "" {
		r.log.Warn("no fleet.broker: detections stay in the spool")
		r.jobs = r.reporter(func(context.Context, *api.JobStatus) error { return errNoFleet })
		return nil
	}
	opts := link.Options{
		Brokers: []string{f.Broker}, DeviceID: r.cfg.DeviceID,
		Username: f.Username, Password: secret(r.cfg),
		CAFile: f.CAFile, CertFile: f.CertFile, KeyFile: f.KeyFile,
		Registerer: r.reg, Logger: r.log,
	}
	if r.renewer != nil { // the certificate is the identity: username = device id
		opts.TLS, opts.Username = r.renewer.ClientTLS(), r.cfg.DeviceID
	}
	l, err := link.New(opts)
	if err != nil {
		return fmt.Errorf("fleet: %w", err)
	}
	r.link = l
	r.jobs = r.reporter(l.PublishJob)
	return nil
}

// reporter is the one job reporter of every update path (models and
// firmware): it names this device and the time where the status does not.
func (r *Runtime) reporter(publish func(context.Context, *api.JobStatus) error) update.Reporter {
	return update.ReporterFunc(func(ctx context.Context, s api.JobStatus) error {
		if s.DeviceID == "" {
			s.DeviceID = r.cfg.DeviceID
		}
		if s.Time == 0 {
			s.Time = time.Now().UnixMilli()
		}
		return publish(ctx, &s)
	})
}

// secret is the device's password for the broker and artifact downloads.
func secret(cfg *config.Config) string {
	if cfg.Fleet.Token != "" {
		return cfg.Fleet.Token
	}
	return cfg.Fleet.Password
}

// errNoFleet is what a report meets without fleet.broker; the outcome of a
// firmware trial stays pending in the slot state.
var errNoFleet = errors.New("runtime: no fleet.broker configured")

func (r *Runtime) openAgent() error {
	var err error
	if r.cfg.HTTP.Listen != "off" {
		r.ln, err = net.Listen("tcp", r.cfg.HTTP.Listen)
		if err != nil {
			return fmt.Errorf("http.listen: %w", err)
		}
		r.log.Info("http listening", "addr", r.ln.Addr().String())
	}
	var pub agent.TelemetryPublisher
	if r.link != nil {
		pub = r.link
		if err := r.link.SetState(context.Background(), r.state()); err != nil {
			r.log.Debug("initial state", "err", err) // not connected yet: it is the template for the first connect
		}
	}
	name, version := r.serving.Model()
	r.agent, err = agent.New(agent.Options{
		DeviceID: r.cfg.DeviceID, Cameras: r.cams, Detector: r.serving, Spool: r.spool,
		SpoolStatus: func() agent.SpoolStatus {
			st := r.spool.Stats()
			return agent.SpoolStatus{Depth: st.Depth, Oldest: st.OldestAge, Dropped: st.Dropped()}
		},
		SpoolDir: filepath.Dir(r.cfg.Spool.Path),
		Model:    name, ModelVersion: version, ModelInfo: r.serving.Model,
		Engine: r.serving.EngineInfo(), EngineInfo: r.serving.EngineInfo,
		Batch: r.cfg.Model.Batch, Tap: r.shadow.Tap,
		Telemetry: pub, TelemetryInterval: r.cfg.TelemetryInterval,
		Listener: r.ln, Registry: r.reg, Version: agent.Version, Logger: r.log,
	})
	if err == nil && r.link != nil {
		r.snaps = newSnapshotter(r.agent.SnapshotJPEG, r.link.PublishSnapshot, r.cameraIDs(), r.log)
	}
	return err
}

// state is the retained state the link publishes, naming the model serving.
func (r *Runtime) state() api.State {
	ids := r.cameraIDs()
	// No SnapshotURL: the endpoint listens on loopback by default; the fleet
	// asks for snapshots over MQTT (snapshot.go).
	st := api.State{AgentVersion: agent.Version, Labels: r.cfg.Labels, Cameras: ids, Inventory: r.inventory()}
	st.Model, st.ModelVersion = r.serving.Model()
	e := r.serving.EngineInfo()
	st.Engine, st.Delegate, st.EngineVersion = e.Engine, e.Delegate, e.Version
	return st
}

func (r *Runtime) cameraIDs() []string {
	ids := make([]string, len(r.cams))
	for i, c := range r.cams {
		ids[i] = c.ID
	}
	return ids
}

// Run runs every part until ctx is done or one fails, then closes them all.
// It returns ErrRestart when a new agent version must start.
func (r *Runtime) Run(ctx context.Context) error {
	defer r.Close()
	r.ln = nil // the agent owns the listener now
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { r.fw.whenHealthy(gctx, r.link, r.serving.FirstFrame(), r.log); return nil })
	if r.renewer != nil {
		g.Go(func() error { r.runRenewer(gctx); return nil })
	}
	if r.link != nil {
		sender := link.NewSender(r.link, r.spool, link.SenderOptions{})
		g.Go(func() error { return r.link.Run(gctx) })
		g.Go(func() error { return sender.Run(gctx) })
		g.Go(func() error { r.followModel(gctx); return nil })
		g.Go(func() error { return r.forwardCommands(gctx) })
		g.Go(func() error { r.snaps.run(gctx); return nil })
		g.Go(func() error { r.refreshState(gctx, inventoryInterval); return nil })
	}
	if r.updates != nil {
		g.Go(func() error { return r.updates.Run(gctx) })
	}
	if r.cfg.MemoryLimit == "auto" {
		g.Go(func() error { memlimit.Follow(gctx, r.log); return nil })
	}
	g.Go(func() error { return r.agent.Run(gctx) })
	if err := g.Wait(); err != nil {
		return err
	}
	r.log.Info("shut down")
	return nil
}

// followModel republishes the retained state after each swap, so that it
// names the model serving.
func (r *Runtime) followModel(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.serving.Swapped():
		}
		st := r.state()
		r.log.Info("model serving", "model", st.Model, "model_version", st.ModelVersion,
			"engine", st.Engine, "delegate", st.Delegate, "engine_version", st.EngineVersion)
		pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		if err := r.link.SetState(pctx, st); err != nil && ctx.Err() == nil {
			r.log.Warn("state not published after a model swap; it goes out on the next connect", "err", err)
		}
		cancel()
	}
}

// Close releases what Open built; safe to call twice.
func (r *Runtime) Close() {
	for _, c := range r.cams {
		c.Source.Close()
	}
	r.cams = nil
	if r.ln != nil {
		r.ln.Close()
		r.ln = nil
	}
	if r.serving != nil {
		r.serving.Close()
	}
	if r.spool != nil {
		r.spool.Close()
	}
}
