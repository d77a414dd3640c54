package update

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"edgefleet/fleet/api"
	"edgefleet/internal/testutil"
	"edgefleet/models/manifest"
	"edgefleet/models/modeltest"
)

const jobTimeout = 30 * time.Second

func readState(t *testing.T, dir string) *state {
	t.Helper()
	s, err := loadState(filepath.Join(dir, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestGoodModelSwitches(t *testing.T) {
	old, next := tinyE2E(0.9), tinyE2E(0.8)
	f := newFixture(t, old, nil)
	cam := startCamera(t, f.srv, 2*time.Millisecond)
	f.start()
	c := f.signed("job-good", next, "2")
	f.handle(c)
	end := f.rep.wait(t, c.JobID, jobTimeout)
	if end.State != api.JobSucceeded {
		t.Fatalf("final %s (%s), want succeeded", end.State, end.Reason)
	}
	want := []string{api.JobQueued, api.JobDownloading, api.JobVerifying, api.JobInstalling, api.JobHealthCheck, api.JobSucceeded}
	if got := f.rep.states(c.JobID); !slices.Equal(got, want) {
		t.Errorf("states %v, want %v", got, want)
	}
	// Progress reports climb to 1.
	var last float64
	for _, s := range f.rep.of(c.JobID) {
		if s.DeviceID != "cam-box-1" || s.Time == 0 {
			t.Errorf("status %+v lacks device id or time", s)
		}
		if s.State == api.JobDownloading {
			if s.Progress < last || s.Progress > 1 {
				t.Errorf("progress %v after %v", s.Progress, last)
			}
			last = s.Progress
		}
	}
	if last != 1 {
		t.Errorf("last progress %v, want 1", last)
	}
	if got := f.serving(); got != sum256(next) {
		t.Errorf("serving %s, want the new model", short(got))
	}
	st := readState(t, f.dir)
	if st.Current == nil || st.Current.SHA256 != sum256(next) || st.Current.Version != "2" {
		t.Errorf("state current %+v, want the new model", st.Current)
	}
	if st.Previous == nil || st.Previous.SHA256 != sum256(old) {
		t.Errorf("state previous %+v, want the old model", st.Previous)
	}
	if st.Trial != nil || len(st.Queue) != 0 {
		t.Errorf("state trial %+v queue %v, want none", st.Trial, st.Queue)
	}
	files := f.modelFiles()
	slices.Sort(files)
	wantFiles := []string{sum256(old) + ".tflite", sum256(next) + ".tflite"}
	slices.Sort(wantFiles)
	if !slices.Equal(files, wantFiles) {
		t.Errorf("models/ holds %v, want %v", files, wantFiles)
	}
	if left, _ := filepath.Glob(filepath.Join(f.dir, "staging", "*")); len(left) != 0 {
		t.Errorf("staging not empty: %v", left)
	}
	if cam.frames.Load() == 0 || cam.errs.Load() != 0 {
		t.Errorf("camera: %d frames, %d errors", cam.frames.Load(), cam.errs.Load())
	}
	// The agent restarting now starts on the new model.
	f.stop()
	f.open()
	if m, path, ok := f.x.Current(); !ok || m.SHA256 != sum256(next) || filepath.Base(path) != sum256(next)+".tflite" {
		t.Errorf("after restart Current = %+v %s %v", m, path, ok)
	}
}

// TestRealModelSwitches swaps from a tiny model to a real YOLO26n model.
func TestRealModelSwitches(t *testing.T) {
	if testing.Short() {
		t.Skip("real model inference is slow under -race")
	}
	data, err := os.ReadFile(modeltest.Path(t, "models", "yolo26n_int8_320_e2e.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, tinyE2E(0.9), func(o *Options) {
		o.HealthWindow = 8 * time.Second // a frame takes seconds under -race
		o.SmokeBudget = 60 * time.Second
		// A 320×320 real model is much slower than the tiny one and finds
		// nothing on a black frame: judge errors and frames only.
		o.Policy = HealthPolicy{MaxLatencyRatio: 1e9, MinDetectionRatio: -1}
		// On a loaded machine under -race one frame of it can take longer
		// than any window: the window's end waits for its first frame.
		o.Health = &frameGate{Health: o.Health}
	})
	cam := startCamera(t, f.srv, 20*time.Millisecond)
	f.start()
	c := f.signed("job-real", data, "26")
	f.handle(c)
	end := f.rep.wait(t, c.JobID, 2*time.Minute)
	if end.State != api.JobSucceeded {
		t.Fatalf("final %s (%s), want succeeded", end.State, end.Reason)
	}
	if got := f.serving(); got != sum256(data) {
		t.Errorf("serving %s, want yolo26n", short(got))
	}
	served := f.srv.Manifest()
	if n := served.Outputs[0].Shape; !slices.Equal(n, []int{1, 300, 6}) {
		t.Errorf("served model output %v", n)
	}
	// The manifest names no labels: the detector gets those embedded in the model.
	if len(served.Labels) != 80 || served.Labels[0] != "person" {
		t.Errorf("served labels %d (%.3q), want the 80 embedded COCO names", len(served.Labels), served.Labels)
	}
	if cam.errs.Load() != 0 {
		t.Errorf("camera errors: %d", cam.errs.Load())
	}
}

// frameGate is a Health whose second Mark (the end of the first health
// window) waits until the window has a frame: the test is about the swap,
// not about how fast a real model runs under -race.
type frameGate struct {
	Health
	marks atomic.Int32
}

func (g *frameGate) Mark() Stats {
	if g.marks.Add(1) == 2 {
		for deadline := time.Now().Add(2 * time.Minute); g.Peek().Frames == 0 && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond) // polling a condition, not standing in for it
		}
	}
	return g.Health.Mark()
}

// TestRefused sends artifacts that must be refused; each fails with a
// precise reason, and the old model serves throughout.
func TestRefused(t *testing.T) {
	good := tinyE2E(0.8)
	_, strangerPriv, _ := ed25519.GenerateKey(rand.Reader)
	cases := []struct {
		name   string
		data   []byte // the model the manifest is made for
		mutate func(f *fixture, c *api.Command)
		reason string // substring of the reason
	}{
		{"corrupted download", good, func(f *fixture, c *api.Command) {
			bad := slices.Clone(good)
			bad[len(bad)/2] ^= 0xff
			f.art.put(c.Artifact.SHA256, bad)
		}, "manifest: artifact does not match: sha256 "},
		{"truncated", good, func(f *fixture, c *api.Command) {
			f.art.put(c.Artifact.SHA256, good[:len(good)-100])
		}, "update: truncated artifact: the server sent " + strconv.Itoa(len(good)-100) + " of the signed " + strconv.Itoa(len(good)) + " bytes"},
		{"too large", good, func(f *fixture, c *api.Command) {
			f.art.put(c.Artifact.SHA256, append(slices.Clone(good), make([]byte, 10)...))
		}, "update: artifact larger than its signed size"},
		{"unsigned", good, func(f *fixture, c *api.Command) {
			c.Artifact.Sig = nil
		}, "manifest: unsigned: no signature"},
		{"no manifest", good, func(f *fixture, c *api.Command) {
			c.Artifact.Manifest, c.Artifact.Sig, c.Artifact.KeyID = nil, nil, ""
		}, "manifest: unsigned: no manifest"},
		{"unknown key", good, func(f *fixture, c *api.Command) {
			m, _ := manifest.Parse(c.Artifact.Manifest)
			pub := strangerPriv.Public().(ed25519.PublicKey)
			c.Artifact.Manifest, c.Artifact.Sig, _ = manifest.Sign(strangerPriv, manifest.KeyID(pub), m)
			c.Artifact.KeyID = manifest.KeyID(pub)
		}, "manifest: signed by an unknown key: key id \""},
		{"bad signature", good, func(f *fixture, c *api.Command) {
			// The pinned key id, but another key's signature.
			m, _ := manifest.Parse(c.Artifact.Manifest)
			_, c.Artifact.Sig, _ = manifest.Sign(strangerPriv, c.Artifact.KeyID, m)
		}, "manifest: bad signature: key \""},
		{"command differs from manifest", good, func(f *fixture, c *api.Command) {
			c.Artifact.Size++
		}, "manifest: artifact does not match: the command names "},
		{"outputs do not fit", tinyFlat(), nil, "update: model does not fit the pipeline: yolo: output \"embedding\" shape [1 3072]: unsupported output tensor (not a YOLO detection head)"},
		{"not found", good, func(f *fixture, c *api.Command) {
			c.Artifact.URL = f.art.srv.URL + "/artifacts/" + strings.Repeat("0", 64)
		}, "update: http error: get "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			old := tinyE2E(0.9)
			f := newFixture(t, old, nil)
			cam := startCamera(t, f.srv, 2*time.Millisecond)
			f.start()
			c := f.signed("job-1", tc.data, "2")
			if tc.mutate != nil {
				tc.mutate(f, &c)
			}
			f.handle(c)
			end := f.rep.wait(t, c.JobID, jobTimeout)
			if end.State != api.JobFailed || !strings.Contains(end.Reason, tc.reason) {
				t.Fatalf("final %s (%q), want failed with %q", end.State, end.Reason, tc.reason)
			}
			if slices.Contains(f.rep.states(c.JobID), api.JobInstalling) {
				t.Errorf("states %v: a refused artifact reached installing", f.rep.states(c.JobID))
			}
			if got := f.serving(); got != sum256(old) {
				t.Errorf("serving %s, want the old model", short(got))
			}
			if files := f.modelFiles(); !slices.Equal(files, []string{sum256(old) + ".tflite"}) {
				t.Errorf("models/ holds %v, want only the old model", files)
			}
			if left, _ := filepath.Glob(filepath.Join(f.dir, "staging", "*")); len(left) != 0 {
				t.Errorf("staging not empty: %v", left)
			}
			st := readState(t, f.dir)
			if st.Current == nil || st.Current.SHA256 != sum256(old) || st.Trial != nil {
				t.Errorf("state current %+v trial %+v", st.Current, st.Trial)
			}
			if j, _ := f.x.Job(c.JobID); j.State != api.JobFailed || j.Reason != end.Reason {
				t.Errorf("recorded %+v", j)
			}
			// A refusal can come before the camera's first frame on a busy
			// machine: the old model must still serve frames after it.
			testutil.WaitFor(t, "a frame served by the old model", 10*time.Second, func() bool { return cam.frames.Load() > 0 })
			if cam.errs.Load() != 0 {
				t.Errorf("camera: %d frames, %d errors", cam.frames.Load(), cam.errs.Load())
			}
		})
	}
}

