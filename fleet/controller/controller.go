// Package controller is fleetd assembled in one place: from a Config it
// builds the MQTT side (the embedded broker, or a connection to an external
// one), the detection store, the device registry, ingest, the artifact
// store, the rollout engine and the HTTP server, runs them together and
// closes them. Tests drive fleetd through it without its main package.
//
//	c, err := controller.New(ctx, cfg, log)
//	defer c.Close()
//	err = c.Run(ctx)
package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"edgefleet/fleet/api"
	"edgefleet/fleet/broker"
	"edgefleet/fleet/database"
	"edgefleet/fleet/feed"
	"edgefleet/fleet/ingest"
	"edgefleet/fleet/registry"
	"edgefleet/fleet/rollout"
	"edgefleet/fleet/server"
	"edgefleet/fleet/store"
	"edgefleet/internal/dirlock"
)

// JobHandler takes the job reports devices publish; the rollout engine is one.
type JobHandler interface {
	HandleJobStatus(ctx context.Context, st api.JobStatus) error
}

// Controller is a built fleetd. Run it once; Close it after Run returns
// (or instead of Run). Its accessors are safe for concurrent use.
type Controller struct {
	cfg  *Config
	log  *slog.Logger
	prom *prometheus.Registry

	db   *database.DB   // nil without database.url
	feed *feed.Postgres // the live feed across replicas; nil without a database

	readyOnce sync.Once
	readyCh   chan struct{}
	store     store.Store
	registry  registry.Devices
	broker    *broker.Broker // nil with an external broker
	conn      ingest.Conn
	ln        net.Listener
	ota       *ota
	server    *server.Server
	ingest    *ingest.Ingest
	jobs      JobHandler
	id        *identity      // CA, enrollment, device gate (identity.go)
	closers   []func() error // in opening order

	stopTimeout time.Duration                              // see defaultStopTimeout
	extraParts  map[string]func(ctx context.Context) error // run by Run beside the others (tests)
}

// shutdownGrace is how long requests in flight may go on once fleetd
// stops; the live feed's streams end then.
const shutdownGrace = time.Second

// New builds fleetd from cfg (already validated): it opens the data files,
// binds the broker and HTTP listeners (so their addresses are known) and,
// with an external broker, connects to it. Nothing is served until Run.
func New(ctx context.Context, cfg *Config, log *slog.Logger) (_ *Controller, err error) {
	if log == nil {
		log = slog.Default()
	}
	c := &Controller{cfg: cfg, log: log, prom: prometheus.NewRegistry(), stopTimeout: defaultStopTimeout}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	c.prom.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("controller: data dir: %w", err)
	}
	lock, err := dirlock.Acquire(cfg.DataDir, "fleetd")
	if err != nil {
		return nil, fmt.Errorf("controller: data_dir: %w", err)
	}
	c.closers = append(c.closers, lock.Release)
	if err := c.openState(ctx); err != nil {
		return nil, err
	}
	if err := c.openIdentity(ctx); err != nil {
		return nil, err
	}
	auth := c.id.gate
	if err := c.openMQTT(ctx, auth); err != nil {
		return nil, err
	}
	// Listen before OTA opens: the default artifact URL names the bound port.
	if c.ln, err = net.Listen("tcp", cfg.HTTP.Listen); err != nil {
		return nil, fmt.Errorf("controller: http listen: %w", err)
	}
	c.closers = append(c.closers, func() error {
		if err := c.ln.Close(); !errors.Is(err, net.ErrClosed) {
			return err // http.Server.Shutdown closes it after Run
		}
		return nil
	})
	if c.ln, err = c.httpsListener(c.ln); err != nil {
		return nil, err
	}
	if err := c.openOTA(auth); err != nil {
		return nil, err
	}
	c.ota.view.DeviceAuth, c.id.gate.jobs = c.id.gate, c.ota.engine // scoped downloads, by certificate too
	c.jobs = c.ota.engine
	return c, c.newServing(ctx)
}

