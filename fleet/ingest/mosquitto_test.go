package ingest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"edgefleet/fleet/store"
)

// mosquitto returns the address of a mosquitto for the test: the one in
// $EDGEFLEET_MOSQUITTO (CI starts it), else one started here, else skip
// (fail under CI=true).
func mosquitto(t *testing.T) string {
	t.Helper()
	if addr := os.Getenv("EDGEFLEET_MOSQUITTO"); addr != "" {
		return addr
	}
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		for _, p := range []string{"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"} {
			if _, e := os.Stat(p); e == nil {
				bin, err = p, nil
			}
		}
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("mosquitto not found and EDGEFLEET_MOSQUITTO unset")
		}
		t.Skip("mosquitto not installed")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\n", port)), 0o600)
	cmd := exec.Command(bin, "-c", conf)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatal("mosquitto did not start")
		}
	}
}

// TestSharedSubscription runs two ingest processes' worth of ingest on an
// external mosquitto with a shared subscription: every batch is stored and
// acked, and each by exactly one of them.
func TestSharedSubscription(t *testing.T) {
	url := "tcp://" + mosquitto(t)
	ctx, cancel := context.WithCancel(context.Background())
	var stores []store.Store
	var runs []chan error
	for i := range 2 {
		p, err := Dial(ctx, DialOptions{URL: url, ClientID: fmt.Sprintf("fleetd-%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		in, st, _ := newIngest(t, p)
		in.opt.ShareGroup = "fleetd"
		done := make(chan error, 1)
		go func() { done <- in.Run(ctx) }()
		stores, runs = append(stores, st), append(runs, done)
	}
	defer func() {
		cancel()
		for _, d := range runs {
			<-d
		}
	}()
	time.Sleep(300 * time.Millisecond) // subscriptions in place

	dev, acks := device(t, url, "good")
	const n = 60
	for i := range uint64(n) {
		publish(t, dev, "edgefleet/v1/good/detections", batch("good", i+1))
	}
	got := map[uint64]int{}
	timeout := time.After(10 * time.Second)
	for len(got) < n {
		select {
		case a := <-acks:
			for _, r := range a.Ranges {
				for s := r.From; s <= r.To; s++ {
					got[s]++
				}
			}
		case <-timeout:
			t.Fatalf("acked %d of %d", len(got), n)
		}
	}
	time.Sleep(200 * time.Millisecond) // no second ack arrives
	per := make([]int, len(stores))
	seen := map[uint64]int{}
	for i, st := range stores {
		p, err := st.Query(context.Background(), store.Query{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		per[i] = len(p.Records)
		for _, r := range p.Records {
			seen[r.Seq]++
		}
	}
	t.Logf("split between the two: %v", per)
	if len(seen) != n {
		t.Fatalf("stored %d distinct seqs, want %d", len(seen), n)
	}
	for s, c := range seen {
		if c != 1 || got[s] != 1 {
			t.Fatalf("seq %d stored %d times, acked %d times", s, c, got[s])
		}
	}
	if per[0] == 0 || per[1] == 0 {
		t.Errorf("one subscriber got everything: %v", per)
	}
}
