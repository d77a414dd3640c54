package controller_test

import (
	"context"
	"net/http"
	"os"
	"testing"
	"time"

	"edgefleet/fleet/api/rest"
	"edgefleet/fleet/controller/controllertest"
	"edgefleet/fleet/database/dbtest"
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
ota: {health_window: 200ms, job_timeout: 20s}
`
	const n = 50
	first := controllertest.Start(t, extra)
	controllertest.PushModel(t, first.API, "yolo-sim", "2", model)
	stop := controllertest.StartSim(t, first.MQTT, n, 0)
	controllertest.WaitOnline(t, first.API, n)
	sum := controllertest.CreateRollout(t, first.API, rest.CreateRollout{Model: "yolo-sim@2", Canary: 2, Waves: "50%,100%", MaxFailures: "5%"})
	v := controllertest.WaitRollout(t, first.API, sum.ID, 60*time.Second, func(v rest.Rollout) bool { return controllertest.Final(v.State) })
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
