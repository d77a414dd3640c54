package main

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"edgefleet/firmware/bundle"
	"edgefleet/firmware/firmwaretest"
	"edgefleet/firmware/slot"
	"edgefleet/fleet/api"
	"edgefleet/internal/testutil"
	"edgefleet/models/manifest"
	"edgefleet/models/modeltest"
)

// buildStamped builds edge-agent with its version stamped (as make cross
// does) into dir.
func buildStamped(t *testing.T, dir, version string) string {
	t.Helper()
	out := filepath.Join(dir, "edge-agent-"+version)
	cmd := exec.Command("go", "build", "-o", out, "-ldflags", "-X "+bundle.VersionVar+"="+version, ".")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("go build edge-agent %s: %v\n%s", version, err, b)
	}
	return out
}

// TestRunFirmwareUpdate runs the real edge-agent under the real
// edge-launcher: a firmware_update command for another build of the same
// agent (version 2.0.0) is downloaded with the device's credentials,
// installed into slot b, the agent exits with status 75, the launcher
// starts 2.0.0 on trial, and 2.0.0 commits once it infers and is connected,
// reporting the job succeeded. Detections spooled by 1.0.0 while the fleet
// lost every batch are delivered by 2.0.0 from the same spool: all seqs
// arrive, none reused.
func TestRunFirmwareUpdate(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run with two agent builds and the launcher")
	}
	if runtime.GOOS != "linux" {
		t.Skip("edge-launcher's slots are for linux")
	}
	start := time.Now()
	v1, v2, launcherBin := buildFirmwareWorld(t)
	if t.Failed() {
		return
	}
	t.Logf("%.1fs: built", time.Since(start).Seconds())

	const device = "box-fw"
	s := &store{events: map[uint64]api.Event{}}
	f := &embeddedFleet{t: t, addr: freeAddr(t), device: device, store: s}
	f.up()
	jobs := watchJobs(t, f.b, device)

	// The fleet's signing key, pinned on the device through update.keys
	// (firmware.keys defaults to it).
	dir, data := t.TempDir(), t.TempDir()
	signer := firmwaretest.NewSigner(t)
	keyDir := filepath.Join(dir, "keys")
	signer.WritePublicKey(t, keyDir)
	bin2, m, payload, sig := signBundle(t, signer, v2)
	arts := &artifactServer{device: device, token: "pw", files: map[string][]byte{m.SHA256: bin2}}
	srv := httptest.NewServer(arts)
	t.Cleanup(srv.Close)

	cfg := firmwareConfig(t, dir, device, f.url(), keyDir, srv.URL, data)

	logs := startLauncher(t, launcherBin, v1, data, cfg)

	const patience = 40 * time.Second
	online := func(version string) func() bool { return func() bool { return agentOnline(jobs, version) } }
	testutil.WaitFor(t, "1.0.0 online", patience, online("1.0.0"))
	testutil.WaitFor(t, "first detections stored", patience, func() bool { n, _ := s.newest(); return n >= 2 })
	t.Logf("%.1fs: 1.0.0 running", time.Since(start).Seconds())
	if st, _ := jobs.lastState(); st.Engine != "go" || st.EngineVersion == "" {
		t.Errorf("retained state engine %q version %q, want the go engine with its version", st.Engine, st.EngineVersion)
	}

	// From now on the fleet loses every batch: detections stay in 1.0.0's spool.
	s.drop.Store(true)
	dropFrom := time.Now()
	testutil.WaitFor(t, "batches lost by the fleet", patience, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.dropped) > 0 && time.Since(dropFrom) > time.Second
	})

	c := api.Command{JobID: "fw-2", Kind: api.CommandFirmwareUpdate, HealthWindowS: 60, Artifact: &api.Artifact{
		Kind: manifest.KindFirmware, Name: m.Name, Version: m.Version, SHA256: m.SHA256, Size: m.Size,
		URL: "/artifacts/" + m.SHA256, Manifest: payload, Sig: sig, KeyID: signer.KeyID,
	}}
	send := func(c api.Command) {
		t.Helper()
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.b.Publish(api.CommandsTopic(device), b, false, 1); err != nil {
			t.Fatal(err)
		}
	}
	send(c)
	// 1.0.0 exits after reporting health_check; the fleet hears again from
	// then on, so what reaches it of the lost batches comes from the spool.
	testutil.WaitFor(t, "fw-2 installed", patience, func() bool { return slices.Contains(jobs.path("fw-2"), api.JobHealthCheck) })
	s.drop.Store(false)
	installed := time.Now()
	t.Logf("%.1fs: 2.0.0 installed", time.Since(start).Seconds())
	testutil.WaitFor(t, "fw-2 to end", patience, func() bool { _, ok := jobs.final("fw-2"); return ok })
	if st, _ := jobs.final("fw-2"); st.State != api.JobSucceeded || st.DeviceID != device {
		t.Fatalf("fw-2 ended %+v, want succeeded", st)
	}
	want := []string{api.JobDownloading, api.JobInstalling, api.JobHealthCheck, api.JobSucceeded}
	if p := jobs.path("fw-2"); fmt.Sprint(p) != fmt.Sprint(want) {
		t.Errorf("fw-2 went %v, want %v", p, want)
	}
	testutil.WaitFor(t, "2.0.0 online", patience, online("2.0.0"))
	t.Logf("%.1fs: 2.0.0 committed", time.Since(start).Seconds())

	sl := checkCommitted(t, data)
	if l := logs.String(); !strings.Contains(l, "exit_status="+fmt.Sprint(slot.ExitSwitch)) {
		t.Errorf("1.0.0 did not say it exits with status %d for the switch", slot.ExitSwitch)
	}

	spooled := checkLostDelivered(t, s, dropFrom, installed)

	// The same command again (a redelivery): 2.0.0 does not install it twice.
	send(c)
	testutil.WaitFor(t, "2.0.0 to skip the job it runs from", patience, func() bool {
		return strings.Contains(logs.String(), "firmware: job already installed; not running it again")
	})
	if p := jobs.path("fw-2"); fmt.Sprint(p) != fmt.Sprint(want) {
		t.Errorf("after the redelivery fw-2 went %v, want %v", p, want)
	}

	rollBackFirmware(t, send, jobs, sl, s)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.mismatch) > 0 {
		t.Errorf("seqs reused with other content after the rollback: %v", s.mismatch[:min(3, len(s.mismatch))])
	}
	t.Logf("%d events stored; %d seqs lost once on the wire and %d captured while the fleet lost batches, delivered after the switch; %d resent duplicates",
		len(s.events), len(s.dropped), spooled, s.dups)
}