func TestUnhealthyRollsBack(t *testing.T) {
	old := tinyE2E(0.9)
	f := newFixture(t, old, nil)
	cam := startCamera(t, f.srv, 2*time.Millisecond)
	testutil.Eventually(t, "a baseline window with detections", func() bool {
		st := f.srv.Peek()
		return st.Frames >= 5 && st.Detections > 0
	})
	f.start()
	c := f.signed("job-blind", tinyE2E(0), "2") // loads, runs, finds nothing
	f.handle(c)
	end := f.rep.wait(t, c.JobID, jobTimeout)
	const reason = "update: unhealthy: detection rate collapsed to 0 per frame, was 1 before (below 50%)"
	if end.State != api.JobRolledBack || end.Reason != reason {
		t.Fatalf("final %s (%q), want rolled_back (%q)", end.State, end.Reason, reason)
	}
	want := []string{api.JobQueued, api.JobDownloading, api.JobVerifying, api.JobInstalling, api.JobHealthCheck, api.JobRolledBack}
	if got := f.rep.states(c.JobID); !slices.Equal(got, want) {
		t.Errorf("states %v, want %v", got, want)
	}
	if got := f.serving(); got != sum256(old) {
		t.Errorf("serving %s, want the old model back", short(got))
	}
	st := readState(t, f.dir)
	if st.Current == nil || st.Current.SHA256 != sum256(old) || st.Trial != nil || st.Previous != nil {
		t.Errorf("state current %+v previous %+v trial %+v", st.Current, st.Previous, st.Trial)
	}
	if files := f.modelFiles(); !slices.Equal(files, []string{sum256(old) + ".tflite"}) {
		t.Errorf("models/ holds %v", files)
	}
	if cam.errs.Load() != 0 {
		t.Errorf("camera errors: %d", cam.errs.Load())
	}
	// The old model detects again after the rollback.
	before := f.srv.Peek()
	testutil.Eventually(t, "detections after the rollback", func() bool { return f.srv.Peek().Detections > before.Detections })
}

