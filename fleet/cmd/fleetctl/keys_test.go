package main

import (
	"path/filepath"
	"strings"
	"testing"

	"edgefleet/models/manifest"
)

// TestKeysCommands: keys list, export (stdout and -o, loaded as an agent
// loads its pinned keys) and rotate against a fleetd key ring.
func TestKeysCommands(t *testing.T) {
	t.Setenv("EDGEFLEET_CONFIG", "")
	t.Setenv("HOME", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	keyDir, pinDir := t.TempDir(), t.TempDir()
	oldID := genKey(t, keyDir)
	auth := []string{"--server", fleetdOTA(t, keyDir), "--token", token}
	run := func(wantCode int, args ...string) string {
		t.Helper()
		code, out, errOut := fleetctl(t, append(args, auth...)...)
		if code != wantCode {
			t.Fatalf("fleetctl %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, wantCode, out, errOut)
		}
		return out + errOut
	}
	if pub, err := manifest.ParsePublicKey([]byte(run(0, "keys", "export"))); err != nil || manifest.KeyID(pub) != oldID {
		t.Fatalf("keys export to stdout: %v", err)
	}
	out := run(0, "keys", "rotate")
	newID := strings.Fields(out)[2]
	if !strings.Contains(out, "(retired "+oldID+")") || newID == oldID {
		t.Fatalf("keys rotate: %s", out)
	}
	list := run(0, "keys", "list")
	if !strings.Contains(list, newID+"  yes") || !strings.Contains(list, oldID+"  no") {
		t.Fatalf("keys list after rotate:\n%s", list)
	}
	if out := run(0, "keys", "export", "-o", filepath.Join(pinDir, "fleet.pub")); !strings.Contains(out, "key "+newID) {
		t.Fatalf("keys export -o: %s", out)
	}
	run(0, "keys", "export", oldID, "-o", filepath.Join(pinDir, "old.pub"))
	ks, err := manifest.LoadKeySet(pinDir)
	if err != nil || len(ks) != 2 || ks[newID] == nil || ks[oldID] == nil {
		t.Fatalf("exported keys as an agent loads them: %v %v", ks.IDs(), err)
	}
	if out := run(1, "keys", "export", "0011223344556677"); !strings.Contains(out, "HTTP 404") {
		t.Fatalf("export an unknown key: %s", out)
	}
	run(2, "keys", "export", oldID, newID)
}
