package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strings"
	"sync/atomic"
	"time"

	"edgefleet/fleet/api"
)

// The simulated update executor. A virtual device answers model_update,
// firmware_update and rollback commands on its commands topic as an agent
// does: it reports queued, downloading (with progress), verifying,
// installing, health_check and succeeded on jobs/<id>, a step every
// Options.UpdateStep, and publishes its new version in its retained state
// and its telemetry. It downloads nothing and verifies nothing: it only
// checks the command is well formed.
//
// A device that Options.Fails picks (by default FailsUpdate) fails every update at the end of its
// health check: it reports failed (not rolled_back) and keeps the new
// version, like an agent that could not restore the old model by itself,
// so it stays on the new version until the fleet sends it a rollback.
//
// A job id already seen is not run again; its last state is reported again
// (fleetd resends jobs that were in flight when it restarted).

// FailsUpdate reports whether the device with this id fails updates when
// the simulator runs with fail rate rate: a hash of the id, so the same
// devices fail in every run and a test can tell which.
func FailsUpdate(id string, rate float64) bool {
	if rate <= 0 {
		return false
	}
	h := fnv.New32a()
	h.Write([]byte(id))
	return float64(h.Sum32()%10000) < rate*10000
}

// jobRun is what a device remembers of one job.
type jobRun struct {
	kind  string // command kind
	state string // last reported state
	// what the job replaced, to undo it: model (or agent) version before
	prevModel, prevVersion, prevAgent string
	installed                         bool
}

// OTAStats counts the update commands the devices answered.
type OTAStats struct {
	Commands  int64 `json:"commands"`  // commands received (repeats included)
	Succeeded int64 `json:"succeeded"` // update jobs that succeeded
	Failed    int64 `json:"failed"`    // update jobs that failed
	Rollbacks int64 `json:"rollbacks"` // rollback jobs that returned to an earlier version
	BadCmds   int64 `json:"bad_commands"`
	// Shadow phases that passed and failed (shadow.go); a failed one is
	// counted in Failed too.
	ShadowPassed int64 `json:"shadow_passed,omitempty"`
	ShadowFailed int64 `json:"shadow_failed,omitempty"`
}

type otaCounters struct {
	commands, succeeded, failed, rollbacks, bad, shadowPassed, shadowFailed atomic.Int64
}

func (c *otaCounters) stats() OTAStats {
	return OTAStats{Commands: c.commands.Load(), Succeeded: c.succeeded.Load(), Failed: c.failed.Load(),
		Rollbacks: c.rollbacks.Load(), BadCmds: c.bad.Load(), ShadowPassed: c.shadowPassed.Load(), ShadowFailed: c.shadowFailed.Load()}
}

// onMessage routes a message the device received: acks or commands.
func (d *device) onMessage(topic string, payload []byte) {
	if strings.HasSuffix(topic, "/"+api.KindCommands) {
		d.onCommand(payload)
		return
	}
	d.onAck(topic, payload)
}

// onCommand runs on the connection's read loop: it must not block, so the
// job runs in its own goroutine.
func (d *device) onCommand(payload []byte) {
	var c api.Command
	if err := api.Decode(payload, &c); err != nil {
		d.ota.commands.Add(1)
		d.ota.bad.Add(1)
		return
	}
	if d.o.OnCommand != nil {
		d.o.OnCommand(d.id, c)
	}
	if c.Kind == api.CommandSnapshot {
		d.answerSnapshot(c) // not an update: not counted in OTAStats
		return
	}
	d.ota.commands.Add(1)
	d.mu.Lock()
	if d.closing {
		d.mu.Unlock()
		return
	}
	if j, ok := d.jobs[c.JobID]; ok {
		st := j.state
		d.mu.Unlock()
		d.report(c.JobID, st, 0, "")
		return
	}
	j := &jobRun{kind: c.Kind, state: api.JobQueued}
	d.jobs[c.JobID] = j
	d.jobsWG.Add(1)
	d.mu.Unlock()
	go func() {
		defer d.jobsWG.Done()
		d.runJob(d.ctx, c, j)
	}()
}

func (d *device) report(job, state string, progress float64, reason string) {
	p, _ := json.Marshal(api.JobStatus{DeviceID: d.id, JobID: job, State: state, Progress: progress, Reason: reason, Time: time.Now().UnixMilli()})
	d.cl.publish(api.JobTopic(d.id, job), 1, false, p)
}

func (d *device) setState(j *jobRun, state string) {
	d.mu.Lock()
	j.state = state
	d.mu.Unlock()
}