// buildFirmwareWorld builds edge-agent 1.0.0 and 2.0.0 and edge-launcher.
func buildFirmwareWorld(t *testing.T) (v1, v2, launcherBin string) {
	build := t.TempDir()
	var wg sync.WaitGroup
	wg.Go(func() { v1 = buildStamped(t, build, "1.0.0") })
	wg.Go(func() { v2 = buildStamped(t, build, "2.0.0") })
	wg.Go(func() {
		launcherBin = filepath.Join(build, "edge-launcher")
		if b, err := exec.Command("go", "build", "-o", launcherBin, "edgefleet/firmware/cmd/edge-launcher").CombinedOutput(); err != nil {
			t.Errorf("go build edge-launcher: %v\n%s", err, b)
		}
	})
	wg.Wait()
	return v1, v2, launcherBin
}

// signBundle reads the binary at path and signs its bundle manifest.
func signBundle(t *testing.T, signer *firmwaretest.Signer, path string) (bin []byte, m *manifest.Manifest, payload, sig []byte) {
	t.Helper()
	bin, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m, err = bundle.ForBinary(strings.NewReader(string(bin)), int64(len(bin)), "edge-agent", "", 1, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if m.Version != "2.0.0" {
		t.Fatalf("manifest version %q, want the stamped 2.0.0", m.Version)
	}
	payload, sig, err = manifest.Sign(signer.Priv, signer.KeyID, m)
	if err != nil {
		t.Fatal(err)
	}
	return bin, m, payload, sig
}

// startLauncher runs edge-launcher on data with the agent's config, until
// the end of the test; its log and the agents' go to the returned buffer.
// It seeds data with the agent v1 first.
func startLauncher(t *testing.T, launcherBin, v1, data, cfg string) *lockedBuffer {
	if out, err := exec.Command(launcherBin, "seed", "--data", data, v1).CombinedOutput(); err != nil {
		t.Fatalf("edge-launcher seed: %v\n%s", err, out)
	}
	cmd := exec.Command(launcherBin, "run", "--data", data, "--stop-timeout", "5s", "--", "run", "--config", cfg)
	logs := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("launcher and agent log (last 6000 bytes):\n%s", tail(logs.String(), 6000))
		}
	})
	return logs
}

