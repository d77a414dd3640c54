package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"edgefleet/fleet/api"
	"edgefleet/fleet/registry"
	"edgefleet/fleet/store"
	"edgefleet/internal/testutil"
)

// mosquitto returns the address of a mosquitto for the test: the one in
// $EDGEFLEET_MOSQUITTO (CI starts it), else one started here, else skip
// (fail under CI=true).
func mosquitto(t *testing.T) string {
	t.Helper()
	if os.Getenv("EDGEFLEET_MOSQUITTO") != "" {
		return testutil.Mosquitto(t)
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
		testutil.Need(t, "mosquitto not installed and EDGEFLEET_MOSQUITTO unset")
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
	testutil.WaitFor(t, "mosquitto listening", 5*time.Second, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return addr
}

// TestSharedSubscription runs two ingest processes' worth of ingest on an
// external mosquitto with a shared subscription: every batch is stored and
// acked, and each by exactly one of them.
func TestSharedSubscription(t *testing.T) {
	url := "tcp://" + mosquitto(t)
	ctx, cancel := context.WithCancel(context.Background())
	var stores []store.Store
	var runs []chan error
	var ins []*Ingest
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
		stores, runs, ins = append(stores, st), append(runs, done), append(ins, in)
	}
	defer func() {
		cancel()
		for _, d := range runs {
			<-d
		}
	}()
	for _, in := range ins {
		<-in.Ready() // subscribed
	}

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
	// A copy of a batch delivered to both would reach its second
	// subscriber before any later message: publish markers until each
	// store has one, and every earlier copy has been stored.
	marker := uint64(n)
	testutil.Eventually(t, "a marker batch stored by each subscriber", func() bool {
		marker++
		publish(t, dev, "edgefleet/v1/good/detections", batch("good", marker))
		for _, st := range stores {
			p, err := st.Query(context.Background(), store.Query{Limit: 1000})
			if err != nil || !slices.ContainsFunc(p.Records, func(r store.Record) bool { return r.Seq > n }) {
				return false
			}
		}
		return true
	})
	per := make([]int, len(stores))
	seen := map[uint64]int{}
	for i, st := range stores {
		p, err := st.Query(context.Background(), store.Query{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range p.Records {
			if r.Seq <= n {
				seen[r.Seq]++
				per[i]++
			}
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

// TestSharedReports: with ShareReports, telemetry, job reports and live
// states each reach exactly one of two replicas on mosquitto, while the
// retained state a device left before either started reaches both.
func TestSharedReports(t *testing.T) {
	url := "tcp://" + mosquitto(t)
	ctx, cancel := context.WithCancel(context.Background())
	// A device that said it was online before any replica ran.
	early, _ := device(t, url, "early")
	st, _ := json.Marshal(api.State{DeviceID: "early", Online: true, Time: time.Now().UnixMilli(), Labels: map[string]string{"site": "s1"}})
	if tok := early.Publish(api.StateTopic("early"), 1, true, st); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish retained state: %v", tok.Error())
	}
	t.Cleanup(func() { early.Publish(api.StateTopic("early"), 1, true, nil).WaitTimeout(5 * time.Second) })

	var ins []*Ingest
	var regs []*registry.Registry
	var conns []*Paho
	var runs []chan error
	for i := range 2 {
		p, err := Dial(ctx, DialOptions{URL: url, ClientID: fmt.Sprintf("fleetd-r%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		in, _, reg := newIngest(t, p)
		in.opt.ShareGroup, in.opt.ShareReports, in.opt.StateCatchUp = "fleetd", true, 300*time.Millisecond
		done := make(chan error, 1)
		go func() { done <- in.Run(ctx) }()
		ins, regs, conns, runs = append(ins, in), append(regs, reg), append(conns, p), append(runs, done)
	}
	defer func() {
		cancel()
		for _, d := range runs {
			<-d
		}
	}()
	for i, in := range ins {
		<-in.Ready()
		testutil.WaitFor(t, "the retained state on each replica", 10*time.Second, func() bool {
			d, ok := regs[i].Get("early")
			return ok && d.Online && d.Labels["site"] == "s1"
		})
		testutil.WaitFor(t, "the state catch-up subscription ended", 15*time.Second, func() bool { return conns[i].unsubscribed.Load() >= 1 })
	}

	dev, _ := device(t, url, "good")
	total := func(kind string) (n float64) {
		for _, in := range ins {
			n += counterValue(in.messages.WithLabelValues(kind))
		}
		return n
	}
	base := map[string]float64{}
	for _, k := range []string{api.KindState, api.KindTelemetry, api.KindJobs} {
		base[k] = total(k)
	}
	const n = 40
	for i := range n {
		now := time.Now().UnixMilli()
		s, _ := json.Marshal(api.State{DeviceID: "good", Online: true, Time: now})
		publish(t, dev, api.StateTopic("good"), s)
		tl, _ := json.Marshal(api.Telemetry{DeviceID: "good", Time: now, SpoolDepth: uint64(i)})
		publish(t, dev, api.TelemetryTopic("good"), tl)
		j, _ := json.Marshal(api.JobStatus{DeviceID: "good", JobID: fmt.Sprintf("j%d", i), State: api.JobDownloading, Time: now})
		publish(t, dev, api.JobTopic("good", fmt.Sprintf("j%d", i)), j)
	}
	// A copy sent to both replicas would arrive before later messages:
	// send telemetry markers until each replica has handled one.
	markers := 0.0
	seen := make([]float64, len(ins))
	for i, in := range ins {
		seen[i] = counterValue(in.messages.WithLabelValues(api.KindTelemetry))
	}
	testutil.Eventually(t, "a marker on each replica", func() bool {
		if total(api.KindTelemetry)-base[api.KindTelemetry] < n {
			return false
		}
		markers++
		tl, _ := json.Marshal(api.Telemetry{DeviceID: "good", Time: time.Now().UnixMilli()})
		publish(t, dev, api.TelemetryTopic("good"), tl)
		for i, in := range ins {
			if counterValue(in.messages.WithLabelValues(api.KindTelemetry)) <= seen[i]+n/4 {
				return false // not clearly past its share of the n
			}
		}
		return true
	})
	for _, k := range []string{api.KindState, api.KindJobs} {
		testutil.WaitFor(t, k+" reports handled", 10*time.Second, func() bool { return total(k)-base[k] >= n })
	}
	want := map[string]float64{api.KindState: n, api.KindTelemetry: n + markers, api.KindJobs: n}
	testutil.WaitFor(t, "the markers handled", 10*time.Second, func() bool { return total(api.KindTelemetry)-base[api.KindTelemetry] >= want[api.KindTelemetry] })
	for k, w := range want {
		var per []float64
		for _, in := range ins {
			per = append(per, counterValue(in.messages.WithLabelValues(k)))
		}
		if got := total(k) - base[k]; got != w {
			t.Errorf("%s: handled %v times across the replicas (per replica, with the catch-up: %v), want %v", k, got, per, w)
		}
	}
}
