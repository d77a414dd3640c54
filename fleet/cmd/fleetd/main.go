// Command fleetd is the edgefleet fleet controller: an MQTT broker (embedded
// by default, or an external one), the device registry, the detection store
// with its ingest, the model registry and rollout engine (OTA), the REST
// API, Prometheus metrics and the web console.
//
//	fleetd --config fleetd.yaml
//
// See Config for the file; --http, --mqtt and --data-dir override it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"edgefleet/fleet/api"
	"edgefleet/fleet/broker"
	"edgefleet/fleet/ingest"
	"edgefleet/fleet/registry"
	"edgefleet/fleet/rollout"
	"edgefleet/fleet/server"
	"edgefleet/fleet/store"
)

func main() {
	cfgPath := flag.String("config", "fleetd.yaml", "config file")
	httpAddr := flag.String("http", "", "override http.listen")
	mqttAddr := flag.String("mqtt", "", "override broker.listen (embedded broker)")
	dataDir := flag.String("data-dir", "", "override data_dir")
	check := flag.Bool("check-config", false, "validate the config and exit")
	flag.Parse()
	cfg, err := LoadConfig(*cfgPath)
	if err == nil && (*httpAddr != "" || *mqttAddr != "" || *dataDir != "") {
		if *httpAddr != "" {
			cfg.HTTP.Listen = *httpAddr
		}
		if *mqttAddr != "" {
			cfg.Broker.Listen = *mqttAddr
		}
		if *dataDir != "" {
			cfg.DataDir = *dataDir
		}
		err = cfg.Validate()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleetd:", err)
		os.Exit(2)
	}
	if *check {
		fmt.Println("config ok")
		return
	}
	log := newLogger(cfg.Log)
	slog.SetDefault(log)
	if os.Getenv("GOGC") == "" {
		// Ingest allocates many short-lived buffers; trade some memory for less GC CPU.
		debug.SetGCPercent(400)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, log); err != nil {
		log.Error("fleetd stopped", "err", err)
		os.Exit(1)
	}
	log.Info("fleetd stopped")
}

func newLogger(c LogConfig) *slog.Logger {
	var lvl slog.Level
	lvl.UnmarshalText([]byte(c.Level))
	o := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, o))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, o))
}

