package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/jpeg"
	"strings"
	"sync"
	"testing"
	"time"

	"edgefleet/fleet/api"
	"edgefleet/internal/testutil"
)

func TestShadowAgreement(t *testing.T) {
	tests := []struct {
		o        Options
		lo, hi   float64
		distinct bool
	}{
		{Options{}, 0.95, 0.95, false},
		{Options{ShadowAgreement: 0.8}, 0.8, 0.8, false},
		{Options{ShadowAgreement: 0.95, ShadowSpread: 0.2}, 0.75, 0.95, true},
		{Options{ShadowAgreementOf: func(string) float64 { return 0.5 }}, 0.5, 0.5, false},
	}
	for i, tt := range tests {
		seen := map[float64]bool{}
		for d := range 200 {
			a := tt.o.shadowAgreement(fmt.Sprintf("sim-%d", d))
			if a < tt.lo || a > tt.hi {
				t.Errorf("case %d: sim-%d agreement %v outside [%v, %v]", i, d, a, tt.lo, tt.hi)
			}
			seen[a] = true
		}
		if tt.distinct != (len(seen) > 50) {
			t.Errorf("case %d: %d distinct agreements", i, len(seen))
		}
	}
}

// TestShadowCommands: devices answer a model update with a shadow phase
// over real MQTT: periodic and final reports (with a JPEG sample); the
// device under the threshold fails and keeps its model.
func TestShadowCommands(t *testing.T) {
	const n = 3
	var mu sync.Mutex
	reports := map[string][]api.JobStatus{}
	f := startFleetJobs(t, n, "sim-", func(j api.JobStatus) {
		mu.Lock()
		defer mu.Unlock()
		reports[j.JobID] = append(reports[j.JobID], j)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	connected := make(chan int, 1)
	done := make(chan Report, 1)
	go func() {
		rep, err := Run(ctx, Options{Broker: f.url, Devices: n, Rate: 0.001, Duration: time.Minute, Login: login, UpdateStep: 5 * time.Millisecond,
			MaxShadow: 50 * time.Millisecond, ShadowAgreementOf: func(d string) float64 { return map[bool]float64{true: 0.5, false: 0.97}[d == "sim-1"] },
			OnConnected: func(c int) { connected <- c }})
		if err != nil {
			t.Error(err)
		}
		done <- rep
	}()
	if c := <-connected; c != n {
		t.Fatalf("%d of %d devices connected", c, n)
	}
	art := &api.Artifact{Kind: "model", Name: "yolo-sim", Version: "2", SHA256: strings.Repeat("ab", 32), Size: 10,
		URL: "http://fleet/artifacts/x", Manifest: []byte(`{}`), Sig: []byte{1}, KeyID: "k"}
	for i := range n {
		dev := fmt.Sprintf("sim-%d", i)
		p, _ := json.Marshal(api.Command{JobID: "job-" + dev, Kind: api.CommandModelUpdate, Artifact: art, HealthWindowS: 0.05,
			Shadow: &api.ShadowSpec{DurationS: 600, MinAgreement: 0.9}})
		if err := f.conn.Publish(ctx, api.CommandsTopic(dev), false, p); err != nil {
			t.Fatal(err)
		}
	}
	// The report stream's states, for jobWatchers.
	states := func() map[string][]string {
		mu.Lock()
		defer mu.Unlock()
		out := map[string][]string{}
		for job, rs := range reports {
			for _, r := range rs {
				out[job] = append(out[job], r.State)
			}
		}
		return out
	}
	final := func(job string) string {
		t.Helper()
		last := ""
		testutil.Eventually(t, "a final state of job "+job, func() bool {
			s := states()[job]
			if len(s) > 0 {
				last = s[len(s)-1]
			}
			return last == api.JobSucceeded || last == api.JobFailed
		})
		return last
	}
	_, version := jobWatchers(t, &mu, nil, f)
	for i := range n {
		dev := fmt.Sprintf("sim-%d", i)
		want := map[bool]string{true: api.JobFailed, false: api.JobSucceeded}[dev == "sim-1"]
		if got := final("job-" + dev); got != want {
			t.Fatalf("%s: %s, want %s", dev, got, want)
		}
		version(dev, map[bool]string{true: "1", false: "2"}[dev == "sim-1"])
		mu.Lock()
		var periodic, fin *api.ShadowReport
		for _, r := range reports["job-"+dev] {
			switch {
			case r.Shadow != nil && r.Shadow.Final:
				fin = r.Shadow
			case r.Shadow != nil:
				periodic = r.Shadow
			}
		}
		mu.Unlock()
		if periodic == nil || fin == nil || len(fin.Samples) != 1 || fin.Validate() != nil {
			t.Fatalf("%s: periodic %+v final %+v", dev, periodic, fin)
		}
		if _, err := jpeg.Decode(bytes.NewReader(fin.Samples[0].JPEG)); err != nil {
			t.Fatalf("%s: sample: %v", dev, err)
		}
	}
	cancel()
	if rep := <-done; rep.OTA.ShadowPassed != 2 || rep.OTA.ShadowFailed != 1 {
		t.Errorf("OTA stats %+v", rep.OTA)
	}
}
