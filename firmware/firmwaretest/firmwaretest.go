// Package firmwaretest builds stand-in agent binaries and signed bundles
// for tests of the firmware packages and their users.
package firmwaretest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"edgefleet/firmware/bundle"
	"edgefleet/firmware/slot"
	"edgefleet/fleet/api"
	"edgefleet/models/manifest"
)

// Modes of the stand-in agent (see firmware/internal/fakeagent).
const (
	Good  = "good"  // journals its start, commits, installs bundles from <data>/inbox
	Crash = "crash" // exits with status 3 at start
	Hang  = "hang"  // journals its start, never commits, ignores SIGTERM
)

// Build compiles the stand-in agent for this machine into dir, stamped with
// version and mode, and returns its path. Call it before a test moves HOME:
// the go build cache lives under it, and an empty one costs minutes.
func Build(t testing.TB, dir, version, mode string) string {
	t.Helper()
	return BuildFor(t, dir, version, mode, runtime.GOARCH)
}

// BuildFor is Build for another GOARCH (linux, static).
func BuildFor(t testing.TB, dir, version, mode, goarch string) string {
	t.Helper()
	out := filepath.Join(dir, "agent-"+version+"-"+goarch)
	cmd := exec.Command("go", "build", "-o", out,
		"-ldflags", "-X main.mode="+mode+" -X main.version="+version+" -X "+bundle.VersionVar+"="+version,
		"edgefleet/firmware/internal/fakeagent")
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+goarch, "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("firmwaretest: go build %s: %v\n%s", version, err, b)
	}
	return out
}

// BuildAll builds, in parallel, the stand-ins most tests use: good 1.0.0
// and 2.0.0, 3.0.0-crash and 4.0.0-hang; it returns their paths by version.
// The test has failed when one did not build.
func BuildAll(t testing.TB, dir string) map[string]string {
	t.Helper()
	bins := map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, v := range []struct{ version, mode string }{
		{"1.0.0", Good}, {"2.0.0", Good}, {"3.0.0-crash", Crash}, {"4.0.0-hang", Hang},
	} {
		wg.Go(func() {
			p := Build(t, dir, v.version, v.mode)
			mu.Lock()
			bins[v.version] = p
			mu.Unlock()
		})
	}
	wg.Wait()
	return bins
}

// Seed seeds s with the binary at bin as version.
func Seed(t testing.TB, s *slot.Slots, bin, version string) {
	t.Helper()
	f, err := os.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := s.Seed(context.Background(), f, version); err != nil {
		t.Fatal(err)
	}
}

// Signer signs firmware manifests with a fresh key.
type Signer struct {
	Priv  ed25519.PrivateKey
	KeyID string
	Keys  manifest.KeySet // holds the public key
}

// NewSigner makes a signer with a new key pair.
func NewSigner(t testing.TB) *Signer {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	ks := manifest.KeySet{}
	return &Signer{Priv: priv, KeyID: ks.Add(pub), Keys: ks}
}

// WritePublicKey writes the public key as dir/fleet.pub.
func (s *Signer) WritePublicKey(t testing.TB, dir string) {
	t.Helper()
	b, err := manifest.EncodePublicKey(s.Keys[s.KeyID])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "fleet.pub"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Bundle builds the manifest of the binary at bin and returns a signed
// bundle file's bytes.
func (s *Signer) Bundle(t testing.TB, bin string) []byte {
	t.Helper()
	f, err := os.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	m, err := bundle.ForBinary(f, fi.Size(), "edge-agent", "", 1, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	payload, sig, err := manifest.Sign(s.Priv, s.KeyID, m)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := bundle.Write(&buf, bundle.Header{Manifest: payload, Sig: sig, KeyID: s.KeyID}, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Journal returns the lines the stand-in agent wrote to its journal
// (<data>/spool/events.log, one version@slot per start), in order.
func Journal(t testing.TB, data string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(data, "spool", "events.log"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}

// Outbox returns the job states the stand-in agent reported, in order.
func Outbox(t testing.TB, data string) []api.JobStatus {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(data, "outbox", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	var out []api.JobStatus
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var s api.JobStatus
		if err := api.Decode(b, &s); err != nil {
			t.Fatalf("outbox %s: %v", f, err)
		}
		out = append(out, s)
	}
	return out
}

// Final returns the last terminal state reported for job.
func Final(t testing.TB, data, job string) (api.JobStatus, bool) {
	t.Helper()
	var last api.JobStatus
	found := false
	for _, s := range Outbox(t, data) {
		if s.JobID == job && (s.State == api.JobSucceeded || s.State == api.JobFailed || s.State == api.JobRolledBack) {
			last, found = s, true
		}
	}
	return last, found
}
