package main

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"edgefleet/fleet/broker"
	"edgefleet/fleet/broker/brokertest"
	"edgefleet/fleet/ingest"
	"edgefleet/fleet/registry"
	"edgefleet/fleet/store"
)

func TestSimCommand(t *testing.T) {
	auth := broker.NewStaticAuth()
	auth.SetService("sim", "sim-password")
	b := brokertest.Start(t, broker.Options{Addr: "127.0.0.1:0", Auth: auth, Logger: slog.New(slog.DiscardHandler)})
	st := store.NewMem(store.Retention{})
	reg, err := registry.Open(filepath.Join(t.TempDir(), "reg.db"), registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	in, err := ingest.New(ingest.Embedded(b), ingest.Options{Store: st, Devices: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-in.Ready()

	code, out, errOut := fleetctl(t, "sim", "--mqtt", "tcp://"+b.Addr(), "--devices", "3", "--rate", "5", "--duration", "1s",
		"--service-user", "sim", "--service-password", "sim-password")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"3 connected, 0 failed", "lost        0 batches", "ack latency p50"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if n := len(reg.List(registry.Filter{})); n != 3 {
		t.Errorf("registry has %d devices, want 3", n)
	}
	// A fail rate outside [0, 1] is a usage error.
	if code, _, errOut := fleetctl(t, "sim", "--mqtt", "tcp://"+b.Addr(), "--fail-rate", "1.5"); code != 2 || !strings.Contains(errOut, "--fail-rate") {
		t.Errorf("--fail-rate 1.5: exit %d: %s", code, errOut)
	}
	for _, bad := range [][]string{{"--shadow-agreement", "0"}, {"--shadow-agreement", "1.2"}, {"--shadow-spread", "-0.1"}} {
		if code, _, errOut := fleetctl(t, append([]string{"sim", "--mqtt", "tcp://" + b.Addr()}, bad...)...); code != 2 || !strings.Contains(errOut, "--shadow-agreement must be in (0, 1]") {
			t.Errorf("%v: exit %d: %s", bad, code, errOut)
		}
	}
	// Wrong credentials: a clear failure, exit 1.
	code, _, errOut = fleetctl(t, "sim", "--mqtt", "tcp://"+b.Addr(), "--devices", "1", "--duration", "1s", "--device-password", "nope")
	if code != 1 || !strings.Contains(errOut, "no device connected") {
		t.Fatalf("bad login: exit %d: %s", code, errOut)
	}
}
