package launcher_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"edgefleet/firmware/firmwaretest"
	"edgefleet/firmware/launcher"
	"edgefleet/firmware/slot"
	"edgefleet/fleet/api"
	"edgefleet/internal/testutil"
)

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestTrials runs real agent builds under the launcher: a good update
// commits; one that exits at start and one that never reports healthy are
// rolled back to the previous slot, and the version that runs next reports
// each outcome with its reason; the spool and the model in the data
// directory survive every switch.
func TestTrials(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("linux only")
	}
	bins := firmwaretest.BuildAll(t, t.TempDir())
	if t.Failed() {
		return
	}

	data := t.TempDir()
	signer := firmwaretest.NewSigner(t)
	signer.WritePublicKey(t, filepath.Join(data, "keys"))
	model := []byte("the current model, outside the slots")
	os.MkdirAll(filepath.Join(data, "models"), 0o755)
	os.MkdirAll(filepath.Join(data, "inbox"), 0o755)
	if err := os.WriteFile(filepath.Join(data, "models", "current.tflite"), model, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := slot.Open(data)
	if err != nil {
		t.Fatal(err)
	}
	firmwaretest.Seed(t, s, bins["1.0.0"], "1.0.0")

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- launcher.Run(ctx, s, launcher.Options{
			Stdout: testWriter{t}, Stderr: testWriter{t}, Env: []string{"FAKEAGENT_DEVICE=cam-1"},
			Poll: 20 * time.Millisecond, RestartDelay: 20 * time.Millisecond, MaxRestartDelay: 200 * time.Millisecond, StopTimeout: 300 * time.Millisecond,
			Log: slog.New(slog.NewTextHandler(testWriter{t}, nil)),
		})
	}()
	defer func() {
		cancel()
		<-done
	}()

	// The running agent picks a bundle up from its inbox, as it would take
	// a firmware_update job, installs it and exits to switch.
	push := func(job, version string) {
		t.Helper()
		tmp := filepath.Join(data, "inbox", job+".tmp")
		if err := os.WriteFile(tmp, signer.Bundle(t, bins[version]), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(data, "inbox", job+".bundle")); err != nil {
			t.Fatal(err)
		}
	}

	push("job-2", "2.0.0")
	outcome := func(job string) (api.JobStatus, bool) { return firmwaretest.Final(t, data, job) }
	testutil.WaitFor(t, "job-2 to commit", 20*time.Second, func() bool { _, ok := outcome("job-2"); return ok })
	o, _ := outcome("job-2")
	st, _ := s.State()
	if o.State != api.JobSucceeded || st.Active != slot.B || st.Trial || st.Slots[slot.B].Version != "2.0.0" {
		t.Fatalf("good update: outcome %+v, state %+v", o, st)
	}

	push("job-3", "3.0.0-crash")
	testutil.WaitFor(t, "job-3 to roll back", 20*time.Second, func() bool { _, ok := outcome("job-3"); return ok })
	o, _ = outcome("job-3")
	if o.State != api.JobRolledBack || !strings.Contains(o.Reason, "exited with status 3") || !strings.Contains(o.Reason, "started 2 times") {
		t.Errorf("crashing update: %+v", o)
	}
	testutil.WaitFor(t, "2.0.0 back in slot b", 10*time.Second, func() bool {
		st, _ := s.State()
		return st.Active == slot.B && !st.Trial
	})

	push("job-4", "4.0.0-hang")
	testutil.WaitFor(t, "job-4 to roll back", 20*time.Second, func() bool { _, ok := outcome("job-4"); return ok })
	o, _ = outcome("job-4")
	if o.State != api.JobRolledBack || !strings.Contains(o.Reason, "not healthy within 2s") {
		t.Errorf("hanging update: %+v", o)
	}
	// 2.0.0 runs again: its start after the rollback spools a fourth event.
	wantLabels := []string{"1.0.0@a", "2.0.0@b", "2.0.0@b", "4.0.0-hang@a", "2.0.0@b"}
	var labels []string
	testutil.WaitFor(t, "2.0.0 to run again", 10*time.Second, func() bool {
		st, _ := s.State()
		if st.Active != slot.B || st.Trial {
			return false
		}
		labels = firmwaretest.Journal(t, data)
		return len(labels) >= len(wantLabels)
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("launcher: %v", err)
	}
	done <- nil

	if strings.Join(labels, " ") != strings.Join(wantLabels, " ") {
		t.Errorf("spooled events %v, want %v", labels, wantLabels)
	}
	if got, _ := os.ReadFile(filepath.Join(data, "models", "current.tflite")); !bytes.Equal(got, model) {
		t.Errorf("model changed across switches: %q", got)
	}
	if p, _ := s.Pending(); len(p) != 0 {
		t.Errorf("outcomes left unreported: %+v", p)
	}
	var finals []string
	for _, js := range firmwaretest.Outbox(t, data) {
		if err := js.Validate(); err != nil {
			t.Errorf("job status %+v: %v", js, err)
		}
		finals = append(finals, js.JobID+":"+js.State)
	}
	if want := "job-2:succeeded job-3:rolled_back job-4:rolled_back"; strings.Join(finals, " ") != want {
		t.Errorf("reports %v, want %s", finals, want)
	}
}
