package firmware_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"edgefleet/firmware"
	"edgefleet/firmware/bundle"
	"edgefleet/firmware/slot"
	"edgefleet/fleet/api"
	"edgefleet/models/manifest"
)

func TestUpdater(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("linux only")
	}
	exe, _ := os.Executable()
	bin, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	var gets atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gets.Add(1)
		if id, tok, _ := r.BasicAuth(); id != "cam-1" || tok != "s3cret" {
			http.Error(w, "bad credentials", http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/good":
			w.Write(bin)
		case "/short":
			w.Write(bin[:len(bin)/3])
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()

	pub, priv, _ := ed25519.GenerateKey(nil)
	keys := manifest.KeySet{}
	keyID := keys.Add(pub)
	_, strangerPriv, _ := ed25519.GenerateKey(nil)
	sum := sha256.Sum256(bin)
	m := &manifest.Manifest{Kind: manifest.KindFirmware, Name: "edge-agent", Version: "2.0.0", SHA256: hex.EncodeToString(sum[:]),
		Size: int64(len(bin)), CreatedAt: time.Unix(1764000000, 0), OS: "linux", Arch: runtime.GOARCH}
	artifactFor := func(priv ed25519.PrivateKey, m *manifest.Manifest, path string) *api.Artifact {
		p, sig, err := manifest.Sign(priv, keyID, m)
		if err != nil {
			t.Fatal(err)
		}
		return &api.Artifact{Kind: manifest.KindFirmware, Name: m.Name, Version: m.Version, SHA256: m.SHA256, Size: m.Size,
			URL: srv.URL + path, Manifest: p, Sig: sig, KeyID: keyID}
	}
	foreign := *m
	foreign.Arch = "arm64"
	if runtime.GOARCH == "arm64" {
		foreign.Arch = "amd64"
	}
	lying := artifactFor(priv, m, "/good")
	lying.SHA256 = strings.Repeat("0", 64)

	for _, tc := range []struct {
		name    string
		art     *api.Artifact
		token   string
		want    error  // nil: installed, ErrRestart
		reason  string // in the failed report
		fetches int32
	}{
		{"good", artifactFor(priv, m, "/good"), "s3cret", firmware.ErrRestart, "", 1},
		{"bad signature", artifactFor(strangerPriv, m, "/good"), "s3cret", manifest.ErrBadSignature, "bad signature", 0},
		{"other arch", artifactFor(priv, &foreign, "/good"), "s3cret", bundle.ErrPlatform, "wrong platform", 0},
		{"command and manifest disagree", lying, "s3cret", manifest.ErrMismatch, "does not match", 0},
		{"truncated download", artifactFor(priv, m, "/short"), "s3cret", bundle.ErrTruncated, "truncated", 1},
		{"refused credentials", artifactFor(priv, m, "/good"), "wrong", nil, "401", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := slot.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Seed(context.Background(), strings.NewReader("\x7fELF v1"), "1.0.0"); err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			var reports []api.JobStatus
			u, err := firmware.New(firmware.Options{Slots: s, Slot: slot.A, Keys: keys, DeviceID: "cam-1", Token: tc.token,
				Report: func(_ context.Context, st api.JobStatus) error {
					mu.Lock()
					reports = append(reports, st)
					mu.Unlock()
					return nil
				}})
			if err != nil {
				t.Fatal(err)
			}
			gets.Store(0)
			err = u.Handle(context.Background(), api.Command{JobID: "job-1", Kind: api.CommandFirmwareUpdate, Artifact: tc.art, HealthWindowS: 30})
			if tc.want != nil && !errors.Is(err, tc.want) || tc.want == nil && err == nil {
				t.Fatalf("Handle: %v, want %v", err, tc.want)
			}
			if n := gets.Load(); n != tc.fetches {
				t.Errorf("%d downloads, want %d", n, tc.fetches)
			}
			last := reports[len(reports)-1]
			st, _ := s.State()
			if tc.want == firmware.ErrRestart {
				if last.State != api.JobHealthCheck || st.Active != slot.B || !st.Trial || st.WindowMs != 30000 {
					t.Errorf("after install: report %+v, state %+v", last, st)
				}
				got, _ := os.ReadFile(s.Path(slot.B))
				if !bytes.Equal(got, bin) {
					t.Error("slot b does not hold the binary")
				}
				return
			}
			if last.State != api.JobFailed || !strings.Contains(last.Reason, tc.reason) {
				t.Errorf("last report %+v, want failed with %q", last, tc.reason)
			}
			if st.Active != slot.A || st.Trial {
				t.Errorf("state changed: %+v", st)
			}
			if _, err := os.Stat(s.Path(slot.B)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("slot b written: %v", err)
			}
		})
	}
}

func TestUpdaterRollback(t *testing.T) {
	s, err := slot.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Seed(context.Background(), strings.NewReader("\x7fELF v1"), "1.0.0"); err != nil {
		t.Fatal(err)
	}
	var reports []api.JobStatus
	keys := manifest.KeySet{}
	pub, _, _ := ed25519.GenerateKey(nil)
	keys.Add(pub)
	u, err := firmware.New(firmware.Options{Slots: s, Slot: slot.A, Keys: keys, DeviceID: "cam-1",
		Report: func(_ context.Context, st api.JobStatus) error { reports = append(reports, st); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	handled, err := u.Rollback(context.Background(), api.Command{JobID: "r9-0-rb", Kind: api.CommandRollback})
	if handled || err != nil || len(reports) != 0 {
		t.Errorf("rollback of a job that is not ours: %v %v %v", handled, err, reports)
	}
	if _, err := u.Rollback(context.Background(), api.Command{JobID: "x", Kind: api.CommandModelUpdate}); err == nil {
		t.Error("a model update accepted as a rollback")
	}
	if _, err := firmware.New(firmware.Options{Keys: keys, Report: func(context.Context, api.JobStatus) error { return nil }}); !errors.Is(err, firmware.ErrNotLaunched) {
		t.Errorf("New outside the launcher: %v", err)
	}
}