// run wires fleetd together and serves until ctx ends.
func run(ctx context.Context, cfg *Config, log *slog.Logger) error {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	prom := prometheus.NewRegistry()
	prom.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	st, err := store.OpenBolt(filepath.Join(cfg.DataDir, "detections.db"), store.BoltOptions{Retention: store.Retention{
		MaxAge: cfg.Retention.MaxAge, MaxEvents: cfg.Retention.MaxEvents, MaxBytes: cfg.Retention.MaxBytes,
	}})
	if err != nil {
		return err
	}
	defer st.Close()
	registerStoreMetrics(prom, st)
	reg, err := registry.Open(filepath.Join(cfg.DataDir, "registry.db"), registry.Options{
		StaleAfter: cfg.Health.StaleAfter, MaxDropRate: cfg.Health.MaxDropRate,
		MaxSpoolDepth: cfg.Health.MaxSpoolDepth, MaxSpoolAge: cfg.Health.MaxSpoolAge,
	})
	if err != nil {
		return err
	}
	defer reg.Close()
	prom.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "edgefleet_devices_online", Help: "Devices whose state is online."}, func() float64 {
		_, on := reg.Counts()
		return float64(on)
	}))
	prom.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "edgefleet_devices", Help: "Devices known to the registry."}, func() float64 {
		n, _ := reg.Counts()
		return float64(n)
	}))

	tokens := map[string]string{}
	for _, o := range cfg.Operators {
		tokens[o.token()] = o.Name
	}

	g, ctx := errgroup.WithContext(ctx)
	var conn ingest.Conn
	shareGroup := ""
	// auth checks device credentials: the embedded broker's logins, and the
	// artifact downloads in both modes.
	auth := broker.NewStaticAuth()
	for _, d := range cfg.Devices {
		if err := auth.SetDevice(d.ID, d.Password); err != nil {
			return fmt.Errorf("devices: %w", err)
		}
	}
	if cfg.Broker.URL == "" {
		// No device is connected to a broker that has not started yet: the
		// online flags kept from the last run are stale (after a crash, no
		// last will was sent). Devices say they are online again when they
		// reconnect; until then the rollout engine keeps their jobs.
		if n := markOffline(reg); n > 0 {
			log.Info("devices marked offline until they reconnect", "devices", n)
		}
		for _, s := range cfg.Services {
			if err := auth.SetService(s.User, s.Password); err != nil {
				return fmt.Errorf("services: %w", err)
			}
		}
		bo := broker.Options{Addr: cfg.Broker.Listen, TLSAddr: cfg.Broker.TLSListen, Auth: auth, Registerer: prom, Logger: log}
		if cfg.Broker.TLSListen != "" {
			if bo.TLS, err = broker.LoadTLS(cfg.Broker.TLSCert, cfg.Broker.TLSKey, cfg.Broker.TLSClientCA); err != nil {
				return err
			}
		}
		b, err := broker.New(bo)
		if err != nil {
			return err
		}
		defer b.Close()
		log.Info("broker listening", "mqtt_addr", b.Addr(), "mqtts_addr", b.TLSAddr(), "devices", len(cfg.Devices))
		g.Go(func() error { return b.Run(ctx) })
		conn = ingest.Embedded(b)
	} else {
		p, err := ingest.Dial(ctx, ingest.DialOptions{URL: cfg.Broker.URL, ClientID: cfg.Broker.ClientID, Username: cfg.Broker.Username, Password: cfg.Broker.Password})
		if err != nil {
			return err
		}
		defer p.Close()
		log.Info("connected to external broker", "url", cfg.Broker.URL, "share_group", cfg.Broker.ShareGroup)
		conn, shareGroup = p, cfg.Broker.ShareGroup
	}

	// Listen before OTA opens: the default artifact URL names the bound port.
	ln, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("http listen: %w", err)
	}
	defer ln.Close()
	ota, closeOTA, err := server.OpenOTA(server.OTAConfig{Dir: filepath.Join(cfg.DataDir, "ota"), SigningKey: cfg.OTA.SigningKey,
		PublicKeys: cfg.OTA.PublicKeys, ArtifactBase: cfg.artifactBase(ln.Addr().String()), MaxUpload: cfg.OTA.MaxUpload,
		HealthWindow: cfg.OTA.HealthWindow, JobTimeout: cfg.OTA.JobTimeout}, reg, conn, auth, prom, log)
	if err != nil {
		return err
	}
	defer closeOTA()

	srv, err := server.New(server.Options{Store: st, Registry: reg, Tokens: tokens, Gatherer: prom, Registerer: prom, Logger: log, OTA: ota,
		Ready: func(ctx context.Context) error {
			_, err := st.Query(ctx, store.Query{Limit: 1})
			return err
		}})
	if err != nil {
		return err
	}
	in, err := ingest.New(conn, ingest.Options{Store: st, Devices: reg, ShareGroup: shareGroup, Registerer: prom, Logger: log,
		OnStored: srv.Hub().Publish,
		OnJob: func(j api.JobStatus) {
			if err := ota.Rollouts.HandleJobStatus(ctx, j); err != nil && !errors.Is(err, rollout.ErrNotFound) {
				log.Warn("job status", "device_id", j.DeviceID, "job_id", j.JobID, "err", err)
			}
		}})
	if err != nil {
		return err
	}
	g.Go(func() error { return in.Run(ctx) })
	g.Go(func() error { return reg.Run(ctx) })
	g.Go(func() error { return retain(ctx, st, cfg.Retention.Every, log) })
	g.Go(func() error { return ota.Rollouts.Run(ctx) })
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: cfg.HTTP.ReadTimeout,
		WriteTimeout: cfg.HTTP.WriteTimeout, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	log.Info("http listening", "http_addr", ln.Addr().String(), "console", "http://"+ln.Addr().String()+"/", "artifact_base", ota.ArtifactBase)
	g.Go(func() error {
		if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return hs.Shutdown(sctx)
	})
	select {
	case <-in.Ready():
		log.Info("fleetd ready")
	case <-ctx.Done():
	}
	return g.Wait()
}

// markOffline sets every device the registry has as online to offline, and
// returns how many there were.
func markOffline(reg *registry.Registry) int {
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

func registerStoreMetrics(prom *prometheus.Registry, st *store.Bolt) {
	counter := func(name, help string, f func(store.Stats) float64) {
		prom.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return f(st.Stats()) }))
	}
	counter("edgefleet_store_commits_total", "bbolt transactions that stored detections.", func(s store.Stats) float64 { return float64(s.Commits) })
	counter("edgefleet_store_batches_total", "Ingest calls committed (grouped into commits).", func(s store.Stats) float64 { return float64(s.Calls) })
	counter("edgefleet_store_commit_seconds_total", "Time spent committing.", func(s store.Stats) float64 { return float64(s.CommitNanos) / 1e9 })
	prom.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "edgefleet_store_records", Help: "Detections in the store."}, func() float64 { return float64(st.Stats().Records) }))
	prom.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "edgefleet_store_record_bytes", Help: "Bytes of detections in the store."}, func() float64 { return float64(st.Stats().RecordsBytes) }))
}