// checkLostDelivered: every seq the fleet lost arrives, from 2.0.0 reading
// the spool 1.0.0 wrote, after the install; none is reused, none missing.
// It returns how many events were captured while the fleet lost batches.
func checkLostDelivered(t *testing.T, s *store, dropFrom, installed time.Time) (spooled int) {
	t.Helper()
	const patience = 40 * time.Second
	resumed := time.Now()
	testutil.WaitFor(t, "the lost detections and new ones delivered", patience, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for seq := range s.dropped {
			if _, ok := s.events[seq]; !ok {
				return false
			}
		}
		var newest int64
		for _, e := range s.events {
			newest = max(newest, e.Time)
		}
		return newest > resumed.UnixMicro()
	})
	s.mu.Lock()
	if len(s.mismatch) > 0 {
		t.Errorf("seqs reused with other content: %v", s.mismatch[:min(3, len(s.mismatch))])
	}
	var top uint64
	for seq := range s.events {
		top = max(top, seq)
	}
	for seq := uint64(1); seq <= top; seq++ {
		if _, ok := s.events[seq]; !ok {
			t.Errorf("seq %d missing of 1..%d", seq, top)
			break
		}
	}
	// 1.0.0 never had the lost seqs acknowledged (its sender waits 30s
	// before sending again), so they reached the store from the spool,
	// through 2.0.0, after the switch.
	for seq := range s.dropped {
		if at := s.storedAt[seq]; at.Before(installed) {
			t.Errorf("lost seq %d stored at %v, before 2.0.0 was installed at %v", seq, at, installed)
		}
	}
	spooled = 0 // captured while the fleet lost batches
	for _, e := range s.events {
		if e.Time >= dropFrom.UnixMicro() && e.Time < installed.UnixMicro() {
			spooled++
		}
	}
	s.mu.Unlock()
	return spooled
}

// checkCommitted: slot b runs 2.0.0, committed, from job fw-2.
func checkCommitted(t *testing.T, data string) *slot.Slots {
	t.Helper()
	sl, err := slot.Open(data)
	if err != nil {
		t.Fatal(err)
	}
	// The agent reports an outcome, then marks it reported: the fleet can
	// hear of it a moment before the state file says so.
	var st slot.State
	testutil.WaitFor(t, "fw-2's outcome marked reported", 20*time.Second, func() bool {
		st, err = sl.State()
		return err == nil && len(st.Outcomes) == 0
	})
	if st.Active != slot.B || st.Trial || !st.Slots[slot.B].Committed || st.Slots[slot.B].Version != "2.0.0" ||
		st.Slots[slot.B].JobID != "fw-2" || st.Previous != slot.A || len(st.Outcomes) != 0 {
		t.Errorf("slot state %+v, want b committed with 2.0.0 from fw-2, a previous, no outcome pending", st)
	}
	return sl
}

func agentOnline(jobs *jobWatch, version string) bool {
	st, ok := jobs.lastState()
	return ok && st.Online && st.AgentVersion == version
}

// rollBackFirmware: the operator rolls fw-2 back; 2.0.0 reverts to slot a
// and exits for the launcher to start 1.0.0 again, on the same spool.
func rollBackFirmware(t *testing.T, send func(api.Command), jobs *jobWatch, sl *slot.Slots, s *store) {
	t.Helper()
	const patience = 40 * time.Second
	online := func(version string) func() bool { return func() bool { return agentOnline(jobs, version) } }
	send(api.Command{JobID: "fw-2-rb", Kind: api.CommandRollback})
	testutil.WaitFor(t, "fw-2-rb to end", patience, func() bool { _, ok := jobs.final("fw-2-rb"); return ok })
	if st, _ := jobs.final("fw-2-rb"); st.State != api.JobSucceeded {
		t.Errorf("fw-2-rb ended %+v, want succeeded", st)
	}
	back := time.Now()
	testutil.WaitFor(t, "1.0.0 online again", patience, online("1.0.0"))
	if st, err := sl.State(); err != nil || st.Active != slot.A || st.Trial {
		t.Errorf("slot state %+v (%v), want a active, no trial", st, err)
	}
	testutil.WaitFor(t, "detections from 1.0.0 after the rollback", patience, func() bool { _, newest := s.newest(); return newest.After(back) })
}

// firmwareConfig writes the agent's config for TestRunFirmwareUpdate.
func firmwareConfig(t *testing.T, dir, device, broker, keyDir, artifactURL, data string) string {
	return writeConfig(t, dir, fmt.Sprintf(strings.Replace(agentYAML, "box-e2e", device, 1),
		modeltest.Path(t, "models", "yolov8n_int8.tflite"), modeltest.Path(t, "images"), filepath.Join(dir, "spool.db"),
		fmt.Sprintf(`fleet:
  broker: %s
  password: pw
update:
  keys: [%s]
  artifact_url: %s
firmware:
  data_dir: %s
  max_boots: 2
`, broker, keyDir, artifactURL, data)))
}
