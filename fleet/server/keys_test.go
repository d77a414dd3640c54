package server

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"edgefleet/fleet/api/rest"
	"edgefleet/fleet/artifact"
	"edgefleet/fleet/audit"
	"edgefleet/fleet/operator"
	"edgefleet/fleet/registry"
	"edgefleet/fleet/store"
	"edgefleet/models/manifest"
)

// testRing is a bbolt key ring in dir with its first key.
func testRing(t testing.TB, dir string) *artifact.BoltRing {
	t.Helper()
	r, err := artifact.OpenBoltRing(filepath.Join(dir, "keys.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	if _, _, err := r.Init(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	return r
}

// ringKeys is the key set of every key of r.
func ringKeys(t testing.TB, r artifact.Ring) manifest.KeySet {
	t.Helper()
	ks, err := r.Keys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return artifact.KeySet(ks)
}

func keyList(t *testing.T, base, token string) []rest.Key {
	t.Helper()
	code, b := call(t, base, "GET", "/api/v1/keys", token, "", nil)
	var l rest.KeyList
	if code != http.StatusOK || json.Unmarshal(b, &l) != nil {
		t.Fatalf("GET /api/v1/keys: %d %s", code, b)
	}
	return l.Keys
}

// TestKeyRoutes: a viewer lists and exports keys but cannot rotate; an
// admin's rotation makes a new signing key, keeps the old one listed as
// retired, and is in the audit log.
func TestKeyRoutes(t *testing.T) {
	f := setupAuth(t)
	before := keyList(t, f.ts.URL, viewerTok)
	if len(before) != 1 || !before[0].Signing || before[0].Source != rest.KeySourceFleetd || before[0].CreatedAt.IsZero() {
		t.Fatalf("keys: %+v", before)
	}
	old := before[0]
	for _, path := range []string{"/api/v1/keys/" + old.ID + ".pub", "/api/v1/keys/" + old.ID + "?format=pem", "/api/v1/keys/signing.pub"} {
		code, b := call(t, f.ts.URL, "GET", path, viewerTok, "", nil)
		if pub, err := manifest.ParsePublicKey(b); code != http.StatusOK || err != nil || manifest.KeyID(pub) != old.ID {
			t.Errorf("GET %s: %d %s %v", path, code, b, err)
		}
	}
	code, b := call(t, f.ts.URL, "GET", "/api/v1/keys/"+old.ID, viewerTok, "", nil)
	var one rest.Key
	if code != http.StatusOK || json.Unmarshal(b, &one) != nil || one != old {
		t.Fatalf("GET one key: %d %s", code, b)
	}
	code, b = call(t, f.ts.URL, "GET", "/api/v1/keys/0011223344556677", viewerTok, "", nil)
	wantError(t, "unknown key", code, b, http.StatusNotFound, "no key")
	code, b = call(t, f.ts.URL, "GET", "/api/v1/keys/signing?format=der", viewerTok, "", nil)
	wantError(t, "bad format", code, b, http.StatusBadRequest, "format")

	code, b = call(t, f.ts.URL, "POST", "/api/v1/keys/rotate", viewerTok, "", nil)
	wantError(t, "viewer rotates", code, b, http.StatusForbidden, "needs the admin role")
	code, b = call(t, f.ts.URL, "POST", "/api/v1/keys/rotate", operatorTok, "", nil)
	wantError(t, "operator rotates", code, b, http.StatusForbidden, "needs the admin role")
	code, b = call(t, f.ts.URL, "POST", "/api/v1/keys/rotate", adminTok, "", nil)
	var rot rest.KeyRotation
	if code != http.StatusCreated || json.Unmarshal(b, &rot) != nil || rot.Retired.ID != old.ID || rot.Signing.ID == old.ID || !rot.Signing.Signing {
		t.Fatalf("rotate: %d %s", code, b)
	}
	after := keyList(t, f.ts.URL, viewerTok)
	if len(after) != 2 || after[0].ID != rot.Signing.ID || !after[0].Signing || after[1].ID != old.ID || after[1].Signing || after[1].RetiredAt.IsZero() {
		t.Fatalf("keys after rotation: %+v", after)
	}
	es, _ := f.audit.List(context.Background(), audit.Query{})
	var saw []string
	for _, e := range es {
		if e.Action == "key.rotate" {
			saw = append(saw, e.Operator+" "+e.Outcome+" "+e.Target+" "+e.Detail)
		}
	}
	want := []string{"ada ok " + rot.Signing.ID + " retired " + old.ID, "otto refused  ", "vera refused  "}
	if strings.Join(saw, "|") != strings.Join(want, "|") {
		t.Errorf("audit: %q; want %q", saw, want)
	}
}

// TestKeyRotateFixed: with the key from fleetd's config file, rotation is
// a 409 that says so.
func TestKeyRotateFixed(t *testing.T) {
	reg, err := registry.Open(filepath.Join(t.TempDir(), "reg.db"), registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	_, priv, _ := ed25519.GenerateKey(nil)
	arts, err := artifact.Open(t.TempDir(), artifact.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer arts.Close()
	ops, _ := operator.WithFixed(operator.NewMem(operator.Options{}), operator.Options{}, operator.Fixed{Name: "ada", Role: operator.Admin, Token: adminTok})
	s, err := New(Options{Store: store.NewMem(store.Retention{}), Registry: reg, Operators: ops, Logger: slog.New(slog.DiscardHandler),
		OTA: &OTA{Artifacts: arts, Rollouts: setupAuth(t).eng, Keys: artifact.NewFixedRing(priv, "it comes from the config file")}})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	defer ts.Close()
	code, b := call(t, ts.URL, "POST", "/api/v1/keys/rotate", adminTok, "", nil)
	wantError(t, "rotate a fixed key", code, b, http.StatusConflict, "it comes from the config file")
	if ks := keyList(t, ts.URL, adminTok); len(ks) != 1 || !ks[0].Signing || ks[0].Source != rest.KeySourceConfig {
		t.Fatalf("keys: %+v", ks)
	}
}
