package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"edgefleet/agent/config"
	"edgefleet/agent/runtime"
	"edgefleet/firmware/slot"
	"edgefleet/internal/cli"
)

func init() {
	commands["run"] = command{summary: "run the agent from a config file", args: "--config PATH", long: runLong, run: runAgent}
}

const runLong = `Runs the agent: cameras, detector, spool and the link to the fleet, as the
config file says. Stops cleanly on SIGINT or SIGTERM. Under edge-launcher it
also takes firmware_update commands; after installing one it closes the
spool and exits with status 75 so that the launcher starts the new version.`

func runAgent(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "`path` of the agent's YAML config (required)")
	listen := fs.String("listen", "", "override http.listen (host:port, or off)")
	if _, err := cli.ParseN(fs, args, 0); err != nil {
		return err
	}
	if *cfgPath == "" {
		return cli.Usagef("--config is required")
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
	if errors.Is(err, runtime.ErrRestart) {
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

// runConfig builds the agent from cfg and runs it until ctx is done.
func runConfig(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	rt, err := runtime.Open(ctx, cfg, log)
	if err != nil {
		return err
	}
	return rt.Run(ctx)
}
