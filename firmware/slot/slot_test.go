package slot_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"edgefleet/firmware/bundle"
	"edgefleet/firmware/slot"
	"edgefleet/fleet/api"
	"edgefleet/models/manifest"
)

type fixture struct {
	s    *slot.Slots
	bin  []byte // a real ELF binary for this machine (the test binary)
	priv ed25519.PrivateKey
	id   string
	keys manifest.KeySet
	now  time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("slots hold linux ELF binaries")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, _ := ed25519.GenerateKey(nil)
	ks := manifest.KeySet{}
	f := &fixture{bin: bin, priv: priv, id: ks.Add(pub), keys: ks, now: time.Unix(1764000000, 0)}
	if f.s, err = slot.Open(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	f.s.SetClock(func() time.Time { return f.now })
	if err := f.s.Seed(context.Background(), bytes.NewReader([]byte("\x7fELF v1")), "1.0.0"); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) manifest(payload []byte, version string) *manifest.Manifest {
	sum := sha256.Sum256(payload)
	return &manifest.Manifest{Kind: manifest.KindFirmware, Name: "edge-agent", Version: version,
		SHA256: hex.EncodeToString(sum[:]), Size: int64(len(payload)), CreatedAt: f.now,
		OS: runtime.GOOS, Arch: runtime.GOARCH, MinConfigSchema: 1}
}

func (f *fixture) sign(t *testing.T, m *manifest.Manifest) bundle.Header {
	t.Helper()
	p, sig, err := manifest.Sign(f.priv, f.id, m)
	if err != nil {
		t.Fatal(err)
	}
	return bundle.Header{Manifest: p, Sig: sig, KeyID: f.id}
}

func (f *fixture) install(t *testing.T, version, job string) error {
	t.Helper()
	_, err := f.s.Install(context.Background(), f.sign(t, f.manifest(f.bin, version)), bytes.NewReader(f.bin),
		slot.InstallOptions{Keys: f.keys, JobID: job, Window: time.Minute, MaxBoots: 2})
	return err
}

func TestInstallCommit(t *testing.T) {
	f := newFixture(t)
	if err := f.install(t, "2.0.0", "job-2"); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(f.s.Path(slot.B))
	if err != nil || !bytes.Equal(got, f.bin) {
		t.Fatalf("slot b holds %d bytes (%v), want the %d-byte binary", len(got), err, len(f.bin))
	}
	if fi, _ := os.Stat(f.s.Path(slot.B)); fi.Mode().Perm()&0o100 == 0 {
		t.Errorf("slot binary mode %v is not executable", fi.Mode())
	}
	st, _ := f.s.State()
	if st.Active != slot.B || st.Previous != slot.A || !st.Trial || st.Slots[slot.B].Version != "2.0.0" || st.Slots[slot.B].JobID != "job-2" {
		t.Fatalf("state after install: %+v", st)
	}
	if err := f.install(t, "3.0.0", "job-3"); !errors.Is(err, slot.ErrTrial) {
		t.Errorf("install during a trial: %v, want ErrTrial", err)
	}

	b, err := f.s.Boot()
	if err != nil || b.Slot != slot.B || !b.Trial || b.BootCount != 1 || !b.Deadline.Equal(f.now.Add(time.Minute)) {
		t.Fatalf("boot: %+v, %v", b, err)
	}
	if _, _, err := f.s.Commit(slot.A); !errors.Is(err, slot.ErrNotActive) {
		t.Errorf("commit from the old slot: %v, want ErrNotActive", err)
	}
	o, ok, err := f.s.Commit(slot.B)
	if err != nil || !ok || o.State != api.JobSucceeded || o.JobID != "job-2" || o.Version != "2.0.0" {
		t.Fatalf("commit: %+v %v %v", o, ok, err)
	}
	if _, ok, err := f.s.Commit(slot.B); ok || err != nil {
		t.Errorf("second commit: %v %v, want a no-op", ok, err)
	}
	b, _ = f.s.Boot()
	if b.Trial || b.Slot != slot.B {
		t.Errorf("boot after commit: %+v", b)
	}
	pending, _ := f.s.Pending()
	if len(pending) != 1 || pending[0].JobID != "job-2" {
		t.Fatalf("pending %+v", pending)
	}
	js := pending[0].JobStatus("cam-1")
	if js.State != api.JobSucceeded || js.JobID != "job-2" || js.DeviceID != "cam-1" || js.Validate() != nil {
		t.Errorf("job status %+v (%v)", js, js.Validate())
	}
	if err := f.s.Reported(pending[0]); err != nil {
		t.Fatal(err)
	}
	if pending, _ = f.s.Pending(); len(pending) != 0 {
		t.Errorf("pending after report: %+v", pending)
	}

	// The next update goes to slot a, the inactive one now.
	if err := f.install(t, "3.0.0", "job-3"); err != nil {
		t.Fatal(err)
	}
	if st, _ := f.s.State(); st.Active != slot.A || st.Previous != slot.B {
		t.Errorf("second update: %+v", st)
	}
}

// TestInstallRefused checks that a bad bundle is refused with a precise
// error before anything is written to the inactive slot.
func TestInstallRefused(t *testing.T) {
	other, otherMachine := "arm64", elf.EM_AARCH64
	if runtime.GOARCH == "arm64" {
		other, otherMachine = "amd64", elf.EM_X86_64
	}
	for _, tc := range []struct {
		name string
		make func(f *fixture, t *testing.T) (bundle.Header, []byte)
		want error
	}{
		{"bad signature", func(f *fixture, t *testing.T) (bundle.Header, []byte) {
			h := f.sign(t, f.manifest(f.bin, "2.0.0"))
			h.Sig[0] ^= 1
			return h, f.bin
		}, manifest.ErrBadSignature},
		{"unknown key", func(f *fixture, t *testing.T) (bundle.Header, []byte) {
			_, priv, _ := ed25519.GenerateKey(nil)
			p, sig, _ := manifest.Sign(priv, "stranger", f.manifest(f.bin, "2.0.0"))
			return bundle.Header{Manifest: p, Sig: sig, KeyID: "stranger"}, f.bin
		}, manifest.ErrUnknownKey},
		{"manifest for another arch", func(f *fixture, t *testing.T) (bundle.Header, []byte) {
			m := f.manifest(f.bin, "2.0.0")
			m.Arch = other
			return f.sign(t, m), f.bin
		}, bundle.ErrPlatform},
		{"binary for another arch", func(f *fixture, t *testing.T) (bundle.Header, []byte) {
			b := bytes.Clone(f.bin)
			binary.LittleEndian.PutUint16(b[18:], uint16(otherMachine))
			return f.sign(t, f.manifest(b, "2.0.0")), b
		}, bundle.ErrPlatform},
		{"truncated payload", func(f *fixture, t *testing.T) (bundle.Header, []byte) {
			return f.sign(t, f.manifest(f.bin, "2.0.0")), f.bin[:len(f.bin)/2]
		}, bundle.ErrTruncated},
		{"corrupted payload", func(f *fixture, t *testing.T) (bundle.Header, []byte) {
			b := bytes.Clone(f.bin)
			b[len(b)-100] ^= 1
			return f.sign(t, f.manifest(f.bin, "2.0.0")), b
		}, manifest.ErrMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			// An older binary already sits in the inactive slot.
			old := []byte("\x7fELF old slot b")
			if err := os.WriteFile(f.s.Path(slot.B), old, 0o755); err != nil {
				t.Fatal(err)
			}
			past := time.Unix(1700000000, 0)
			os.Chtimes(f.s.Path(slot.B), past, past)
			before, _ := os.ReadFile(filepath.Join(f.s.Dir(), "state.json"))

			h, payload := tc.make(f, t)
			_, err := f.s.Install(context.Background(), h, bytes.NewReader(payload), slot.InstallOptions{Keys: f.keys})
			if !errors.Is(err, tc.want) {
				t.Fatalf("Install: %v, want %v", err, tc.want)
			}
			got, _ := os.ReadFile(f.s.Path(slot.B))
			fi, _ := os.Stat(f.s.Path(slot.B))
			if !bytes.Equal(got, old) || !fi.ModTime().Equal(past) {
				t.Errorf("inactive slot touched: %d bytes, mtime %v", len(got), fi.ModTime())
			}
			after, _ := os.ReadFile(filepath.Join(f.s.Dir(), "state.json"))
			if !bytes.Equal(before, after) {
				t.Errorf("state changed:\n%s\n%s", before, after)
			}
			if left, _ := filepath.Glob(filepath.Join(f.s.Dir(), "slots", ".incoming-*")); len(left) != 0 {
				t.Errorf("staging files left: %v", left)
			}
		})
	}
}

