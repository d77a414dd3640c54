package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"edgefleet/fleet/api"
	"edgefleet/fleet/api/rest"
	"edgefleet/fleet/controller/controllertest"
	"edgefleet/fleet/sim"
	"edgefleet/internal/testutil"
)

// TestShadowSurvivesKill is issue 14's must-show 6: fleetd killed (-9)
// while the canaries run their shadow phase keeps their periodic reports;
// restarted, it sends the jobs again and the rollout completes with every
// device's final report.
func TestShadowSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds fleetd")
	}
	const n = 20
	bin, dir, extra, p, c := simFleetd(t, "{health_window: 200ms, job_timeout: 5m}")
	// A shadow phase that outlasts the test's first half.
	stop := controllertest.StartSimWith(t, sim.Options{Broker: "tcp://" + p.mqtt, Devices: n, MaxShadow: 10 * time.Minute})
	controllertest.WaitOnline(t, c, n)
	waitRegistryFlushed(t, p)
	sum := controllertest.CreateRollout(t, c, rest.CreateRollout{Model: "yolo-sim@2", Canary: 2, Waves: "100%", MaxFailures: "0",
		Shadow: "10m", MinAgreement: 0.9})
	ctx := context.Background()
	testutil.WaitFor(t, "both canaries' periodic shadow reports", 30*time.Second, func() bool {
		sh, err := c.RolloutShadow(ctx, sum.ID)
		return err == nil && len(sh.Devices) == 2 && sh.Devices[0].Latest != nil && sh.Devices[1].Latest != nil
	})
	// Kill once the engine has written them: the file changed after the
	// engine showed both canaries in their shadow phase (a write after a
	// report came but before the engine applied it would not hold it).
	testutil.WaitFor(t, "both canaries in their shadow phase", 30*time.Second, func() bool {
		v, err := c.Rollout(ctx, sum.ID)
		return err == nil && v.States[api.JobShadow] == 2
	})
	seen := time.Now()
	testutil.WaitFor(t, "rollouts.db written after that", 10*time.Second, func() bool {
		fi, err := os.Stat(filepath.Join(dir, "data", "ota", "rollouts.db"))
		return err == nil && fi.ModTime().After(seen)
	})
	p.cmd.Process.Kill()
	<-p.exited
	stop()

	p = startFleetdWith(t, bin, dir, extra)
	c = controllertest.Client(t, p.http)
	mid, err := c.Rollout(ctx, sum.ID)
	if err != nil || mid.State != rest.StateCanary || mid.States[api.JobShadow] != 2 {
		t.Fatalf("after the restart: %s, states %v (%v)", mid.State, mid.States, err)
	}
	sh, err := c.RolloutShadow(ctx, sum.ID)
	if err != nil || len(sh.Devices) != 2 {
		t.Fatalf("shadow reports after the restart: %+v, %v", sh, err)
	}
	for _, d := range sh.Devices {
		if d.Latest == nil || d.Latest.Frames == 0 || d.Final != nil || d.Shadow == nil || d.Shadow.Agreement != 0.95 {
			t.Fatalf("%s after the restart: latest %+v final %+v result %+v", d.DeviceID, d.Latest, d.Final, d.Shadow)
		}
	}
	controllertest.StartSimWith(t, sim.Options{Broker: "tcp://" + p.mqtt, Devices: n, MaxShadow: 100 * time.Millisecond})
	after := controllertest.WaitRollout(t, c, sum.ID, 60*time.Second, func(v rest.Rollout) bool { return controllertest.Final(v.State) })
	if after.State != rest.StateCompleted || after.Succeeded != n {
		t.Fatalf("rollout %+v", after.RolloutSummary)
	}
	sh, err = c.RolloutShadow(ctx, sum.ID)
	if err != nil || len(sh.Devices) != n {
		t.Fatalf("shadow reports at the end: %d devices, %v", len(sh.Devices), err)
	}
	for _, d := range sh.Devices {
		if d.Final == nil || d.Latest == nil || len(d.SampleURLs) != 1 || d.Shadow.Outcome() != rest.ShadowPassed {
			t.Errorf("%s: latest %v final %v samples %v", d.DeviceID, d.Latest != nil, d.Final != nil, d.SampleURLs)
		}
	}
}