// TestResumeAfterDrop: the server drops the connection mid-body; the next
// request asks for the rest with a Range, and the bytes add up.
func TestResumeAfterDrop(t *testing.T) {
	data := tinyE2E(0.8)
	f := newFixture(t, tinyE2E(0.9), nil)
	startCamera(t, f.srv, 2*time.Millisecond)
	f.art.dropAfter = int64(len(data)) / 2
	f.start()
	c := f.signed("job-drop", data, "2")
	f.handle(c)
	if end := f.rep.wait(t, c.JobID, jobTimeout); end.State != api.JobSucceeded {
		t.Fatalf("final %s (%s)", end.State, end.Reason)
	}
	reqs := f.art.requests()
	if len(reqs) != 2 {
		t.Fatalf("requests %+v, want 2", reqs)
	}
	half := int64(len(data)) / 2
	if reqs[0].Range != "" || reqs[0].Bytes != half {
		t.Errorf("first request %+v, want no Range and %d bytes", reqs[0], half)
	}
	wantRange := "bytes=" + strconv.FormatInt(half, 10) + "-"
	if reqs[1].Range != wantRange || reqs[1].IfRange != `"`+sum256(data)+`"` || reqs[1].Status != 206 {
		t.Errorf("second request %+v, want Range %s with If-Range the ETag, 206", reqs[1], wantRange)
	}
	if total := reqs[0].Bytes + reqs[1].Bytes; total != int64(len(data)) {
		t.Errorf("served %d bytes in all, want %d", total, len(data))
	}
}