func TestBootCounterRollback(t *testing.T) {
	f := newFixture(t)
	if err := f.install(t, "2.0.0", "job-2"); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		b, err := f.s.Boot()
		if err != nil || !b.Trial || b.BootCount != i || b.Slot != slot.B {
			t.Fatalf("boot %d: %+v %v", i, b, err)
		}
		if err := f.s.TrialExited(slot.B, "exited with status 3 after 5ms"); err != nil {
			t.Fatal(err)
		}
	}
	b, err := f.s.Boot()
	if err != nil {
		t.Fatal(err)
	}
	if b.Slot != slot.A || b.Trial || b.Version != "1.0.0" || b.RolledBack == nil {
		t.Fatalf("third boot: %+v", b)
	}
	o := b.RolledBack
	if o.State != api.JobRolledBack || o.JobID != "job-2" || !strings.Contains(o.Reason, "started 2 times") || !strings.Contains(o.Reason, "status 3") {
		t.Errorf("outcome %+v", o)
	}
	if p, _ := f.s.Pending(); len(p) != 1 || p[0].Reason != o.Reason {
		t.Errorf("pending %+v", p)
	}
	if err := f.install(t, "2.0.1", "job-3"); err != nil {
		t.Errorf("install after a rollback: %v", err)
	}
}

