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
	"sync"
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
	bins := map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, v := range []struct{ version, mode string }{
		{"1.0.0", firmwaretest.Good}, {"2.0.0", firmwaretest.Good},
		{"3.0.0-crash", firmwaretest.Crash}, {"4.0.0-hang", firmwaretest.Hang},
	} {
		wg.Go(func() {
			p := firmwaretest.Build(t, build, v.version, v.mode)
			mu.Lock()
			bins[v.version] = p
			mu.Unlock()
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, nil))

	// The fleet: artifact store signing firmware manifests, served to
	// authenticated devices, and the rollout engine.
	pub, priv, _ := ed25519.GenerateKey(nil)
	keys := manifest.KeySet{}
	keyID := keys.Add(pub)
	store, err := artifact.Open(filepath.Join(fleet, "artifacts"), artifact.Options{Seal: artifact.Signer(priv, keyID)})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	auth := artifact.AuthFunc(func(_ context.Context, id string, tok []byte) error {
		if id != "cam-1" || string(tok) != "s3cret" {
			return errors.New("bad credentials")
		}
		return nil
	})
	srv := httptest.NewServer(artifact.NewHandler(store, auth, log))
	defer srv.Close()
	box := inbox{filepath.Join(data, "inbox")}
	os.MkdirAll(box.dir, 0o755)
	eng, err := rollout.Open(filepath.Join(fleet, "rollouts.db"), rollout.Options{Devices: oneDevice{}, Dispatcher: box, Tick: 50 * time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	go eng.Run(ctx)

	// The device: the fleet's public key pinned, slot A seeded with 1.0.0,
	// the launcher running.
	pubPEM, _ := manifest.EncodePublicKey(pub)
	os.MkdirAll(filepath.Join(data, "keys"), 0o755)
	os.WriteFile(filepath.Join(data, "keys", "fleet.pub"), pubPEM, 0o644)
	s, err := slot.Open(data)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(bins["1.0.0"])
	err = s.Seed(ctx, f, "1.0.0")
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
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

	// fleetd's ingest: job reports from the device's outbox to the engine.
	go func() {
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
			time.Sleep(20 * time.Millisecond)
		}
	}()

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
