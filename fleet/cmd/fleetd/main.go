// Command fleetd is the edgefleet fleet controller: an MQTT broker (embedded
// by default, or an external one), the device registry, the detection store
// with its ingest, the model registry and rollout engine (OTA), the REST
// API, Prometheus metrics and the web console.
//
//	fleetd --config fleetd.yaml
//
// See controller.Config for the file; --http, --mqtt, --data-dir and
// --database override it. The parts are assembled by fleet/controller.
// Subcommands (fleetd version, fleetd migrate, ...) register in commands;
// the grammar (help, exit statuses 0/1/2) is edgefleet/internal/cli's.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"

	"edgefleet/fleet/controller"
	"edgefleet/internal/cli"
)

// command is a subcommand of fleetd; each registers itself from its own
// file. Its run parses its flags with cli.Parse or cli.ParseN first.
type command struct {
	summary string
	args    string // the arguments in the usage line, e.g. "--from DATA_DIR --to URL"
	long    string // the help text, when more than the summary
	run     func(ctx context.Context, args []string) error
}

var commands = map[string]command{}

const defaultConfig = "fleetd.yaml"

func main() {
	program().Main()
}

// program is fleetd's command tree: fleetd itself serves; --config is global.
func program() *cli.Program {
	p := &cli.Program{
		Name:     "fleetd",
		Summary:  "fleetd is the edgefleet fleet controller: broker, registry, detection store, OTA, REST API and console.",
		Globals:  func(fs *flag.FlagSet) { fs.String("config", defaultConfig, "config `file`") },
		Commands: []cli.Command{{Name: "", Summary: "run the fleet controller", Run: serve}},
	}
	for name, c := range commands {
		p.Commands = append(p.Commands, cli.Command{Name: name, Args: c.args, Summary: c.summary, Long: c.long, Run: c.run})
	}
	return p
}

// serve is fleetd without a command: load the config and run until SIGINT
// or SIGTERM.
func serve(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("fleetd", flag.ContinueOnError)
	cfgPath := fs.String("config", defaultConfig, "config `file`")
	httpAddr := fs.String("http", "", "override http.listen")
	mqttAddr := fs.String("mqtt", "", "override broker.listen (embedded broker)")
	dataDir := fs.String("data-dir", "", "override data_dir")
	dbURL := fs.String("database", "", "override database.url (postgres://...)")
	check := fs.Bool("check-config", false, "validate the config and exit")
	if _, err := cli.ParseN(fs, args, 0); err != nil {
		return err
	}
	cfg, err := controller.LoadConfig(*cfgPath)
	if err == nil && (*httpAddr != "" || *mqttAddr != "" || *dataDir != "" || *dbURL != "") {
		if *httpAddr != "" {
			cfg.HTTP.Listen = *httpAddr
		}
		if *mqttAddr != "" {
			cfg.Broker.Listen = *mqttAddr
		}
		if *dataDir != "" {
			cfg.DataDir = *dataDir
		}
		if *dbURL != "" {
			cfg.Database.URL = *dbURL
		}
		err = cfg.Validate()
	}
	if err != nil {
		return err
	}
	if *check {
		fmt.Println("config ok")
		return nil
	}
	log := newLogger(cfg.Log)
	slog.SetDefault(log)
	if os.Getenv("GOGC") == "" {
		// Ingest allocates many short-lived buffers; trade some memory for less GC CPU.
		debug.SetGCPercent(400)
	}
	if err := run(ctx, cfg, log); err != nil {
		log.Error("fleetd stopped", "err", err)
		return cli.Exit(1) // logged: in the log's format
	}
	log.Info("fleetd stopped")
	return nil
}

func run(ctx context.Context, cfg *controller.Config, log *slog.Logger) error {
	c, err := controller.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	err = c.Run(ctx)
	if errors.Is(err, controller.ErrStopTimeout) {
		// What is stuck may still use what Close closes; every detection
		// acked is already on disk, and the process exits now.
		return err
	}
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
