package sim

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"edgefleet/fleet/broker"
	"edgefleet/fleet/broker/brokertest"
	"edgefleet/fleet/ingest"
	"edgefleet/fleet/registry"
	"edgefleet/fleet/store"
)

// fleet is an in-process fleetd core: embedded broker, bbolt store, registry, ingest.
type fleet struct {
	url   string
	store *store.Bolt
	reg   *registry.Registry
}

func startFleet(t testing.TB, devices int, prefix string) *fleet {
	t.Helper()
	auth := broker.NewStaticAuth()
	for i := range devices {
		id := fmt.Sprintf("%s%d", prefix, i)
		if err := auth.SetDevice(id, "pw-"+id); err != nil {
			t.Fatal(err)
		}
	}
	b := brokertest.Start(t, broker.Options{Addr: "127.0.0.1:0", Auth: auth, Logger: slog.New(slog.DiscardHandler)})
	dir := t.TempDir()
	st, err := store.OpenBolt(filepath.Join(dir, "det.db"), store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.Open(filepath.Join(dir, "reg.db"), registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	in, err := ingest.New(ingest.Embedded(b), ingest.Options{Store: st, Devices: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		st.Close()
		reg.Close()
	})
	time.Sleep(50 * time.Millisecond) // subscriptions in place
	return &fleet{url: "tcp://" + b.Addr(), store: st, reg: reg}
}

func login(d string) (string, string) { return d, "pw-" + d }

func TestRun(t *testing.T) {
	f := startFleet(t, 20, "sim-")
	rep, err := Run(context.Background(), Options{Broker: f.url, Devices: 20, Rate: 5, Duration: 2 * time.Second, Login: login, TelemetryEvery: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(rep)
	if !rep.OK(time.Second) || rep.Connected != 20 || rep.Batches < 20*8 {
		t.Fatalf("report not OK: %v", rep)
	}
	if st := f.store.Stats(); int64(st.Stored) != rep.Events {
		t.Fatalf("stored %d events, sim sent %d", st.Stored, rep.Events)
	}
	on := true
	devs := f.reg.List(registry.Filter{Online: &on})
	if len(devs) != 20 || devs[0].Labels["site"] == "" || devs[0].Telemetry == nil {
		t.Fatalf("registry has %d online devices: %+v", len(devs), devs)
	}
}

func TestRunBadLogin(t *testing.T) {
	f := startFleet(t, 2, "sim-")
	rep, err := Run(context.Background(), Options{Broker: f.url, Devices: 2, Duration: time.Second,
		Login: func(d string) (string, string) { return d, "wrong" }})
	if err == nil || rep.ConnectErrors != 2 || rep.OK(time.Second) {
		t.Fatalf("wrong password: %v, %v", rep, err)
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkFleet finds how many simulated devices (telemetry every 10 s,
// one detection batch of 3 events per second) the embedded fleetd core
// sustains with no loss and p99 ingest-to-ack under 1 s. The simulator runs
// in the same process and shares the CPU. Steps go up to
// EDGEFLEET_BENCH_MAX_DEVICES (default 5000), EDGEFLEET_BENCH_SECONDS each
// (default 10).
func BenchmarkFleet(b *testing.B) {
	maxDev := envInt("EDGEFLEET_BENCH_MAX_DEVICES", 5000)
	secs := envInt("EDGEFLEET_BENCH_SECONDS", 10)
	steps := []int{}
	for _, n := range []int{1000, 2500, 5000, 7500, 10000, 15000, 20000} {
		if n <= maxDev {
			steps = append(steps, n)
		}
	}
	if len(steps) == 0 || steps[len(steps)-1] != maxDev {
		steps = append(steps, maxDev)
	}
	for range b.N {
		sustained, p99, p50, rate := 0, time.Duration(0), time.Duration(0), 0.0
		for _, n := range steps {
			f := startFleet(b, n, "sim-")
			rep, err := Run(context.Background(), Options{Broker: f.url, Devices: n, Duration: time.Duration(secs) * time.Second,
				Login: login, ConnectRate: 2000})
			if err != nil {
				b.Logf("%d devices: %v", n, err)
				break
			}
			st := f.store.Stats()
			b.Logf("%d devices: %v; store: %d commits, %d batches, %.1f ms/commit, %.1f pages/commit, write %.1f ms/commit, spill %.1f ms/commit", n, rep, st.Commits, st.Calls, float64(st.CommitNanos)/1e6/float64(max(st.Commits, 1)), float64(st.PageWrites)/float64(max(st.Commits, 1)),
				float64(st.WriteNanos)/1e6/float64(max(st.Commits, 1)), float64(st.SpillNanos)/1e6/float64(max(st.Commits, 1)))
			if !rep.OK(time.Second) {
				break
			}
			sustained, p99, p50, rate = n, rep.AckP99, rep.AckP50, rep.BatchesPerSec
		}
		b.ReportMetric(float64(sustained), "devices")
		b.ReportMetric(float64(p99.Microseconds())/1000, "p99_ms")
		b.ReportMetric(float64(p50.Microseconds())/1000, "ms/op")
		b.ReportMetric(rate, "batches/s")
	}
}
