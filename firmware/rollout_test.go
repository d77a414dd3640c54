package firmware_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http/httptest"
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
	"edgefleet/fleet/artifact"
	"edgefleet/fleet/rollout"
	"edgefleet/internal/testutil"
	"edgefleet/models/manifest"
)

type oneDevice struct{}

func (oneDevice) Select(context.Context, map[string]string) ([]rollout.Device, error) {
	return []rollout.Device{{ID: "cam-1", Online: true, AgentVersion: "1.0.0"}}, nil
}

// inbox delivers commands to the device as files in its data dir (standing
// in for the MQTT commands topic).
type inbox struct{ dir string }

func (b inbox) Dispatch(_ context.Context, dev string, c api.Command) error {
	if dev != "cam-1" {
		return errors.New("unknown device")
	}
	data, err := json.Marshal(c)
	if err != nil {
		return err
	}
	tmp := filepath.Join(b.dir, "."+c.JobID)
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(b.dir, c.JobID+".cmd"))
}

func (b inbox) empty() bool {
	m, _ := filepath.Glob(filepath.Join(b.dir, "*.cmd"))
	return len(m) == 0
}

// TestRollout sends agent builds to a real agent process through the fleet's
// rollout engine and artifact store: the good build commits and the rollout
// completes; the build that exits at start and the one that never reports
// healthy are rolled back by the launcher and reported rolled_back with the
// reason, which aborts their rollouts; an operator rollback of the good
// rollout takes the device back to the first version. The spool survives
// every switch, in both directions. MQTT is replaced by files in the data dir (inbox/outbox).
func TestRollout(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("linux only")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	build, data, fleet := t.TempDir(), t.TempDir(), t.TempDir()
	bins := firmwaretest.BuildAll(t, build)
	if t.Failed() {
		return
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, nil))

	box := inbox{filepath.Join(data, "inbox")}
	os.MkdirAll(box.dir, 0o755)
	fl := startFleet(ctx, t, fleet, box, log)
	store, srv, eng, pub := fl.store, fl.srv, fl.eng, fl.pub

	// The device: the fleet's public key pinned, slot A seeded with 1.0.0,
	// the launcher running.
	pubPEM, _ := manifest.EncodePublicKey(pub)
	os.MkdirAll(filepath.Join(data, "keys"), 0o755)
	os.WriteFile(filepath.Join(data, "keys", "fleet.pub"), pubPEM, 0o644)
	s, err := slot.Open(data)
	if err != nil {
		t.Fatal(err)
	}
	firmwaretest.Seed(t, s, bins["1.0.0"], "1.0.0")
	lctx, lcancel := context.WithCancel(ctx)
	ldone := make(chan error, 1)
	go func() {
		ldone <- launcher.Run(lctx, s, launcher.Options{
			Env:    []string{"FAKEAGENT_DEVICE=cam-1", "FAKEAGENT_TOKEN=s3cret"},
			Stdout: testWriter{t}, Stderr: testWriter{t}, Log: log,
			Poll: 20 * time.Millisecond, RestartDelay: 20 * time.Millisecond, MaxRestartDelay: 200 * time.Millisecond, StopTimeout: 300 * time.Millisecond,
		})
	}()
	defer func() { lcancel(); <-ldone }()

	go ingestOutbox(ctx, t, data, eng)

	push := func(version string) rollout.Summary {
		t.Helper()
		f, err := os.Open(bins[version])
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		m, err := store.Put(ctx, f, artifact.Meta{Kind: manifest.KindFirmware, Name: "edge-agent", Version: version, OS: "linux", Arch: runtime.GOARCH})
		if err != nil {
			t.Fatal(err)
		}
		sum, err := eng.Create(ctx, rollout.Spec{
			Artifact: api.Artifact{Kind: m.Kind, Name: m.Name, Version: m.Version, SHA256: m.SHA256, Size: m.Size,
				URL: srv.URL + artifact.URL(m.SHA256), Manifest: m.Manifest, Sig: m.Sig, KeyID: m.KeyID},
			Canary: 1, Waves: []float64{100}, HealthWindow: 2 * time.Second, JobTimeout: time.Minute,
		})
		if err != nil {
			t.Fatal(err)
		}
		return sum
	}
	final := func(id string) *rollout.Rollout {
		t.Helper()
		var r *rollout.Rollout
		testutil.WaitFor(t, "rollout "+id+" to end", 30*time.Second, func() bool {
			r, _ = eng.Get(id)
			return r != nil && r.State.Final()
		})
		return r
	}
	running := func(version string) {
		t.Helper()
		testutil.WaitFor(t, version+" committed and running", 20*time.Second, func() bool {
			st, err := s.State()
			return err == nil && !st.Trial && st.Slots[st.Active].Version == version && box.empty()
		})
	}

	r := final(push("2.0.0").ID)
	if r.State != rollout.StateCompleted || r.Jobs[0].State != api.JobSucceeded {
		t.Fatalf("good build: rollout %s (%s), job %+v", r.State, r.Reason, r.Jobs[0])
	}
	running("2.0.0")

	// The operator rolls the good rollout back: the device returns to 1.0.0.
	if _, err := eng.Rollback(r.ID); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the rollback to be confirmed", 20*time.Second, func() bool {
		r, _ := eng.Get(r.ID)
		return r.Jobs[0].Rollback == api.JobSucceeded
	})
	running("1.0.0")

	r = final(push("3.0.0-crash").ID)
	if r.State != rollout.StateAborted || r.Jobs[0].State != api.JobRolledBack || !strings.Contains(r.Jobs[0].Reason, "exited with status 3") {
		t.Errorf("crashing build: rollout %s (%s), job %+v", r.State, r.Reason, r.Jobs[0])
	}
	running("1.0.0")

	r = final(push("4.0.0-hang").ID)
	if r.State != rollout.StateAborted || r.Jobs[0].State != api.JobRolledBack || !strings.Contains(r.Jobs[0].Reason, "not healthy within 2s") {
		t.Errorf("hanging build: rollout %s (%s), job %+v", r.State, r.Reason, r.Jobs[0])
	}
	running("1.0.0")

	lcancel()
	if err := <-ldone; err != nil {
		t.Fatal(err)
	}
	ldone <- nil
	labels := firmwaretest.Journal(t, data)
	want := "1.0.0@a 2.0.0@b 1.0.0@a 1.0.0@a 4.0.0-hang@b 1.0.0@a"
	if got := strings.Join(labels, " "); got != want {
		t.Errorf("spooled %s, want %s", got, want)
	}
}