// TestResumeAcrossRestart: the agent stops mid-download; the next start
// resumes the queued job from the partial file.
func TestResumeAcrossRestart(t *testing.T) {
	data := tinyE2E(0.8)
	f := newFixture(t, tinyE2E(0.9), nil)
	startCamera(t, f.srv, 2*time.Millisecond)
	third := int64(len(data)) / 3
	f.art.stallAfter = third
	f.start()
	c := f.signed("job-restart", data, "2")
	f.handle(c)
	part := filepath.Join(f.dir, "staging", sum256(data)+".part")
	testutil.WaitFor(t, "a third of the download", jobTimeout, func() bool { return fileSize(part) >= third })
	f.stop() // the agent goes away mid-download
	if got := fileSize(part); got != third {
		t.Fatalf("partial file %d bytes, want %d", got, third)
	}
	if st := readState(t, f.dir); len(st.Queue) != 1 || st.Queue[0].JobID != c.JobID {
		t.Fatalf("queue after stop %+v", st.Queue)
	}
	f.open()
	f.start()
	if end := f.rep.wait(t, c.JobID, jobTimeout); end.State != api.JobSucceeded {
		t.Fatalf("final %s (%s)", end.State, end.Reason)
	}
	reqs := f.art.requests()
	if len(reqs) != 2 {
		t.Fatalf("requests %+v, want 2", reqs)
	}
	if want := "bytes=" + strconv.FormatInt(third, 10) + "-"; reqs[1].Range != want {
		t.Errorf("request after restart has Range %q, want %q", reqs[1].Range, want)
	}
	if reqs[0].Bytes+reqs[1].Bytes != int64(len(data)) {
		t.Errorf("served %d + %d bytes, want %d in all", reqs[0].Bytes, reqs[1].Bytes, len(data))
	}
}

