// Command fleetd is the edgefleet fleet controller: an MQTT broker (embedded
// by default, or an external one), the device registry, the detection store
// with its ingest, the model registry and rollout engine (OTA), the REST
// API, Prometheus metrics and the web console.
//
//	fleetd --config fleetd.yaml
//
// See controller.Config for the file; --http, --mqtt and --data-dir
// override it. The parts are assembled by fleet/controller.
//
//	fleetd migrate --from DATA_DIR --to postgres://...
//
// copies a data dir's fleet into PostgreSQL (fleet/migrate).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"edgefleet/fleet/controller"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "migrate" {
		os.Exit(migrateMain(os.Args[2:]))
	}
	cfgPath := flag.String("config", "fleetd.yaml", "config file")
	httpAddr := flag.String("http", "", "override http.listen")
	mqttAddr := flag.String("mqtt", "", "override broker.listen (embedded broker)")
	dataDir := flag.String("data-dir", "", "override data_dir")
	check := flag.Bool("check-config", false, "validate the config and exit")
	flag.Parse()
	cfg, err := controller.LoadConfig(*cfgPath)
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

func run(ctx context.Context, cfg *controller.Config, log *slog.Logger) error {
	c, err := controller.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	err = c.Run(ctx)
	if cerr := c.Close(); err == nil {
		err = cerr
	}
	return err
}

func newLogger(c controller.LogConfig) *slog.Logger {
	var lvl slog.Level
	lvl.UnmarshalText([]byte(c.Level))
	o := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, o))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, o))
}