// ingestOutbox is fleetd's ingest: job reports from the device's outbox to
// the engine, until ctx is done.
func ingestOutbox(ctx context.Context, t *testing.T, data string, eng *rollout.Engine) {
	seen := map[string]bool{}
	for ctx.Err() == nil {
		files, _ := filepath.Glob(filepath.Join(data, "outbox", "*.json"))
		for _, p := range files {
			if seen[p] {
				continue
			}
			seen[p] = true
			b, err := os.ReadFile(p)
			var st api.JobStatus
			if err == nil {
				err = api.Decode(b, &st)
			}
			if err == nil {
				err = eng.HandleJobStatus(ctx, st)
			}
			if err != nil {
				t.Errorf("ingest %s: %v", p, err)
			}
		}
		select { // the outbox is polled, as a file drop is
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// testFleet is the fleet side of TestRollout.
type testFleet struct {
	store *artifact.Disk
	srv   *httptest.Server
	eng   *rollout.Engine
	pub   ed25519.PublicKey
}

// startFleet starts the fleet: an artifact store signing firmware
// manifests, served to authenticated devices, and the rollout engine
// dispatching to box; all closed at the end of the test.
func startFleet(ctx context.Context, t *testing.T, dir string, box inbox, log *slog.Logger) testFleet {
	fleet := dir
	pub, priv, _ := ed25519.GenerateKey(nil)
	keys := manifest.KeySet{}
	keyID := keys.Add(pub)
	store, err := artifact.Open(filepath.Join(fleet, "artifacts"), artifact.Options{Seal: artifact.Signer(priv, keyID)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	auth := artifact.AuthFunc(func(_ context.Context, id string, tok []byte) error {
		if id != "cam-1" || string(tok) != "s3cret" {
			return errors.New("bad credentials")
		}
		return nil
	})
	srv := httptest.NewServer(artifact.NewHandler(store, auth, log))
	t.Cleanup(srv.Close)
	eng, err := rollout.Open(filepath.Join(fleet, "rollouts.db"), rollout.Options{Devices: oneDevice{}, Dispatcher: box, Tick: 50 * time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	go eng.Run(ctx)
	return testFleet{store: store, srv: srv, eng: eng, pub: pub}
}