// openState opens the detection store and the device registry: in
// PostgreSQL with database.url, else in bbolt files in data_dir.
func (c *Controller) openState(ctx context.Context) error {
	cfg := c.cfg
	ret := store.Retention{MaxAge: cfg.Retention.MaxAge, MaxEvents: cfg.Retention.MaxEvents, MaxBytes: cfg.Retention.MaxBytes,
		SnapshotMaxAge: cfg.Retention.SnapshotMaxAge, SnapshotMaxBytes: cfg.Retention.SnapshotMaxBytes}
	ropt := registry.Options{StaleAfter: cfg.Health.StaleAfter, MaxDropRate: cfg.Health.MaxDropRate,
		MaxSpoolDepth: cfg.Health.MaxSpoolDepth, MaxSpoolAge: cfg.Health.MaxSpoolAge}
	var stats func() store.Stats
	if cfg.Database.URL != "" {
		db, err := database.Open(ctx, cfg.Database.URL, database.Options{MaxConns: cfg.Database.MaxConns, Logger: c.log})
		if err != nil {
			return fmt.Errorf("controller: %w", err)
		}
		c.db = db
		c.closers = append(c.closers, func() error { db.Close(); return nil })
		st, err := store.OpenPostgres(ctx, db.Pool, store.PostgresOptions{Retention: ret, Logger: c.log})
		if err != nil {
			return fmt.Errorf("controller: %w", err)
		}
		c.store, stats = st, st.Stats
		c.closers = append(c.closers, st.Close)
		reg, err := registry.OpenPostgres(ctx, db.Pool, registry.PostgresOptions{Options: ropt, Logger: c.log})
		if err != nil {
			return fmt.Errorf("controller: %w", err)
		}
		c.registry = reg
		c.closers = append(c.closers, reg.Close)
		c.log.Info("database open", "schema_version", db.Version)
	} else {
		st, err := store.OpenBolt(filepath.Join(cfg.DataDir, "detections.db"), store.BoltOptions{Retention: ret})
		if err != nil {
			return fmt.Errorf("controller: %w", err)
		}
		c.store, stats = st, st.Stats
		c.closers = append(c.closers, st.Close)
		reg, err := registry.Open(filepath.Join(cfg.DataDir, "registry.db"), ropt)
		if err != nil {
			return fmt.Errorf("controller: %w", err)
		}
		c.registry = reg
		c.closers = append(c.closers, reg.Close)
	}
	registerStoreMetrics(c.prom, stats)
	registerRegistryMetrics(c.prom, c.registry)
	return nil
}

// deviceAuth holds the device (and, for the embedded broker, service)
// credentials: broker logins and artifact downloads.
func (c *Controller) deviceAuth() (*broker.StaticAuth, error) {
	auth := broker.NewStaticAuth()
	for _, d := range c.cfg.Devices {
		if err := auth.SetDevice(d.ID, d.Password); err != nil {
			return nil, fmt.Errorf("controller: devices: %w", err)
		}
	}
	if c.cfg.Broker.URL == "" {
		for _, s := range c.cfg.Services {
			if err := auth.SetService(s.User, s.Password); err != nil {
				return nil, fmt.Errorf("controller: services: %w", err)
			}
		}
	}
	return auth, nil
}

