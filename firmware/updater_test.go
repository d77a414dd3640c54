package firmware_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"edgefleet/firmware"
	"edgefleet/firmware/bundle"
	"edgefleet/firmware/slot"
	"edgefleet/fleet/api"
	"edgefleet/models/manifest"
)

// TestUpdater checks a firmware_update command before its download (Check)
// and installs the payload (Install): only a good bundle reaches the
// inactive slot, on trial with the command's health window.
func TestUpdater(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("linux only")
	}
	exe, _ := os.Executable()
	bin, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, _ := ed25519.GenerateKey(nil)
	keys := manifest.KeySet{}
	keyID := keys.Add(pub)
	_, strangerPriv, _ := ed25519.GenerateKey(nil)
	sum := sha256.Sum256(bin)
	m := &manifest.Manifest{Kind: manifest.KindFirmware, Name: "edge-agent", Version: "2.0.0", SHA256: hex.EncodeToString(sum[:]),
		Size: int64(len(bin)), CreatedAt: time.Unix(1764000000, 0), OS: "linux", Arch: runtime.GOARCH}
	artifactFor := func(priv ed25519.PrivateKey, m *manifest.Manifest) *api.Artifact {
		p, sig, err := manifest.Sign(priv, keyID, m)
		if err != nil {
			t.Fatal(err)
		}
		return &api.Artifact{Kind: manifest.KindFirmware, Name: m.Name, Version: m.Version, SHA256: m.SHA256, Size: m.Size,
			URL: "/artifacts/" + m.SHA256, Manifest: p, Sig: sig, KeyID: keyID}
	}
	foreign := *m
	foreign.Arch = "arm64"
	if runtime.GOARCH == "arm64" {
		foreign.Arch = "amd64"
	}
	lying := artifactFor(priv, m)
	lying.SHA256 = strings.Repeat("0", 64)

	for _, tc := range []struct {
		name     string
		art      *api.Artifact
		payload  []byte
		checkErr error // from Check
		err      error // from Install; nil with checkErr nil: installed
	}{
		{"good", artifactFor(priv, m), bin, nil, nil},
		{"bad signature", artifactFor(strangerPriv, m), bin, manifest.ErrBadSignature, manifest.ErrBadSignature},
		{"other arch", artifactFor(priv, &foreign), bin, bundle.ErrPlatform, bundle.ErrPlatform},
		{"command and manifest disagree", lying, bin, manifest.ErrMismatch, manifest.ErrMismatch},
		{"truncated payload", artifactFor(priv, m), bin[:len(bin)/3], nil, bundle.ErrTruncated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := slot.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Seed(context.Background(), strings.NewReader("\x7fELF v1"), "1.0.0"); err != nil {
				t.Fatal(err)
			}
			u, err := firmware.New(firmware.Options{Slots: s, Slot: slot.A, Keys: keys, DeviceID: "cam-1",
				Report: func(context.Context, api.JobStatus) error { return nil }})
			if err != nil {
				t.Fatal(err)
			}
			c := api.Command{JobID: "job-1", Kind: api.CommandFirmwareUpdate, Artifact: tc.art, HealthWindowS: 30}
			if got, err := u.Check(c); !errors.Is(err, tc.checkErr) || err == nil && got.SHA256 != m.SHA256 {
				t.Fatalf("Check: %v, want %v", err, tc.checkErr)
			}
			err = u.Install(context.Background(), c, bytes.NewReader(tc.payload))
			if !errors.Is(err, tc.err) {
				t.Fatalf("Install: %v, want %v", err, tc.err)
			}
			st, _ := s.State()
			if tc.err == nil {
				if st.Active != slot.B || !st.Trial || st.WindowMs != 30000 {
					t.Errorf("after install: state %+v", st)
				}
				got, _ := os.ReadFile(s.Path(slot.B))
				if !bytes.Equal(got, bin) {
					t.Error("slot b does not hold the binary")
				}
				if name, in, ok := u.Installed("job-1"); !ok || name != slot.B || in.Version != "2.0.0" {
					t.Errorf("Installed(job-1) = %s %+v %v", name, in, ok)
				}
				return
			}
			if st.Active != slot.A || st.Trial {
				t.Errorf("state changed: %+v", st)
			}
			if _, err := os.Stat(s.Path(slot.B)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("slot b written: %v", err)
			}
			if _, _, ok := u.Installed("job-1"); ok {
				t.Error("Installed(job-1) after a failed install")
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
