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
// data_dir key (the agents pin it) and stores it there; a replica with
// another key in its data_dir refuses to start, and one without gets the
// database's, written to its data_dir for the operator.
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
	if c2, err := open(dir2); err == nil || !strings.Contains(err.Error(), "is not the signing key in the database ("+id1+")") {
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
	_, id3, err := manifest.LoadPrivateKey(filepath.Join(dir3, "ota", "keys", "fleet.key"))
	if err != nil || id3 != id1 {
		t.Fatalf("third replica's key file: %s, %v; want %s", id3, err, id1)
	}
	if _, err := manifest.LoadPublicKey(filepath.Join(dir3, "ota", "keys", "fleet.pub")); err != nil {
		t.Fatal(err)
	}
}