// openMQTT binds the embedded broker, or connects to the external one.
func (c *Controller) openMQTT(ctx context.Context, auth broker.Authenticator) error {
	cfg := c.cfg
	if cfg.Broker.URL != "" {
		p, err := ingest.Dial(ctx, ingest.DialOptions{URL: cfg.Broker.URL, ClientID: cfg.Broker.ClientID,
			Username: cfg.Broker.Username, Password: cfg.Broker.Password})
		if err != nil {
			return fmt.Errorf("controller: %w", err)
		}
		c.conn = p
		c.closers = append(c.closers, p.Close)
		c.log.Info("connected to external broker", "url", cfg.Broker.URL, "share_group", cfg.Broker.ShareGroup)
		return nil
	}
	// No device is connected to a broker that has not started yet: the
	// online flags kept from the last run are stale (after a crash, no last
	// will was sent). Devices say they are online again when they
	// reconnect; until then the rollout engine keeps their jobs. Not with
	// a database: other replicas (and their brokers) share the registry.
	if c.db == nil {
		if n := markOffline(c.registry); n > 0 {
			c.log.Info("devices marked offline until they reconnect", "devices", n)
		}
	}
	bo := broker.Options{Addr: cfg.Broker.Listen, TLSAddr: cfg.Broker.TLSListen, Auth: auth, Registerer: c.prom, Logger: c.log}
	if cfg.Broker.TLSListen != "" {
		var err error
		if bo.TLS, bo.Devices, err = c.brokerTLS(); err != nil {
			return fmt.Errorf("controller: %w", err)
		}
	}
	b, err := broker.New(bo)
	if err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	c.broker, c.conn = b, ingest.Embedded(b)
	c.closers = append(c.closers, b.Close)
	c.log.Info("broker listening", "mqtt_addr", b.Addr(), "mqtts_addr", b.TLSAddr(), "devices", len(cfg.Devices))
	return nil
}

func (c *Controller) openOTA(auth broker.Authenticator) error {
	o := c.cfg.OTA
	var err error
	c.ota, err = openOTA(otaConfig{Dir: filepath.Join(c.cfg.DataDir, "ota"), SigningKey: o.SigningKey, PublicKeys: o.PublicKeys,
		ArtifactBase: c.cfg.artifactBase(c.ln.Addr().String()), MaxUpload: o.MaxUpload,
		HealthWindow: o.HealthWindow, JobTimeout: o.JobTimeout, Pool: c.pool()}, rollout.Registry{R: c.registry}, c.conn, auth, c.prom, c.log)
	if err != nil {
		return err
	}
	c.closers = append(c.closers, c.ota.Close)
	return nil
}

// newServing builds the HTTP server and ingest, which hands job reports to c.jobs.
func (c *Controller) newServing(ctx context.Context) error {
	ops, err := c.openOperators(ctx)
	if err != nil {
		return err
	}
	snaps, err := ingest.NewSnapshots(c.conn, c.prom) // camera snapshots asked of devices over MQTT
	if err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	provisioned := make([]string, len(c.cfg.Devices))
	for i, d := range c.cfg.Devices {
		provisioned[i] = d.ID
	}
	c.server, err = server.New(server.Options{Store: c.store, Registry: c.registry, Operators: ops.tokens, Audit: ops.audit, Tickets: ops.tickets, Gatherer: c.prom,
		Registerer: c.prom, Logger: c.log, OTA: c.ota.view, Snapshots: snaps, Provisioned: provisioned,
		Extra: c.identityRoutes(), // device enrollment and revocation (identity.go)
		Ready: c.ready})
	if err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	shareGroup := ""
	if c.broker == nil {
		shareGroup = c.cfg.Broker.ShareGroup
	}
	onStored := c.server.Hub().Publish
	if c.db != nil {
		// Every replica's hub, this one's included, is fed through PostgreSQL.
		if c.feed, err = feed.NewPostgres(c.db.Pool, feed.Options{Registerer: c.prom, Logger: c.log, Watched: c.server.Hub().Watched}); err != nil {
			return fmt.Errorf("controller: %w", err)
		}
		onStored = c.feed.Publish
	}
	// With a shared database, state, telemetry and job reports are applied
	// by whichever replica gets them: split them like the detections.
	c.ingest, err = ingest.New(c.conn, ingest.Options{Store: c.store, Devices: c.registry, ShareGroup: shareGroup, ShareReports: c.db != nil,
		Registerer: c.prom, Logger: c.log, OnStored: onStored, OnJob: c.handleJob, Snapshots: snaps})
	if err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	return nil
}

// pool is the database's pool, nil without one.
func (c *Controller) pool() *pgxpool.Pool {
	if c.db == nil {
		return nil
	}
	return c.db.Pool
}

