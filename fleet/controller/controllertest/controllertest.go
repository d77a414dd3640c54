// Package controllertest runs fleetd in a test: the whole controller in
// the test's process on 127.0.0.1:0, with a typed REST client logged in as
// an operator, and the waits tests need on a running fleet (devices
// online, a rollout reaching a state).
package controllertest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"edgefleet/fleet/api/rest"
	"edgefleet/fleet/client"
	"edgefleet/fleet/controller"
	"edgefleet/fleet/sim"
	"edgefleet/internal/testutil"
)

// Token is the operator token of every fleetd Start runs.
const Token = "operator-token-0123456789"

// Fleetd is a running fleetd.
type Fleetd struct {
	C *controller.Controller
	// API is a REST client logged in as operator "test".
	API *client.Client
	// MQTT and HTTP are the bound addresses (host:port).
	MQTT, HTTP string
	// Dir is the data dir.
	Dir string
}

// Start runs fleetd with its embedded broker on 127.0.0.1:0, a data dir
// in t.TempDir and an operator with Token, plus the config keys in extra
// (YAML). It stops when the test ends.
func Start(t testing.TB, extra string) *Fleetd {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	cfg, err := controller.ParseConfig(strings.NewReader(fmt.Sprintf(`
data_dir: %s
http: {listen: "127.0.0.1:0"}
broker: {listen: "127.0.0.1:0"}
operators: [{name: test, token: %s}]
`, dir, Token) + extra))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c, err := controller.New(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("fleetd: close: %v", err)
		}
	})
	testutil.Serve(t, "fleetd", c.Run, c.Ready())
	return &Fleetd{C: c, API: Client(t, c.HTTPAddr()), MQTT: c.MQTTAddr(), HTTP: c.HTTPAddr(), Dir: dir}
}

// Client returns a REST client of the fleetd at httpAddr, logged in with Token.
func Client(t testing.TB, httpAddr string) *client.Client {
	t.Helper()
	c, err := client.New("http://"+httpAddr, Token, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// PushModel uploads model bytes as name@version.
func PushModel(t testing.TB, c *client.Client, name, version string, model []byte) rest.Model {
	t.Helper()
	m, err := c.Push(context.Background(), rest.KindModel, rest.Upload{Name: name, Version: version}, "model.tflite", bytes.NewReader(model))
	if err != nil {
		t.Fatalf("push %s@%s: %v", name, version, err)
	}
	return m
}

// CreateRollout starts a rollout.
func CreateRollout(t testing.TB, c *client.Client, req rest.CreateRollout) rest.RolloutSummary {
	t.Helper()
	s, err := c.CreateRollout(context.Background(), req)
	if err != nil {
		t.Fatalf("create rollout: %v", err)
	}
	return s
}

// WaitRollout waits until done says so of the rollout id, at most limit.
func WaitRollout(t testing.TB, c *client.Client, id string, limit time.Duration, done func(rest.Rollout) bool) rest.Rollout {
	t.Helper()
	var v rest.Rollout
	ok := false
	deadline := time.Now().Add(limit)
	testutil.WaitFor(t, "rollout "+id, limit+time.Second, func() bool {
		var err error
		if v, err = c.Rollout(context.Background(), id); err != nil {
			t.Fatalf("show %s: %v", id, err)
		}
		ok = done(v)
		return ok || time.Now().After(deadline)
	})
	if !ok {
		for _, j := range v.Jobs {
			if j.State != "pending" && j.State != "succeeded" && j.State != "failed" || j.Rollback != "" && j.Rollback != "succeeded" {
				t.Logf("job %+v", j)
			}
		}
		t.Fatalf("rollout %s after %v: %s %q, progress %+v", id, limit, v.State, v.Reason, v.Progress)
	}
	return v
}

// WaitOnline waits until fleetd's registry has n online devices.
func WaitOnline(t testing.TB, c *client.Client, n int) {
	t.Helper()
	var f rest.Fleet
	testutil.WaitFor(t, fmt.Sprintf("%d devices online", n), 30*time.Second, func() bool {
		var err error
		if f, err = c.Fleet(context.Background()); err != nil {
			t.Fatal(err)
		}
		return f.Online == n
	})
}

// Final reports whether a rollout state is final.
func Final(state string) bool {
	return state == rest.StateAborted || state == rest.StateCompleted || state == rest.StateRolledBack
}

// DeviceVersions maps each device to the model version it reports.
func DeviceVersions(t testing.TB, c *client.Client) map[string]string {
	t.Helper()
	devs, err := c.Devices(context.Background(), rest.DeviceFilter{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, d := range devs {
		out[d.ID] = d.ModelVersion
	}
	return out
}

// StartSim runs n simulated devices against fleetd until the returned
// stop is called, which returns the simulator's report.
func StartSim(t testing.TB, mqtt string, n int, failRate float64) (stop func() sim.Report) {
	t.Helper()
	return StartSimWith(t, sim.Options{Broker: "tcp://" + mqtt, Devices: n, FailRate: failRate})
}

// StartSimWith runs the simulator with o (Broker and Devices set) as
// StartSim does: a few detections, quick update steps, the service login.
func StartSimWith(t testing.TB, o sim.Options) (stop func() sim.Report) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	connected := make(chan int, 1)
	done := make(chan sim.Report, 1)
	o.Rate, o.TelemetryEvery, o.Duration, o.ConnectRate = 0.001, time.Minute, 10*time.Minute, 2000
	o.UpdateStep, o.MaxHealthWindow = 5*time.Millisecond, time.Second
	o.Login = func(string) (string, string) { return "sim", "sim-password" }
	o.OnConnected = func(c int) { connected <- c }
	go func() {
		rep, err := sim.Run(ctx, o)
		if err != nil {
			t.Errorf("sim: %v", err)
		}
		done <- rep
	}()
	select {
	case c := <-connected:
		if c != o.Devices {
			cancel()
			t.Fatalf("%d of %d simulated devices connected", c, o.Devices)
		}
	case rep := <-done:
		t.Fatalf("sim ended: %v", rep)
	}
	var once sync.Once
	var rep sim.Report
	stop = func() sim.Report {
		once.Do(func() { cancel(); rep = <-done })
		return rep
	}
	t.Cleanup(func() { stop() })
	return stop
}