// TestRestartDuringTrialRollsBack: the agent dies during the health window;
// on the next start the trial is rolled back and reported.
func TestRestartDuringTrialRollsBack(t *testing.T) {
	old, next := tinyE2E(0.9), tinyE2E(0.8)
	f := newFixture(t, old, func(o *Options) { o.HealthWindow = time.Minute })
	startCamera(t, f.srv, 2*time.Millisecond)
	f.start()
	c := f.signed("job-crash", next, "2")
	f.handle(c)
	f.rep.waitState(t, c.JobID, api.JobHealthCheck, jobTimeout)
	st := readState(t, f.dir)
	if st.Trial == nil || st.Trial.Model.SHA256 != sum256(next) || st.Current.SHA256 != sum256(old) {
		t.Fatalf("during the window: trial %+v current %+v", st.Trial, st.Current)
	}
	f.stop() // as good as a crash: state.json still says trial

	f.open()
	m, path, ok := f.x.Current()
	if !ok || m.SHA256 != sum256(old) {
		t.Fatalf("after restart Current = %+v, want the old model", m)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("last known good file: %v", err)
	}
	st = readState(t, f.dir)
	if st.Trial != nil || len(st.Queue) != 0 {
		t.Errorf("after restart trial %+v queue %+v", st.Trial, st.Queue)
	}
	if files := f.modelFiles(); !slices.Equal(files, []string{sum256(old) + ".tflite"}) {
		t.Errorf("models/ holds %v", files)
	}
	f.start()
	end := f.rep.wait(t, c.JobID, jobTimeout)
	if end.State != api.JobRolledBack || !strings.HasPrefix(end.Reason, "update: agent restarted during the health window: model tiny 2 ") {
		t.Errorf("reported %s (%q)", end.State, end.Reason)
	}
	// The fleet resending the job does not run it again: Handle does not
	// queue it (it decides at once), and reports the final state again.
	f.handle(c)
	if q := readState(t, f.dir).Queue; len(q) != 0 {
		t.Errorf("queued again: %+v", q)
	}
	if n := len(f.art.requests()); n != 1 {
		t.Errorf("%d downloads, want 1", n)
	}
}

func TestDuplicateJobIgnored(t *testing.T) {
	f := newFixture(t, tinyE2E(0.9), nil)
	startCamera(t, f.srv, 2*time.Millisecond)
	c := f.signed("job-dup", tinyE2E(0.8), "2")
	f.handle(c)
	f.handle(c) // while queued
	f.start()
	if end := f.rep.wait(t, c.JobID, jobTimeout); end.State != api.JobSucceeded {
		t.Fatalf("final %s (%s)", end.State, end.Reason)
	}
	f.handle(c) // after it finished
	f.stop()
	f.open()
	f.handle(c) // after a restart
	if q := readState(t, f.dir).Queue; len(q) != 0 {
		t.Errorf("queued again after a restart: %+v", q)
	}
	if n := len(f.art.requests()); n != 1 {
		t.Errorf("%d downloads, want 1", n)
	}
	var queued int
	for _, s := range f.rep.of(c.JobID) {
		if s.State == api.JobQueued {
			queued++
		}
	}
	if queued != 1 {
		t.Errorf("queued reported %d times, want 1", queued)
	}
	// The duplicates after the end are answered with the final state.
	var finals int
	for _, s := range f.rep.of(c.JobID) {
		if s.State == api.JobSucceeded {
			finals++
		}
	}
	if finals != 3 {
		t.Errorf("succeeded reported %d times, want 3 (the end, then once per later duplicate)", finals)
	}
}

