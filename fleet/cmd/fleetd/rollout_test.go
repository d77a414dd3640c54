package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"edgefleet/fleet/api/rest"
	"edgefleet/fleet/client"
	"edgefleet/fleet/controller/controllertest"
	"edgefleet/internal/testutil"
	"edgefleet/models/modeltest"
)

// TestRolloutSurvivesKill is issue 6's "fleetd killed mid-rollout resumes
// the rollout", with a real fleetd process and 200 simulated devices: kill
// -9 during wave 1, start fleetd again on the same data: the devices count
// as offline until they reconnect (the embedded broker lost them), the jobs
// that were in flight are sent again under the same job ids, and the
// rollout completes with no failure. The simulator has no reconnect and no
// memory, so a new one plays the devices after the restart.
func TestRolloutSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds fleetd")
	}
	const n = 200
	bin, dir, extra, p, c := simFleetd(t, "{health_window: 1s, job_timeout: 2m}")
	stop := controllertest.StartSim(t, p.mqtt, n, 0)
	controllertest.WaitOnline(t, c, n)
	waitRegistryFlushed(t, p)
	sum := controllertest.CreateRollout(t, c, rest.CreateRollout{Model: "yolo-sim@2", Canary: 2, Waves: "50%,100%", MaxFailures: "0"})
	before := controllertest.WaitRollout(t, c, sum.ID, 30*time.Second, func(v rest.Rollout) bool {
		return v.State == rest.StateWave && v.Wave == 1 && v.Progress[1].InFlight > 20
	})
	p.cmd.Process.Kill()
	<-p.exited
	stop()
	t.Logf("killed fleetd in wave 1: %+v", before.Progress)

	p = startFleetdWith(t, bin, dir, extra)
	c = controllertest.Client(t, p.http)
	ctx := context.Background()
	if f, err := c.Fleet(ctx); err != nil || f.Devices != n || f.Online != 0 {
		t.Fatalf("after the restart: %d devices, %d online (%v); want %d, none online", f.Devices, f.Online, err, n)
	}
	mid, err := c.Rollout(ctx, sum.ID)
	if err != nil || mid.State != rest.StateWave || mid.Wave != 1 || mid.Progress[0].Succeeded != 2 {
		t.Fatalf("after the restart: %s wave %d, %+v (%v)", mid.State, mid.Wave, mid.Progress, err)
	}
	stop = controllertest.StartSim(t, p.mqtt, n, 0)
	after := controllertest.WaitRollout(t, c, sum.ID, 60*time.Second, func(v rest.Rollout) bool { return controllertest.Final(v.State) })
	rep := stop()
	t.Logf("after the restart: %s (%s); the new simulator ran %d jobs", after.State, after.Reason, rep.OTA.Succeeded)
	if after.State != rest.StateCompleted || after.Succeeded != n || after.Failed != 0 {
		t.Fatalf("rollout %+v", after.RolloutSummary)
	}
	ids := map[string]string{}
	for _, j := range before.Jobs {
		ids[j.DeviceID] = j.JobID
	}
	for _, j := range after.Jobs {
		if ids[j.DeviceID] != j.JobID {
			t.Fatalf("%s: job %s after the restart, %s before", j.DeviceID, j.JobID, ids[j.DeviceID])
		}
	}
	// The jobs in flight at the kill were sent again; those already done were not.
	if rep.OTA.Succeeded < int64(before.Progress[1].InFlight) || rep.OTA.Succeeded > int64(n-before.Succeeded) {
		t.Errorf("the new simulator ran %d jobs; %d were in flight and %d not yet succeeded at the kill", rep.OTA.Succeeded, before.Progress[1].InFlight, n-before.Succeeded)
	}
}

// simFleetd builds fleetd and runs it on a new data dir with the
// simulator's service login and the ota section given, with yolo-sim@2
// pushed. It returns what startFleetdWith needs to start it again.
func simFleetd(t *testing.T, ota string) (bin, dir, extra string, p *fleetdProc, c *client.Client) {
	t.Helper()
	model, err := os.ReadFile(modeltest.Path(t, "models", "yolov5n-int8.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	bin, dir = buildFleetd(t, t.TempDir()), t.TempDir()
	extra = `
broker: {listen: "127.0.0.1:0"}
services: [{user: sim, password: sim-password}]
ota: ` + ota + "\n"
	p = startFleetdWith(t, bin, dir, extra)
	c = controllertest.Client(t, p.http)
	controllertest.PushModel(t, c, "yolo-sim", "2", model)
	return bin, dir, extra, p, c
}

// waitRegistryFlushed waits until fleetd's registry file has been written
// after every device was seen online (the registry flushes every 2 s), so
// a kill -9 finds them there.
func waitRegistryFlushed(t *testing.T, p *fleetdProc) {
	t.Helper()
	path := filepath.Join(p.dir, "data", "registry.db")
	online := time.Now()
	testutil.WaitFor(t, "the registry written after the devices came online", 10*time.Second, func() bool {
		fi, err := os.Stat(path)
		return err == nil && fi.ModTime().After(online)
	})
}
