package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"edgefleet/fleet/client"
	"edgefleet/fleet/sim"
)

func init() {
	commands["sim"] = command{"run N virtual agents over MQTT against fleetd", runSim}
}

func runSim(ctx context.Context, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	broker := fs.String("mqtt", "tcp://127.0.0.1:1883", "fleetd's MQTT broker URL")
	devices := fs.Int("devices", 10, "virtual agents")
	rate := fs.Float64("rate", 1, "detection batches per second per device")
	events := fs.Int("events", 3, "events per batch")
	tele := fs.Duration("telemetry", 10*time.Second, "telemetry period")
	dur := fs.Duration("duration", 30*time.Second, "how long to send")
	prefix := fs.String("prefix", "sim-", "device id prefix (ids are <prefix><n>)")
	password := fs.String("device-password", "", "password of every virtual device (username = device id); env EDGEFLEET_SIM_PASSWORD")
	user := fs.String("service-user", "", "log in as this MQTT service user instead of as each device")
	servicePass := fs.String("service-password", "", "the service user's password")
	connectRate := fs.Int("connect-rate", 500, "new connections per second")
	failRate := fs.Float64("fail-rate", 0, "fraction of devices whose updates fail at the health check (they keep the new version until rolled back)")
	updateStep := fs.Duration("update-step", 200*time.Millisecond, "time between two states of an update job")
	healthCap := fs.Duration("max-health-window", 10*time.Second, "cap on the health window a rollout asks for")
	shadowAgree := fs.Float64("shadow-agreement", 0.95, "agreement (0..1) the devices report in a rollout's shadow phase")
	shadowSpread := fs.Float64("shadow-spread", 0, "lower each device's shadow agreement by up to this much (the same devices each run)")
	shadowCap := fs.Duration("max-shadow", 10*time.Second, "cap on the shadow phase a rollout asks for")
	cleanup := fs.Bool("cleanup", false, "at the end, decommission the simulated devices through fleetd's REST API (--server, --token)")
	purge := fs.Bool("purge", false, "with --cleanup, delete their detections too")
	var cf clientFlags
	cf.register(fs)
	jsonOut := &cf.json
	if _, err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	if *devices < 1 || *rate <= 0 || *events < 1 {
		return fmt.Errorf("%w: --devices, --rate and --events must be positive", errUsage)
	}
	if !(*failRate >= 0 && *failRate <= 1) {
		return fmt.Errorf("%w: --fail-rate must be in [0, 1]", errUsage)
	}
	if !(*shadowAgree > 0 && *shadowAgree <= 1) || !(*shadowSpread >= 0 && *shadowSpread <= 1) {
		return fmt.Errorf("%w: --shadow-agreement must be in (0, 1] and --shadow-spread in [0, 1]", errUsage)
	}
	pw := first(*password, os.Getenv("EDGEFLEET_SIM_PASSWORD"))
	login := func(d string) (string, string) { return d, pw }
	if *user != "" {
		login = func(string) (string, string) { return *user, *servicePass }
	}
	fmt.Fprintf(os.Stderr, "sim: %d devices, %.2g batch/s each, %d events per batch, telemetry every %v, for %v against %s\n",
		*devices, *rate, *events, *tele, *dur, *broker)
	rep, err := sim.Run(ctx, sim.Options{Broker: *broker, Devices: *devices, Prefix: *prefix, Rate: *rate, Events: *events,
		TelemetryEvery: *tele, Duration: *dur, Login: login, ConnectRate: *connectRate, FailRate: *failRate, UpdateStep: *updateStep, MaxHealthWindow: *healthCap,
		ShadowAgreement: *shadowAgree, ShadowSpread: *shadowSpread, MaxShadow: *shadowCap})
	if *jsonOut {
		printJSON(w, rep)
	} else {
		fmt.Fprintf(w, "devices     %d connected, %d failed (connect took %v)\n", rep.Connected, rep.ConnectErrors, rep.ConnectElapsed.Round(time.Millisecond))
		fmt.Fprintf(w, "sent        %d batches, %d events, %d telemetry in %v (%.0f batches/s)\n", rep.Batches, rep.Events, rep.Telemetry, rep.Elapsed.Round(time.Millisecond), rep.BatchesPerSec)
		fmt.Fprintf(w, "acked       %d batches\n", rep.Acked)
		fmt.Fprintf(w, "lost        %d batches (publish errors %d)\n", rep.Lost, rep.PublishErrors)
		fmt.Fprintf(w, "ack latency p50 %v  p99 %v  max %v\n", rep.AckP50.Round(time.Microsecond), rep.AckP99.Round(time.Microsecond), rep.AckMax.Round(time.Microsecond))
		if rep.OTA.Commands > 0 {
			fmt.Fprintf(w, "updates     %d commands: %d succeeded, %d failed, %d rolled back\n", rep.OTA.Commands, rep.OTA.Succeeded, rep.OTA.Failed, rep.OTA.Rollbacks)
			if rep.OTA.ShadowPassed+rep.OTA.ShadowFailed > 0 {
				fmt.Fprintf(w, "shadow      %d passed, %d failed\n", rep.OTA.ShadowPassed, rep.OTA.ShadowFailed)
			}
		}
	}
	if *cleanup {
		if cerr := simCleanup(context.WithoutCancel(ctx), &cf, *prefix, *devices, *purge, w); cerr != nil && err == nil {
			err = cerr
		}
	}
	if err != nil {
		return err
	}
	if !rep.OK(time.Second) {
		return fmt.Errorf("sim: not sustained: lost %d, p99 %v", rep.Lost, rep.AckP99.Round(time.Millisecond))
	}
	return nil
}

// simCleanup decommissions the devices <prefix>0..n-1 through the REST API.
func simCleanup(ctx context.Context, cf *clientFlags, prefix string, n int, purge bool, w io.Writer) error {
	c, err := cf.newClient()
	if err != nil {
		return fmt.Errorf("sim: cleanup: %w", err)
	}
	deleted, purged := 0, 0
	for i := range n {
		d, err := c.DeleteDevice(ctx, fmt.Sprintf("%s%d", prefix, i), purge)
		var ce *client.Error
		switch {
		case errors.As(err, &ce) && ce.Status == http.StatusNotFound: // never connected, or deleted already
		case err != nil:
			return fmt.Errorf("sim: cleanup: %w (%d of %d deleted)", err, deleted, n)
		default:
			deleted++
			purged += d.Purged
		}
	}
	fmt.Fprintf(w, "cleanup     %d devices decommissioned, %d detections purged\n", deleted, purged)
	return nil
}
