package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"edgefleet/fleet/api"
	"edgefleet/internal/testutil"
)

func TestFailsUpdate(t *testing.T) {
	for _, rate := range []float64{0, 0.1, 0.5, 1} {
		n := 0
		for i := range 2000 {
			if FailsUpdate(fmt.Sprintf("sim-%d", i), rate) {
				n++
			}
		}
		if want := rate * 2000; float64(n) < want*0.8 || float64(n) > want*1.2 {
			t.Errorf("rate %v: %d of 2000 devices fail, want about %.0f", rate, n, want)
		}
	}
	// A higher rate keeps the devices a lower one fails.
	for i := range 2000 {
		id := fmt.Sprintf("sim-%d", i)
		if FailsUpdate(id, 0.1) && !FailsUpdate(id, 0.5) {
			t.Fatalf("%s fails at rate 0.1 but not at 0.5", id)
		}
	}
}

// TestUpdateCommands sends update and rollback commands to simulated
// devices over real MQTT and checks their job reports and versions.
func TestUpdateCommands(t *testing.T) {
	const n, rate = 6, 0.5
	var mu sync.Mutex
	reports := map[string][]string{} // job id -> states
	f := startFleetJobs(t, n, "sim-", func(j api.JobStatus) {
		mu.Lock()
		defer mu.Unlock()
		reports[j.JobID] = append(reports[j.JobID], j.State)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	connected := make(chan int, 1)
	done := make(chan Report, 1)
	go func() {
		rep, err := Run(ctx, Options{Broker: f.url, Devices: n, Rate: 0.001, Duration: time.Minute, Login: login, TelemetryEvery: 50 * time.Millisecond, FailRate: rate,
			UpdateStep: 5 * time.Millisecond, OnConnected: func(c int) { connected <- c }})
		if err != nil {
			t.Error(err)
		}
		done <- rep
	}()
	if c := <-connected; c != n {
		t.Fatalf("%d of %d devices connected", c, n)
	}
	failing := map[string]bool{}
	for i := range n {
		if id := fmt.Sprintf("sim-%d", i); FailsUpdate(id, rate) {
			failing[id] = true
		}
	}
	if len(failing) == 0 || len(failing) == n {
		t.Fatalf("fail rate %v picks %d of %d devices; the test needs some of each", rate, len(failing), n)
	}
	art := &api.Artifact{Kind: "model", Name: "yolo-sim", Version: "2", SHA256: strings.Repeat("ab", 32), Size: 10,
		URL: "http://fleet/artifacts/x", Manifest: []byte(`{}`), Sig: []byte{1}, KeyID: "k"}
	send := func(dev string, c api.Command) {
		t.Helper()
		p, _ := json.Marshal(c)
		if err := f.conn.Publish(ctx, api.CommandsTopic(dev), false, p); err != nil {
			t.Fatal(err)
		}
	}
	final, version := jobWatchers(t, &mu, reports, f)
	for i := range n {
		dev := fmt.Sprintf("sim-%d", i)
		send(dev, api.Command{JobID: "job-" + dev, Kind: api.CommandModelUpdate, Artifact: art, HealthWindowS: 0.05})
	}
	happy := []string{api.JobQueued, api.JobDownloading, api.JobDownloading, api.JobDownloading, api.JobVerifying, api.JobInstalling, api.JobHealthCheck}
	for i := range n {
		dev := fmt.Sprintf("sim-%d", i)
		want := api.JobSucceeded
		if failing[dev] {
			want = api.JobFailed
		}
		if got := final("job-" + dev); got != want {
			t.Errorf("%s: final state %s, want %s", dev, got, want)
		}
		mu.Lock()
		if got := reports["job-"+dev]; !slices.Equal(got, append(slices.Clone(happy), want)) {
			t.Errorf("%s: states %v", dev, got)
		}
		mu.Unlock()
		// Failed devices keep the new version until the fleet rolls them back.
		version(dev, "2")
	}
	// A job id seen before is not run again: its state is reported again.
	dev0 := "sim-0"
	mu.Lock()
	before := len(reports["job-"+dev0])
	mu.Unlock()
	send(dev0, api.Command{JobID: "job-" + dev0, Kind: api.CommandModelUpdate, Artifact: art})
	var got []string
	testutil.Eventually(t, "the repeated job reported again", func() bool {
		mu.Lock()
		defer mu.Unlock()
		got = slices.Clone(reports["job-"+dev0])
		return len(got) > before
	})
	if len(got) != before+1 || got[before] != got[before-1] {
		t.Errorf("repeated job: reports %v", got)
	}
	// The fleet rolls the failed devices back.
	for dev := range failing {
		send(dev, api.Command{JobID: "job-" + dev + "-rb", Kind: api.CommandRollback})
		if got := final("job-" + dev + "-rb"); got != api.JobSucceeded {
			t.Errorf("%s rollback: %s", dev, got)
		}
		version(dev, "1")
	}
	// A malformed update fails with a reason.
	send("sim-1", api.Command{JobID: "bad-1", Kind: api.CommandModelUpdate, Artifact: &api.Artifact{Name: "x"}})
	if got := final("bad-1"); got != api.JobFailed {
		t.Errorf("malformed update: %s", got)
	}
	// The telemetry names the version too.
	want0 := map[bool]string{true: "1", false: "2"}[failing[dev0]]
	testutil.Eventually(t, "telemetry of "+dev0+" naming model version "+want0, func() bool {
		d, _ := f.reg.Get(dev0)
		return d.Telemetry != nil && d.Telemetry.Model == "yolo-sim" && d.Telemetry.ModelVersion == want0
	})
	cancel()
	rep := <-done
	if rep.OTA.Rollbacks != int64(len(failing)) || rep.OTA.Failed != int64(len(failing))+1 || rep.OTA.Succeeded != int64(n-len(failing)) {
		t.Errorf("OTA stats %+v with %d failing devices", rep.OTA, len(failing))
	}
	for dev, v := range rep.Versions {
		if v.ModelVersion != map[bool]string{true: "1", false: "2"}[failing[dev]] {
			t.Errorf("%s ends on %v", dev, v)
		}
	}
}

// jobWatchers returns waits for a job's final state (from the reports
// OnJob collects under mu) and for a device's model version in the registry.
func jobWatchers(t *testing.T, mu *sync.Mutex, reports map[string][]string, f *fleet) (final func(job string) string, version func(dev, want string)) {
	final = func(job string) string {
		t.Helper()
		last := ""
		testutil.Eventually(t, "a final state of job "+job, func() bool {
			mu.Lock()
			defer mu.Unlock()
			if s := reports[job]; len(s) > 0 {
				last = s[len(s)-1]
			}
			return last == api.JobSucceeded || last == api.JobFailed || last == api.JobRolledBack
		})
		return last
	}
	version = func(dev, want string) {
		t.Helper()
		testutil.Eventually(t, dev+" on model version "+want, func() bool {
			d, ok := f.reg.Get(dev)
			return ok && d.ModelVersion == want
		})
	}
	return final, version
}

// TestVersionOrder: a device's telemetry never names a version it had
// already left when it published its last state. fleetd's registry takes
// the model version from whichever of state and telemetry came last, so
// such a late telemetry report puts a device back on its old version until
// the next one (a minute later in the rollout tests). Telemetry every
// millisecond and a stream of updates make the race likely if the device
// reads its versions and publishes them in two steps.
func TestVersionOrder(t *testing.T) {
	const n, updates = 4, 25
	var mu sync.Mutex
	reports := map[string][]string{}
	f := startFleetJobs(t, n, "sim-", func(j api.JobStatus) {
		mu.Lock()
		defer mu.Unlock()
		reports[j.JobID] = append(reports[j.JobID], j.State)
	})
	type msg struct{ kind, version string }
	var wire sync.Mutex
	seen := map[string][]msg{} // device -> state and telemetry versions in arrival order
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, kind := range []string{api.KindState, api.KindTelemetry} {
		if err := f.conn.Subscribe(ctx, api.Filter(kind), func(topic string, payload []byte) {
			var v struct {
				DeviceID     string `json:"device_id"`
				Online       *bool  `json:"online"`
				ModelVersion string `json:"model_version"`
			}
			if json.Unmarshal(payload, &v) != nil || v.ModelVersion == "" {
				return // the last will names no version
			}
			wire.Lock()
			defer wire.Unlock()
			seen[v.DeviceID] = append(seen[v.DeviceID], msg{kind, v.ModelVersion})
		}); err != nil {
			t.Fatal(err)
		}
	}
	connected := make(chan int, 1)
	done := make(chan Report, 1)
	go func() {
		rep, err := Run(ctx, Options{Broker: f.url, Devices: n, Rate: 0.001, Duration: time.Minute, Login: login, TelemetryEvery: time.Millisecond,
			UpdateStep: time.Millisecond, OnConnected: func(c int) { connected <- c }})
		if err != nil {
			t.Error(err)
		}
		done <- rep
	}()
	if c := <-connected; c != n {
		t.Fatalf("%d of %d devices connected", c, n)
	}
	final, _ := jobWatchers(t, &mu, reports, f)
	for u := range updates {
		art := &api.Artifact{Kind: "model", Name: "yolo-sim", Version: strconv.Itoa(u + 2), SHA256: strings.Repeat("ab", 32), Size: 10,
			URL: "http://fleet/artifacts/x", Manifest: []byte(`{}`), Sig: []byte{1}, KeyID: "k"}
		for i := range n {
			dev := fmt.Sprintf("sim-%d", i)
			p, _ := json.Marshal(api.Command{JobID: fmt.Sprintf("job-%s-%d", dev, u), Kind: api.CommandModelUpdate, Artifact: art})
			if err := f.conn.Publish(ctx, api.CommandsTopic(dev), false, p); err != nil {
				t.Fatal(err)
			}
		}
		for i := range n {
			if got := final(fmt.Sprintf("job-sim-%d-%d", i, u)); got != api.JobSucceeded {
				t.Fatalf("update %d of sim-%d: %s", u, i, got)
			}
		}
	}
	cancel()
	<-done
	wire.Lock()
	defer wire.Unlock()
	for dev, ms := range seen {
		// A telemetry report after the k-th state names its version, or
		// the next one (the device changed version and has not yet
		// published the state saying so); never an earlier one.
		var states []string
		for _, m := range ms {
			if m.kind == api.KindState {
				states = append(states, m.version)
			}
		}
		k, tele := -1, 0
		for i, m := range ms {
			if m.kind == api.KindState {
				k++
				continue
			}
			tele++
			if k >= 0 && m.version != states[k] && (k+1 >= len(states) || m.version != states[k+1]) {
				t.Errorf("%s: message %d, telemetry of version %s, after the state of version %s (states %v)", dev, i, m.version, states[k], states)
			}
		}
		if len(states) < updates || tele == 0 {
			t.Errorf("%s: %d states and %d telemetry reports for %d updates", dev, len(states), tele, updates)
		}
	}
	if len(seen) != n {
		t.Errorf("versions seen from %d devices, want %d", len(seen), n)
	}
}