// ready is /healthz: the database answers (with one), and the detection store.
func (c *Controller) ready(ctx context.Context) error {
	if c.db != nil {
		if err := c.db.Ping(ctx); err != nil {
			return err
		}
	}
	_, err := c.store.Query(ctx, store.Query{Limit: 1})
	return err
}

// handleJob passes a job report to the rollout engine; reports of jobs no
// rollout sent are not an error.
func (c *Controller) handleJob(j api.JobStatus) {
	// The engine only records the report and pokes its loop: no I/O to bound.
	if err := c.jobs.HandleJobStatus(context.Background(), j); err != nil && !errors.Is(err, rollout.ErrNotFound) {
		c.log.Warn("job status", "device_id", j.DeviceID, "job_id", j.JobID, "err", err)
	}
}

// HTTPAddr is the address the HTTP listener is bound to.
func (c *Controller) HTTPAddr() string { return c.ln.Addr().String() }

// MQTTAddr is the embedded broker's plain MQTT address ("" with an external broker or no plain listener).
func (c *Controller) MQTTAddr() string {
	if c.broker == nil {
		return ""
	}
	return c.broker.Addr()
}

// ArtifactBase is the URL prefix devices download artifacts from.
func (c *Controller) ArtifactBase() string { return c.ota.view.ArtifactBase }

// Ready is closed once ingest has subscribed: fleetd takes detections.
//
// With a database it also waits for the live feed's listener, so that a
// replica reported ready shows every replica's detections from then on.
func (c *Controller) Ready() <-chan struct{} {
	c.readyOnce.Do(func() {
		c.readyCh = make(chan struct{})
		go func() {
			<-c.ingest.Ready()
			if c.feed != nil {
				<-c.feed.Ready()
			}
			close(c.readyCh)
		}()
	})
	return c.readyCh
}

// Run serves until ctx ends or a part fails, then stops them all and
// returns the first error (nil after ctx ends).
func (c *Controller) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	parts := newParts(g)
	if c.broker != nil {
		parts.Go("broker", func() error { return c.broker.Run(ctx) })
	}
	parts.Go("ingest", func() error { return c.ingest.Run(ctx) })
	if c.feed != nil {
		parts.Go("live feed", func() error { return c.feed.Run(ctx, c.server.Hub().Publish) })
	}
	parts.Go("registry", func() error { return c.registry.Run(ctx) })
	parts.Go("retention", func() error { return retain(ctx, c.store, c.cfg.Retention.Every, c.log) })
	parts.Go("rollouts", func() error { return c.ota.engine.Run(ctx) })
	for name, run := range c.extraParts {
		parts.Go(name, func() error { return run(ctx) })
	}
	// Requests run under base, which ends shortly after shutdown begins:
	// ordinary requests get that grace to finish, and long-lived ones (the
	// live feed's server-sent events) end instead of holding the stop up.
	base, endRequests := context.WithCancel(context.Background())
	defer endRequests()
	hs := &http.Server{Handler: c.server, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: c.cfg.HTTP.ReadTimeout,
		BaseContext:  func(net.Listener) context.Context { return base },
		WriteTimeout: c.cfg.HTTP.WriteTimeout, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(c.log.Handler(), slog.LevelWarn)}
	c.log.Info("http listening", "http_addr", c.HTTPAddr(), "console", c.cfg.httpScheme()+"://"+c.HTTPAddr()+"/", "artifact_base", c.ArtifactBase())
	parts.Go("http", func() error {
		if err := hs.Serve(c.ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("controller: http: %w", err)
		}
		return nil
	})
	parts.Go("http shutdown", func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		grace := time.AfterFunc(shutdownGrace, endRequests)
		defer grace.Stop()
		return hs.Shutdown(sctx)
	})
	select {
	case <-c.Ready():
		c.log.Info("fleetd ready")
	case <-ctx.Done():
	}
	return parts.Wait(ctx, c.stopTimeout)
}

