package controller_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"edgefleet/fleet/api/rest"
	"edgefleet/fleet/client"
	"edgefleet/fleet/controller"
	"edgefleet/fleet/controller/controllertest"
	"edgefleet/internal/testutil"
	"edgefleet/models/manifest"
	"edgefleet/models/modeltest"
)

// startAt runs fleetd on data dir dir (the embedded broker, operator
// "test" with controllertest.Token) until stop is called.
func startAt(t *testing.T, dir, extra string) (api *client.Client, stop func()) {
	t.Helper()
	cfg, err := controller.ParseConfig(strings.NewReader(fmt.Sprintf(`
data_dir: %s
http: {listen: "127.0.0.1:0"}
broker: {listen: "127.0.0.1:0"}
operators: [{name: test, token: %s}]
`, dir, controllertest.Token) + extra))
	if err != nil {
		t.Fatal(err)
	}
	c, err := controller.New(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	stopRun := testutil.Serve(t, "fleetd", c.Run, c.Ready())
	return controllertest.Client(t, c.HTTPAddr()), func() {
		stopRun()
		if err := c.Close(); err != nil {
			t.Errorf("fleetd: close: %v", err)
		}
	}
}

// exportKeys writes the public key files of ids as fleetctl keys export
// does, into a new folder, and loads it as an agent does.
func exportKeys(t *testing.T, api *client.Client, ids ...string) manifest.KeySet {
	t.Helper()
	dir := t.TempDir()
	for _, id := range ids {
		b, err := api.PublicKeyPEM(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, id+".pub"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ks, err := manifest.LoadKeySet(dir)
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

// TestKeysRotate (issue 17): fleetd takes over the key file it generated
// before the key ring (and removes it), a rotation makes a new signing
// key that signs the next push, agents pinning only the old key refuse
// that push and agents pinning both accept it, and a restart keeps the ring.
func TestKeysRotate(t *testing.T) {
	ctx := context.Background()
	model, err := os.ReadFile(modeltest.Path(t, "models", "yolov5n-int8.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	model2, err := os.ReadFile(modeltest.Path(t, "models", "yolo26n_int8_320_e2e.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "data")
	keyDir := filepath.Join(dir, "ota", "keys")
	if err := os.MkdirAll(keyDir, 0o700); err != nil {
		t.Fatal(err)
	}
	oldID, err := manifest.GenerateKey(keyDir, "fleet")
	if err != nil {
		t.Fatal(err)
	}
	api, stop := startAt(t, dir, "")
	ks, err := api.Keys(ctx)
	if err != nil || len(ks) != 1 || ks[0].ID != oldID || !ks[0].Signing {
		t.Fatalf("keys: %+v %v; want the key file's %s", ks, err, oldID)
	}
	if _, err := os.Stat(keyDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the key files are still there: %v", err)
	}
	m1 := controllertest.PushModel(t, api, "m", "1", model)
	rot, err := api.RotateKey(ctx)
	if err != nil || rot.Retired.ID != oldID || rot.Signing.ID == oldID {
		t.Fatalf("rotate: %+v %v", rot, err)
	}
	m2 := controllertest.PushModel(t, api, "m", "2", model2)
	if m1.KeyID != oldID || m2.KeyID != rot.Signing.ID {
		t.Fatalf("signed by %s and %s; want %s then %s", m1.KeyID, m2.KeyID, oldID, rot.Signing.ID)
	}
	onlyOld := exportKeys(t, api, oldID)
	both := exportKeys(t, api, oldID, rest.SigningKeyID)
	for _, c := range []struct {
		name string
		keys manifest.KeySet
		ver  string
		ok   bool
	}{
		{"pushed before, old key", onlyOld, "1", true},
		{"pushed after, old key", onlyOld, "2", false},
		{"pushed after, both keys", both, "2", true},
		{"pushed before, both keys", both, "1", true},
	} {
		m, err := api.Artifact(ctx, rest.KindModel, "m", c.ver)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := manifest.Verify(c.keys, m.Manifest, m.Signature, m.KeyID); (err == nil) != c.ok {
			t.Errorf("%s: verify: %v", c.name, err)
		}
	}
	stop()

	api, stop = startAt(t, dir, "")
	defer stop()
	again, err := api.Keys(ctx)
	if err != nil || len(again) != 2 || again[0].ID != rot.Signing.ID || !again[0].Signing || again[1].ID != oldID || again[1].RetiredAt.IsZero() {
		t.Fatalf("keys after a restart: %+v %v", again, err)
	}
}

// TestKeysFromConfig: with ota.signing_key, fleetd signs with that file's
// key and refuses a rotation with 409 naming the config key.
func TestKeysFromConfig(t *testing.T) {
	keyDir := t.TempDir()
	id, err := manifest.GenerateKey(keyDir, "fleet")
	if err != nil {
		t.Fatal(err)
	}
	f := controllertest.Start(t, "ota: {signing_key: "+filepath.Join(keyDir, "fleet.key")+"}\n")
	_, err = f.API.RotateKey(context.Background())
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != 409 || !strings.Contains(ce.Reason, "ota.signing_key") {
		t.Fatalf("rotate: %v; want 409 naming ota.signing_key", err)
	}
	ks, err := f.API.Keys(context.Background())
	if err != nil || len(ks) != 1 || ks[0].ID != id || !ks[0].Signing || ks[0].Source != rest.KeySourceConfig {
		t.Fatalf("keys: %+v %v", ks, err)
	}
}