// TestRollbackOfJob: "<job>-rb" undoes that job only.
func TestRollbackOfJob(t *testing.T) {
	old, next := tinyE2E(0.9), tinyE2E(0.8)
	f := newFixture(t, old, nil)
	startCamera(t, f.srv, 2*time.Millisecond)
	f.start()
	run := func(c api.Command, want string) api.JobStatus {
		t.Helper()
		f.handle(c)
		end := f.rep.wait(t, c.JobID, jobTimeout)
		if end.State != want {
			t.Fatalf("%s: %s (%s), want %s", c.JobID, end.State, end.Reason, want)
		}
		return end
	}
	// A job that failed installed nothing: its rollback changes nothing.
	bad := f.signed("job-bad", next, "2")
	bad.Artifact.Sig = nil
	run(bad, api.JobFailed)
	run(api.Command{JobID: "job-bad-rb", Kind: api.CommandRollback}, api.JobSucceeded)
	if got := f.serving(); got != sum256(old) {
		t.Errorf("serving %s after a no-op rollback", short(got))
	}
	// A job that committed is undone.
	run(f.signed("job-good", next, "2"), api.JobSucceeded)
	run(api.Command{JobID: "job-good-rb", Kind: api.CommandRollback}, api.JobSucceeded)
	if got := f.serving(); got != sum256(old) {
		t.Errorf("serving %s, want the model before job-good", short(got))
	}
	if st := readState(t, f.dir); st.Current.SHA256 != sum256(old) {
		t.Errorf("current %s", short(st.Current.SHA256))
	}
	// A rollback that arrives before its job cancels it.
	run(api.Command{JobID: "job-late-rb", Kind: api.CommandRollback}, api.JobSucceeded)
	late := f.signed("job-late", tinyE2E(0.7), "3")
	f.handle(late)
	end := f.rep.wait(t, late.JobID, jobTimeout)
	if end.State != api.JobFailed || end.Reason != "cancelled by rollback job job-late-rb" {
		t.Errorf("job after its rollback: %s (%q)", end.State, end.Reason)
	}
	if got := f.serving(); got != sum256(old) {
		t.Errorf("serving %s after a cancelled job", short(got))
	}
}

func TestRollbackCommand(t *testing.T) {
	old, next := tinyE2E(0.9), tinyE2E(0.8)
	f := newFixture(t, old, nil)
	startCamera(t, f.srv, 2*time.Millisecond)
	f.start()
	c := f.signed("job-up", next, "2")
	f.handle(c)
	if end := f.rep.wait(t, c.JobID, jobTimeout); end.State != api.JobSucceeded {
		t.Fatalf("update: %s (%s)", end.State, end.Reason)
	}
	f.handle(api.Command{JobID: "job-back", Kind: api.CommandRollback})
	if end := f.rep.wait(t, "job-back", jobTimeout); end.State != api.JobSucceeded {
		t.Fatalf("rollback: %s (%s)", end.State, end.Reason)
	}
	if got := f.serving(); got != sum256(old) {
		t.Errorf("serving %s after rollback, want the old model", short(got))
	}
	st := readState(t, f.dir)
	if st.Current.SHA256 != sum256(old) || st.Previous.SHA256 != sum256(next) {
		t.Errorf("state current %s previous %s", short(st.Current.SHA256), short(st.Previous.SHA256))
	}
}

func TestRollbackWithoutPrevious(t *testing.T) {
	f := newFixture(t, tinyE2E(0.9), nil)
	f.start()
	f.handle(api.Command{JobID: "job-back", Kind: api.CommandRollback})
	if end := f.rep.wait(t, "job-back", jobTimeout); end.State != api.JobFailed || end.Reason != ErrNoPrevious.Error() {
		t.Errorf("%s (%q)", end.State, end.Reason)
	}
}

func TestDeadlinePassed(t *testing.T) {
	f := newFixture(t, tinyE2E(0.9), nil)
	f.start()
	c := f.signed("job-late", tinyE2E(0.8), "2")
	c.DeadlineMs = time.Now().Add(-time.Minute).UnixMilli()
	f.handle(c)
	end := f.rep.wait(t, c.JobID, jobTimeout)
	if end.State != api.JobFailed || !strings.HasPrefix(end.Reason, "update: job deadline passed: deadline ") {
		t.Errorf("%s (%q)", end.State, end.Reason)
	}
	if n := len(f.art.requests()); n != 0 {
		t.Errorf("%d downloads for a late job", n)
	}
}