// ErrStopTimeout is Run's error when parts of fleetd did not end within
// the stop timeout after the stop began: it names them, and Close should
// not run (they may still use what it closes).
var ErrStopTimeout = errors.New("controller: parts did not stop")

// defaultStopTimeout is how long Run waits for its parts once it stops;
// systemd's default stop timeout is 90 s.
const defaultStopTimeout = 30 * time.Second

// parts runs fleetd's parts in an errgroup and knows which still run.
type parts struct {
	g       *errgroup.Group
	mu      sync.Mutex
	running map[string]bool
}

func newParts(g *errgroup.Group) *parts { return &parts{g: g, running: map[string]bool{}} }

// Go runs f as the part name.
func (p *parts) Go(name string, f func() error) {
	p.mu.Lock()
	p.running[name] = true
	p.mu.Unlock()
	p.g.Go(func() error {
		defer func() {
			p.mu.Lock()
			delete(p.running, name)
			p.mu.Unlock()
		}()
		return f()
	})
}

// Wait returns the first part's error once every part has ended; once ctx
// ends it waits at most timeout, then gives up with ErrStopTimeout naming
// the parts still running (a stop that hangs would otherwise hold fleetd
// until it is killed, and say nothing of why).
func (p *parts) Wait(ctx context.Context, timeout time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- p.g.Wait() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
	}
	p.mu.Lock()
	names := slices.Sorted(maps.Keys(p.running))
	p.mu.Unlock()
	return fmt.Errorf("%w within %v of the stop: %s", ErrStopTimeout, timeout, strings.Join(names, ", "))
}

// Close closes every part in the reverse order of opening. It is safe to
// call more than once.
func (c *Controller) Close() error {
	var errs []error
	for i := len(c.closers) - 1; i >= 0; i-- {
		errs = append(errs, c.closers[i]())
	}
	c.closers = nil
	return errors.Join(errs...)
}

// markOffline sets every device the registry has as online to offline, and
// returns how many there were.
func markOffline(reg registry.Devices) int {
	on := true
	devs := reg.List(registry.Filter{Online: &on})
	for _, d := range devs {
		reg.UpdateState(api.State{DeviceID: d.ID}) // a bare offline state keeps the description
	}
	return len(devs)
}

func retain(ctx context.Context, st store.Store, every time.Duration, log *slog.Logger) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			n, err := st.Retain(ctx, now)
			if err != nil && ctx.Err() == nil {
				log.Error("retention", "err", err)
			} else if n > 0 {
				log.Info("retention deleted detections", "records", n)
			}
		}
	}
}

// registerStoreMetrics exports the detection store's running totals;
// stats is Bolt's or Postgres's Stats.
func registerStoreMetrics(prom *prometheus.Registry, stats func() store.Stats) {
	counter := func(name, help string, f func(store.Stats) float64) {
		prom.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return f(stats()) }))
	}
	counter("edgefleet_store_commits_total", "bbolt transactions that stored detections.", func(s store.Stats) float64 { return float64(s.Commits) })
	counter("edgefleet_store_batches_total", "Ingest calls committed (grouped into commits).", func(s store.Stats) float64 { return float64(s.Calls) })
	counter("edgefleet_store_commit_seconds_total", "Time spent committing.", func(s store.Stats) float64 { return float64(s.CommitNanos) / 1e9 })
	prom.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "edgefleet_store_records", Help: "Detections in the store."}, func() float64 { return float64(stats().Records) }))
	prom.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "edgefleet_store_record_bytes", Help: "Bytes of detections in the store."}, func() float64 { return float64(stats().RecordsBytes) }))
}

func registerRegistryMetrics(prom *prometheus.Registry, reg registry.Devices) {
	prom.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "edgefleet_devices_online", Help: "Devices whose state is online."}, func() float64 {
		_, on := reg.Counts()
		return float64(on)
	}))
	prom.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "edgefleet_devices", Help: "Devices known to the registry."}, func() float64 {
		n, _ := reg.Counts()
		return float64(n)
	}))
}
