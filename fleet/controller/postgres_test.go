package controller_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"edgefleet/fleet/api/rest"
	"edgefleet/fleet/controller"
	"edgefleet/fleet/controller/controllertest"
	"edgefleet/fleet/database/dbtest"
	"edgefleet/models/manifest"
	"edgefleet/models/modeltest"
)

// TestFleetdOnPostgres: fleetd with database.url keeps its state in
// PostgreSQL: /healthz reports the database, devices, the model and a
// rollout to simulated devices go through it, and a second fleetd on the
// same database (and its own broker) sees the same devices and rollout.
func TestFleetdOnPostgres(t *testing.T) {
	dsn := dbtest.DSN(t)
	model, err := os.ReadFile(modeltest.Path(t, "models", "yolov5n-int8.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	extra := `
database: {url: "` + dsn + `"}
services: [{user: sim, password: sim-password}]
ota: {health_window: 200ms, job_timeout: 2m}
`
	const n = 50
	first := controllertest.Start(t, extra)
	controllertest.PushModel(t, first.API, "yolo-sim", "2", model)
	stop := controllertest.StartSim(t, first.MQTT, n, 0)
	controllertest.WaitOnline(t, first.API, n)
	sum := controllertest.CreateRollout(t, first.API, rest.CreateRollout{Model: "yolo-sim@2", Canary: 2, Waves: "50%,100%", MaxFailures: "5%"})
	v := controllertest.WaitRollout(t, first.API, sum.ID, 3*time.Minute, func(v rest.Rollout) bool { return controllertest.Final(v.State) })
	if v.State != rest.StateCompleted || v.Succeeded != n {
		t.Fatalf("rollout %+v", v.RolloutSummary)
	}
	if rep := stop(); rep.OTA.Succeeded != n {
		t.Fatalf("sim: %+v", rep.OTA)
	}

	resp, err := http.Get("http://" + first.HTTP + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz: %s", resp.Status)
	}
	second := controllertest.Start(t, extra)
	ctx := context.Background()
	devs, err := second.API.Devices(ctx, rest.DeviceFilter{})
	if err != nil || len(devs) != n {
		t.Fatalf("second fleetd: %d devices, %v", len(devs), err)
	}
	rs, err := second.API.Rollouts(ctx)
	if err != nil || len(rs) != 1 || rs[0].State != rest.StateCompleted {
		t.Fatalf("second fleetd: rollouts %+v, %v", rs, err)
	}
	models, err := second.API.Artifacts(ctx, "model")
	if err != nil || len(models) != 1 || models[0].KeyID == "" {
		t.Fatalf("second fleetd: models %+v, %v", models, err)
	}
	keys1, err1 := first.API.Keys(ctx)
	keys2, err2 := second.API.Keys(ctx)
	if err1 != nil || err2 != nil || len(keys1) != 1 || len(keys2) != 1 || keys1[0] != keys2[0] || keys1[0].ID != models[0].KeyID {
		t.Fatalf("signing keys: %+v %v, %+v %v (model signed by %s)", keys1, err1, keys2, err2, models[0].KeyID)
	}
	// The replica that did not take the upload deletes it (its rollout is final).
	if _, err := second.API.DeleteArtifact(ctx, "model", "yolo-sim", "2"); err != nil {
		t.Fatalf("delete through the second fleetd: %v", err)
	}
}

// TestSigningKeyWithDatabase: a fleetd moving onto a database keeps its
// data_dir key (the agents pin it) as the signing key of the database's
// key ring, and removes the file; a replica with another key in its
// data_dir refuses to start, and one without signs with the database's
// (and writes no key file).
func TestSigningKeyWithDatabase(t *testing.T) {
	dsn := dbtest.DSN(t)
	newDir := func(withKey bool) (string, string) {
		dir := filepath.Join(t.TempDir(), "data")
		if !withKey {
			return dir, ""
		}
		keys := filepath.Join(dir, "ota", "keys")
		if err := os.MkdirAll(keys, 0o700); err != nil {
			t.Fatal(err)
		}
		id, err := manifest.GenerateKey(keys, "fleet")
		if err != nil {
			t.Fatal(err)
		}
		return dir, id
	}
	open := func(dir string) (*controller.Controller, error) {
		cfg, err := controller.ParseConfig(strings.NewReader(fmt.Sprintf(`
data_dir: %s
database: {url: "%s"}
http: {listen: "127.0.0.1:0"}
broker: {listen: "127.0.0.1:0"}
operators: [{name: test, token: %s}]
`, dir, dsn, controllertest.Token)))
		if err != nil {
			t.Fatal(err)
		}
		return controller.New(context.Background(), cfg, slog.New(slog.DiscardHandler))
	}
	dir1, id1 := newDir(true)
	c1, err := open(dir1)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	dir2, _ := newDir(true)
	if _, err := os.Stat(filepath.Join(dir1, "ota", "keys", "fleet.key")); !os.IsNotExist(err) {
		t.Errorf("first replica's key file is still there: %v", err)
	}
	if c2, err := open(dir2); err == nil || !strings.Contains(err.Error(), "is not a key of fleetd's key ring") || !strings.Contains(err.Error(), "signs with "+id1) {
		if c2 != nil {
			c2.Close()
		}
		t.Fatalf("replica with another key: %v", err)
	}
	dir3, _ := newDir(false)
	c3, err := open(dir3)
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	if _, err := os.Stat(filepath.Join(dir3, "ota", "keys")); !os.IsNotExist(err) {
		t.Errorf("third replica wrote key files: %v", err)
	}
}

// TestKeysReplicas (issue 17): two replicas on one database sign with the
// same key; after a rotation through one, the other lists the new key as
// signing and signs its next push with it.
func TestKeysReplicas(t *testing.T) {
	ctx := context.Background()
	model, err := os.ReadFile(modeltest.Path(t, "models", "yolov5n-int8.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	extra := `
database: {url: "` + dbtest.DSN(t) + `"}
`
	a := controllertest.Start(t, extra)
	b := controllertest.Start(t, extra)
	ka, errA := a.API.Keys(ctx)
	kb, errB := b.API.Keys(ctx)
	if errA != nil || errB != nil || len(ka) != 1 || len(kb) != 1 || ka[0] != kb[0] {
		t.Fatalf("keys before: %+v %v, %+v %v", ka, errA, kb, errB)
	}
	rot, err := a.API.RotateKey(ctx)
	if err != nil || rot.Retired.ID != ka[0].ID {
		t.Fatalf("rotate through a: %+v %v", rot, err)
	}
	kb, err = b.API.Keys(ctx)
	if err != nil || len(kb) != 2 || kb[0].ID != rot.Signing.ID || !kb[0].Signing || kb[1].ID != ka[0].ID || kb[1].Signing {
		t.Fatalf("keys on b after the rotation on a: %+v %v", kb, err)
	}
	if m := controllertest.PushModel(t, b.API, "m", "1", model); m.KeyID != rot.Signing.ID {
		t.Fatalf("b signed with %s; want the new key %s", m.KeyID, rot.Signing.ID)
	}
}