func TestRetriesServerErrors(t *testing.T) {
	f := newFixture(t, tinyE2E(0.9), nil)
	startCamera(t, f.srv, 2*time.Millisecond)
	f.art.fail503 = 2
	f.start()
	c := f.signed("job-busy", tinyE2E(0.8), "2")
	f.handle(c)
	if end := f.rep.wait(t, c.JobID, jobTimeout); end.State != api.JobSucceeded {
		t.Fatalf("final %s (%s)", end.State, end.Reason)
	}
	if n := len(f.art.requests()); n != 3 {
		t.Errorf("%d requests, want 3 (two 503s, then the artifact)", n)
	}
}

func TestGivesUpWithoutProgress(t *testing.T) {
	f := newFixture(t, tinyE2E(0.9), func(o *Options) { o.MaxAttempts = 3 })
	f.art.fail503 = 100
	f.start()
	c := f.signed("job-down", tinyE2E(0.8), "2")
	f.handle(c)
	end := f.rep.wait(t, c.JobID, jobTimeout)
	if end.State != api.JobFailed || !strings.Contains(end.Reason, "download: gave up after 3 attempts without progress: update: http error: ") {
		t.Errorf("%s (%q)", end.State, end.Reason)
	}
}

func TestStateFileIsJSON(t *testing.T) {
	f := newFixture(t, tinyE2E(0.9), nil)
	b, err := os.ReadFile(filepath.Join(f.dir, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if v["version"] != float64(stateVersion) || v["current"] == nil {
		t.Errorf("state.json %s", b)
	}
	if err := os.WriteFile(filepath.Join(f.dir, "state.json"), []byte(`{"version":99}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := New(f.opts); err == nil || !strings.Contains(err.Error(), "schema version 99") {
		t.Errorf("New on a future state: %v", err)
	}
}

func TestNewNeedsKeys(t *testing.T) {
	f := newFixture(t, tinyE2E(0.9), nil)
	o := f.opts
	o.Keys, o.Verifier = nil, nil
	if _, err := New(o); err == nil || !strings.Contains(err.Error(), "no pinned keys") {
		t.Errorf("New without keys: %v", err)
	}
}

func TestBadCommand(t *testing.T) {
	f := newFixture(t, tinyE2E(0.9), nil)
	for _, c := range []api.Command{
		{JobID: "", Kind: api.CommandRollback},
		{JobID: "j1", Kind: api.CommandModelUpdate},
		{JobID: "j2", Kind: "reboot"},
	} {
		if err := f.x.Handle(context.Background(), c); err == nil {
			t.Errorf("Handle(%+v) accepted", c)
		}
	}
}

// TestCommitCleansUp: a commit removes the model two updates back and
// partial downloads no queued job needs.
func TestCommitCleansUp(t *testing.T) {
	v1, v2, v3 := tinyE2E(0.9), tinyE2E(0.8), tinyE2E(0.7)
	f := newFixture(t, v1, nil)
	startCamera(t, f.srv, 2*time.Millisecond)
	stale := filepath.Join(f.dir, "staging", strings.Repeat("a", 64)+".part")
	if err := os.WriteFile(stale, []byte("abandoned"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.start()
	for i, data := range [][]byte{v2, v3} {
		c := f.signed("job-"+strconv.Itoa(i), data, strconv.Itoa(i+2))
		f.handle(c)
		if end := f.rep.wait(t, c.JobID, jobTimeout); end.State != api.JobSucceeded {
			t.Fatalf("%s: %s (%s)", c.JobID, end.State, end.Reason)
		}
	}
	files := f.modelFiles()
	slices.Sort(files)
	want := []string{sum256(v2) + ".tflite", sum256(v3) + ".tflite"}
	slices.Sort(want)
	if !slices.Equal(files, want) {
		t.Errorf("models/ holds %v, want %v", files, want)
	}
	if _, err := os.Stat(stale); err == nil {
		t.Errorf("stale partial download kept")
	}
}

func TestAttach(t *testing.T) {
	f := newFixture(t, tinyE2E(0.9), nil)
	o := f.opts
	o.Swapper, o.Health = nil, nil
	x, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := x.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "no Swapper and Health") {
		t.Fatalf("Run without a Swapper: %v", err)
	}
	// The agent opens what Current names, then attaches its slot.
	m, path, ok := x.Current()
	if !ok || m.SHA256 != sum256(f.old) || m.Signed() != nil {
		t.Fatalf("Current = %+v, %v", m, ok)
	}
	if b, err := os.ReadFile(path); err != nil || sum256(b) != m.SHA256 {
		t.Fatalf("current file: %v", err)
	}
	x.Attach(f.srv, f.srv)
	f.x = x
	startCamera(t, f.srv, 2*time.Millisecond)
	f.start()
	c := f.signed("job-attached", tinyE2E(0.8), "2")
	f.handle(c)
	if end := f.rep.wait(t, c.JobID, jobTimeout); end.State != api.JobSucceeded {
		t.Fatalf("final %s (%s)", end.State, end.Reason)
	}
	if m, _, _ := x.Current(); m.Signed() == nil || m.Signed().Version != "2" {
		t.Errorf("current manifest %+v", m.Signed())
	}
}

func TestLabels(t *testing.T) {
	data, err := os.ReadFile(modeltest.Path(t, "models", "yolo11n_full_integer_quant.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	if l := Labels(&manifest.Manifest{Labels: []string{"widget"}}, data); !slices.Equal(l, []string{"widget"}) {
		t.Errorf("manifest labels: %v", l)
	}
	if l := Labels(nil, data); len(l) != 80 || l[0] != "person" {
		t.Errorf("embedded labels: %d %.3q", len(l), l)
	}
	if l := Labels(nil, tinyE2E(1)); l != nil {
		t.Errorf("labels of a model without metadata: %v", l)
	}
}

// TestSameBytesNewName: a job for the bytes already serving, under another
// version, downloads and swaps nothing, but the device takes the new name
// and version (state.json, the Serving's Model) and tells Swapped, so that
// the fleet's view matches the rollout.
func TestSameBytesNewName(t *testing.T) {
	old := tinyE2E(0.9)
	f := newFixture(t, old, nil)
	f.start()
	eng := f.srv.Engine()
	c := f.signed("job-rename", old, "7")
	f.handle(c)
	if end := f.rep.wait(t, c.JobID, jobTimeout); end.State != api.JobSucceeded {
		t.Fatalf("final %s (%s), want succeeded", end.State, end.Reason)
	}
	if got, want := f.rep.states(c.JobID), []string{api.JobQueued, api.JobSucceeded}; !slices.Equal(got, want) {
		t.Errorf("states %v, want %v (no download, no swap)", got, want)
	}
	if n := len(f.art.requests()); n != 0 {
		t.Errorf("%d artifact requests, want none", n)
	}
	if f.srv.Engine() != eng {
		t.Error("the engine was replaced")
	}
	if name, version := f.srv.Model(); name != "tiny" || version != "7" {
		t.Errorf("serving %s %s, want tiny 7", name, version)
	}
	select {
	case <-f.srv.Swapped():
	default:
		t.Error("Swapped not told")
	}
	st := readState(t, f.dir)
	if st.Current == nil || st.Current.SHA256 != sum256(old) || st.Current.Version != "7" || len(st.Current.Manifest) == 0 {
		t.Errorf("state current %+v, want the same bytes as version 7 with its manifest", st.Current)
	}
	// The same job again, and the same bytes and version: nothing changes.
	again := f.signed("job-rename-again", old, "7")
	f.handle(again)
	if end := f.rep.wait(t, again.JobID, jobTimeout); end.State != api.JobSucceeded {
		t.Fatalf("final %s (%s), want succeeded", end.State, end.Reason)
	}
	select {
	case <-f.srv.Swapped():
		t.Error("Swapped told for a job that changed nothing")
	default:
	}
	// A restart serves the adopted name from state.json.
	f.stop()
	f.open()
	if m, _, ok := f.x.Current(); !ok || m.Version != "7" || m.Signed() == nil {
		t.Errorf("after restart Current = %+v %v", m, ok)
	}
}