// runJob walks a job through its states.
func (d *device) runJob(ctx context.Context, c api.Command, j *jobRun) {
	wait := func(dur time.Duration) bool {
		t := time.NewTimer(dur)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	step := func() bool { return wait(d.o.UpdateStep) }
	say := func(state string, progress float64, reason string) {
		d.setState(j, state)
		d.report(c.JobID, state, progress, reason)
	}
	say(api.JobQueued, 0, "")
	if c.Kind == api.CommandRollback {
		if !step() {
			return
		}
		say(api.JobInstalling, 0, "")
		if reason, ok := d.rollback(c.JobID); !ok {
			say(api.JobFailed, 0, reason)
			return
		}
		say(api.JobSucceeded, 0, "")
		return
	}
	a := c.Artifact
	if a == nil || a.Name == "" || a.Version == "" || len(a.SHA256) != 64 || a.URL == "" || len(a.Manifest) == 0 || len(a.Sig) == 0 {
		d.ota.failed.Add(1)
		say(api.JobFailed, 0, "sim: command lacks artifact name, version, sha256, url or signature")
		return
	}
	for _, p := range []float64{0, 0.5, 1} {
		if !step() {
			return
		}
		say(api.JobDownloading, p, "")
	}
	if !step() {
		return
	}
	say(api.JobVerifying, 0, "")
	if c.Shadow != nil && c.Kind == api.CommandModelUpdate && !d.runShadow(c, j, wait) {
		return
	}
	if !step() {
		return
	}
	say(api.JobInstalling, 0, "")
	d.install(j, c.Kind, a)
	say(api.JobHealthCheck, 0, "")
	// The health window, scaled down: the simulator is for fleet-side tests.
	hw := min(time.Duration(c.HealthWindowS*float64(time.Second)), d.o.MaxHealthWindow)
	t := time.NewTimer(max(hw, d.o.UpdateStep))
	select {
	case <-ctx.Done():
		t.Stop()
		return
	case <-t.C:
	}
	if d.o.Fails(d.id) {
		d.ota.failed.Add(1)
		say(api.JobFailed, 0, "sim: health check failed (simulated failure); the new version stays until a rollback")
		return
	}
	d.ota.succeeded.Add(1)
	say(api.JobSucceeded, 0, "")
}

// install switches the device to the artifact and announces it.
func (d *device) install(j *jobRun, kind string, a *api.Artifact) {
	d.mu.Lock()
	j.prevModel, j.prevVersion, j.prevAgent, j.installed = d.model, d.modelVersion, d.agentVersion, true
	if kind == api.CommandFirmwareUpdate {
		d.agentVersion = a.Version
	} else {
		d.model, d.modelVersion = a.Name, a.Version
	}
	d.mu.Unlock()
	d.publishState()
}

// rollback undoes the job a rollback job names (<job>-rb), or the last
// installed job for any other id.
func (d *device) rollback(rbID string) (string, bool) {
	d.mu.Lock()
	base, ok := strings.CutSuffix(rbID, "-rb")
	j := d.jobs[base]
	if !ok || j == nil {
		d.mu.Unlock()
		return "", true // never run here: nothing to undo
	}
	if !j.installed {
		d.mu.Unlock()
		return "", true // installed nothing
	}
	if j.kind == api.CommandFirmwareUpdate {
		d.agentVersion = j.prevAgent
	} else {
		d.model, d.modelVersion = j.prevModel, j.prevVersion
	}
	j.installed = false
	d.mu.Unlock()
	d.ota.rollbacks.Add(1)
	d.publishState()
	return "", true
}

// stopJobs waits for the running jobs and refuses new ones.
func (d *device) stopJobs() {
	d.mu.Lock()
	d.closing = true
	d.mu.Unlock()
	d.jobsWG.Wait()
}

// publishState publishes the retained online state with the current versions.
func (d *device) publishState() error {
	d.pubMu.Lock()
	defer d.pubMu.Unlock()
	d.mu.Lock()
	st := api.State{DeviceID: d.id, Online: true, Time: time.Now().UnixMilli(), AgentVersion: d.agentVersion,
		Labels: d.labels, Model: d.model, ModelVersion: d.modelVersion, Engine: "sim", Cameras: []string{"cam0"}}
	d.mu.Unlock()
	p, _ := json.Marshal(st)
	return d.cl.publish(api.StateTopic(d.id), 1, true, p)
}

// Version is a device's model and agent version as the simulator last set them.
type Version struct {
	Model, ModelVersion, AgentVersion string
}

func (d *device) version() Version {
	d.mu.Lock()
	defer d.mu.Unlock()
	return Version{d.model, d.modelVersion, d.agentVersion}
}

func (v Version) String() string {
	return fmt.Sprintf("%s@%s agent %s", v.Model, v.ModelVersion, v.AgentVersion)
}