func TestDeadlineRollback(t *testing.T) {
	f := newFixture(t)
	if err := f.install(t, "2.0.0", "job-2"); err != nil {
		t.Fatal(err)
	}
	if b, _ := f.s.Boot(); !b.Trial {
		t.Fatal("not a trial")
	}
	// Power lost; the box is back after the deadline with boots left: roll back.
	f.now = f.now.Add(61 * time.Second)
	b, _ := f.s.Boot()
	if b.Slot != slot.A || b.RolledBack == nil || !strings.Contains(b.RolledBack.Reason, "not healthy within 1m0s") {
		t.Fatalf("boot after the deadline: %+v %+v", b, b.RolledBack)
	}
	if _, _, err := f.s.Commit(slot.B); !errors.Is(err, slot.ErrNotActive) {
		t.Errorf("late commit of the rolled back slot: %v, want ErrNotActive", err)
	}
}

func TestRollbackAndRevert(t *testing.T) {
	f := newFixture(t)
	if _, err := f.s.Rollback(slot.A, "x"); !errors.Is(err, slot.ErrNotTrial) {
		t.Errorf("rollback without trial: %v", err)
	}
	if _, err := f.s.Revert("x"); !errors.Is(err, slot.ErrNoPrevious) {
		t.Errorf("revert with one slot: %v", err)
	}
	if err := f.install(t, "2.0.0", "job-2"); err != nil {
		t.Fatal(err)
	}
	o, err := f.s.Rollback(slot.B, "hung")
	if err != nil || o.Reason != "hung" || o.Version != "2.0.0" {
		t.Fatalf("rollback: %+v %v", o, err)
	}
	// Slot b holds a build that never ran healthy: nothing to revert to.
	if _, err := f.s.Revert("x"); !errors.Is(err, slot.ErrNoPrevious) {
		t.Errorf("revert onto a failed build: %v, want ErrNoPrevious", err)
	}
	if err := f.install(t, "2.0.0", "job-3"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.s.Commit(slot.B); err != nil {
		t.Fatal(err)
	}
	o, err = f.s.Revert("operator rollback r7")
	if err != nil || o.State != api.JobRolledBack || o.JobID != "job-3" {
		t.Fatalf("revert: %+v %v", o, err)
	}
	if st, _ := f.s.State(); st.Active != slot.A || st.Trial {
		t.Errorf("after revert: %+v", st)
	}
	// Forward again onto the committed 2.0.0.
	if o, err := f.s.Revert("forward"); err != nil || o.Version != "1.0.0" {
		t.Errorf("revert forward: %+v %v", o, err)
	}
}

func TestStateErrors(t *testing.T) {
	dir := t.TempDir()
	s, err := slot.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Boot(); !errors.Is(err, slot.ErrNoState) {
		t.Errorf("boot unseeded: %v", err)
	}
	if err := s.Seed(context.Background(), strings.NewReader("bin"), "1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Seed(context.Background(), strings.NewReader("bin"), "1"); err == nil {
		t.Error("second seed accepted")
	}
	for _, tc := range []struct{ name, content string }{
		{"garbage", "{"},
		{"unknown field", `{"schema":1,"active":"a","slots":{"a":{}},"extra":1}`},
		{"bad slot", `{"schema":1,"active":"c","slots":{"c":{}}}`},
		{"future schema", `{"schema":9,"active":"a","slots":{"a":{}}}`},
		{"trial without previous", `{"schema":1,"active":"a","slots":{"a":{}},"trial":true}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.WriteFile(filepath.Join(dir, "state.json"), []byte(tc.content), 0o644)
			if _, err := s.Boot(); !errors.Is(err, slot.ErrCorrupt) {
				t.Errorf("boot: %v, want ErrCorrupt", err)
			}
		})
	}
}

// BenchmarkInstall measures an update's install: staging with the ELF,
// length and sha256 checks, fsync, rename into the slot and the read-back
// hash, for a binary the size of this test binary.
func BenchmarkInstall(b *testing.B) {
	if runtime.GOOS != "linux" {
		b.Skip("linux only")
	}
	exe, _ := os.Executable()
	bin, err := os.ReadFile(exe)
	if err != nil {
		b.Fatal(err)
	}
	pub, priv, _ := ed25519.GenerateKey(nil)
	keys := manifest.KeySet{}
	id := keys.Add(pub)
	sum := sha256.Sum256(bin)
	m := &manifest.Manifest{Kind: manifest.KindFirmware, Name: "edge-agent", Version: "2.0.0", SHA256: hex.EncodeToString(sum[:]),
		Size: int64(len(bin)), CreatedAt: time.Unix(1764000000, 0), OS: runtime.GOOS, Arch: runtime.GOARCH}
	p, sig, _ := manifest.Sign(priv, id, m)
	h := bundle.Header{Manifest: p, Sig: sig, KeyID: id}
	s, err := slot.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Seed(context.Background(), bytes.NewReader([]byte("\x7fELF v1")), "1.0.0"); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(bin)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.Install(context.Background(), h, bytes.NewReader(bin), slot.InstallOptions{Keys: keys}); err != nil {
			b.Fatal(err)
		}
		st, _ := s.State()
		if _, err := s.Rollback(st.Active, "bench"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(bin))/1e6, "MB/install")
}
