package migrate_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"edgefleet/fleet/api/rest"
	"edgefleet/fleet/client"
	"edgefleet/fleet/controller"
	"edgefleet/fleet/controller/controllertest"
	"edgefleet/fleet/database"
	"edgefleet/fleet/migrate"
	"edgefleet/fleet/sim"
	"edgefleet/internal/dirlock"
	"edgefleet/internal/testutil"
	"edgefleet/models/modeltest"
)

// startBolt runs a bbolt fleetd on dir until stop (or the end of the test).
func startBolt(t *testing.T, dir string) (c *controller.Controller, stop func()) {
	t.Helper()
	cfg, err := controller.ParseConfig(strings.NewReader(fmt.Sprintf(`
data_dir: %s
http: {listen: "127.0.0.1:0"}
broker: {listen: "127.0.0.1:0"}
operators: [{name: test, token: %s}]
services: [{user: sim, password: sim-password}]
`, dir, controllertest.Token)))
	if err != nil {
		t.Fatal(err)
	}
	c, err = controller.New(context.Background(), cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	stopRun := testutil.Serve(t, "fleetd", c.Run, c.Ready())
	var once sync.Once
	stop = func() {
		once.Do(func() {
			stopRun()
			if err := c.Close(); err != nil {
				t.Errorf("fleetd: close: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return c, stop
}

// bboltFleet runs a bbolt fleetd with six simulated devices until they have
// sent detections and telemetry and gone offline, stops it, and returns
// the REST answers of a bbolt fleetd started again on its data dir (what
// the files hold) and the data dir, with no fleetd running on it.
func bboltFleet(t *testing.T) (answers map[string]string, dir string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "data")
	c, stop := startBolt(t, dir)
	api := controllertest.Client(t, c.HTTPAddr())
	model, err := os.ReadFile(modeltest.Path(t, "models", "yolov5n-int8.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	controllertest.PushModel(t, api, "yolo-sim", "2", model)
	simDone := make(chan sim.Report, 1)
	go func() {
		rep, err := sim.Run(context.Background(), sim.Options{Broker: "tcp://" + c.MQTTAddr(), Devices: 6, Rate: 20, Events: 4,
			TelemetryEvery: 100 * time.Millisecond, Duration: 4 * time.Second, UpdateStep: 5 * time.Millisecond,
			Login: func(string) (string, string) { return "sim", "sim-password" }})
		if err != nil {
			t.Errorf("sim: %v", err)
		}
		simDone <- rep
	}()
	controllertest.WaitOnline(t, api, 6)
	sum := controllertest.CreateRollout(t, api, rest.CreateRollout{Model: "yolo-sim@2", Canary: 1, Waves: "100%", MaxFailures: "0", HealthWindow: "200ms",
		Shadow: "1m", MinAgreement: 0.9})
	ro := controllertest.WaitRollout(t, api, sum.ID, 20*time.Second, func(v rest.Rollout) bool { return controllertest.Final(v.State) })
	if ro.State != rest.StateCompleted {
		t.Fatalf("rollout: %+v", ro.RolloutSummary)
	}
	if rep := <-simDone; rep.Lost > 0 || rep.Acked == 0 {
		t.Fatalf("sim: %v", rep)
	}
	testutil.WaitFor(t, "every simulated device offline", 10*time.Second, func() bool {
		on := true
		d, err := api.Devices(context.Background(), rest.DeviceFilter{Online: &on})
		return err == nil && len(d) == 0
	})
	stop()
	c, stop = startBolt(t, dir)
	defer stop()
	return restAnswers(t, controllertest.Client(t, c.HTTPAddr())), dir
}

// restAnswers asks fleetd's REST API about the fleet: devices, each
// device, its telemetry, every detection page, counts. Fields that depend
// on the time of asking (rate, health) are left out.
func restAnswers(t *testing.T, api *client.Client) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	put := func(k string, v any, err error) {
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		b, _ := json.Marshal(v)
		out[k] = string(b)
	}
	devs, err := api.Devices(ctx, rest.DeviceFilter{})
	for i := range devs {
		devs[i].DetectionsPerMin, devs[i].Health = 0, nil
	}
	put("devices", devs, err)
	for _, d := range devs {
		one, err := api.Device(ctx, d.ID)
		one.DetectionsPerMin, one.Health = 0, nil
		put("device "+d.ID, one, err)
		tel, err := api.Telemetry(ctx, d.ID, "-24h")
		put("telemetry "+d.ID, tel, err)
		p, err := api.Detections(ctx, rest.DetectionQuery{Device: d.ID, Limit: 7})
		put("first page of "+d.ID, p, err)
	}
	q := rest.DetectionQuery{Limit: 50}
	for i := 0; ; i++ {
		p, err := api.Detections(ctx, q)
		put(fmt.Sprint("page ", i), p, err)
		if p.Next == "" {
			break
		}
		q.Cursor = p.Next
	}
	now := time.Now().UTC().Truncate(time.Hour)
	cq := rest.DetectionQuery{From: now.Add(-time.Hour).Format(time.RFC3339), To: now.Add(2 * time.Hour).Format(time.RFC3339)}
	counts, err := api.CountDetections(ctx, cq, "1m")
	put("counts", counts, err)
	if counts.Total == 0 {
		t.Fatal("no detections counted")
	}
	lq := cq
	lq.Label = "car"
	counts, err = api.CountDetections(ctx, lq, "10m")
	put("counts of cars", counts, err)
	arts, err := api.Artifacts(ctx, "model")
	put("models", arts, err)
	keys, err := api.Keys(ctx)
	put("keys", keys, err)
	ros, err := api.Rollouts(ctx)
	put("rollouts", ros, err)
	for _, r := range ros {
		one, err := api.Rollout(ctx, r.ID)
		put("rollout "+r.ID, one, err)
		sh, err := api.RolloutShadow(ctx, r.ID)
		put("shadow reports of "+r.ID, sh, err)
		if len(sh.Devices) == 0 || sh.Devices[0].Final == nil {
			t.Fatalf("rollout %s: shadow reports %+v", r.ID, sh)
		}
	}
	if len(ros) == 0 || len(arts) == 0 || len(keys) == 0 {
		t.Fatalf("%d rollouts, %d models, %d keys", len(ros), len(arts), len(keys))
	}
	return out
}

// fleetdOnDB runs fleetd (in process) on the database, with a data dir of
// its own, until the test ends.
func fleetdOnDB(t *testing.T, dsn string) *client.Client {
	t.Helper()
	f := controllertest.Start(t, fmt.Sprintf("database: {url: %q}\n", dsn))
	return f.API
}

func counts(t *testing.T, db *database.DB) string {
	t.Helper()
	var dev, tel, det, arts, chunks, ros int
	var epoch, seq string
	err := db.Pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM devices), (SELECT count(*) FROM device_telemetry), (SELECT count(*) FROM detections),
		(SELECT count(*) FROM artifacts), (SELECT count(*) FROM artifact_chunks), (SELECT count(*) FROM rollouts),
		(SELECT epoch FROM rollout_meta), (SELECT last_value || '/' || is_called FROM rollout_ids)`).Scan(&dev, &tel, &det, &arts, &chunks, &ros, &epoch, &seq)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d devices, %d points, %d detections, %d artifacts (%d chunks), %d rollouts, epoch %s, rollout ids at %s", dev, tel, det, arts, chunks, ros, epoch, seq)
}

// TestMigrate: a bbolt fleet migrated to PostgreSQL gives the same REST
// answers; migrating it again changes nothing.
func TestMigrate(t *testing.T) {
	dsn := testutil.Postgres(t)
	before, dir := bboltFleet(t)

	db, err := database.Open(context.Background(), dsn, database.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rep, err := migrate.Run(context.Background(), dir, db.Pool, migrate.Options{PageSize: 64, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first run: %v", rep)
	if rep.Devices != 6 || rep.Points == 0 || rep.Detections == 0 || rep.Duplicates != 0 || rep.DevicesSkipped != 0 ||
		rep.Artifacts != 1 || rep.Rollouts != 1 || !rep.KeyCopied {
		t.Fatalf("first run: %v", rep)
	}
	first := counts(t, db)

	again, err := migrate.Run(context.Background(), dir, db.Pool, migrate.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if again.Devices != 0 || again.DevicesSkipped != 6 || again.Points != 0 || again.Detections != 0 || again.Duplicates != rep.Detections ||
		again.Artifacts != 0 || again.ArtifactsSkipped != 1 || again.Rollouts != 0 || again.RolloutsSkipped != 1 || again.KeyCopied {
		t.Errorf("second run: %v, want nothing copied", again)
	}
	if c := counts(t, db); c != first {
		t.Errorf("second run changed the database: %s, then %s", first, c)
	}

	after := restAnswers(t, fleetdOnDB(t, dsn))
	for k, want := range before {
		if got := after[k]; got != want {
			t.Errorf("%s:\nbbolt:      %s\npostgresql: %s", k, want, got)
		}
	}
	if len(after) != len(before) {
		t.Errorf("%d answers after, %d before", len(after), len(before))
	}
}

// TestMigrateLocked: a data dir that a running fleetd holds is refused at
// once, naming the holder.
func TestMigrateLocked(t *testing.T) {
	dsn := testutil.Postgres(t)
	f := controllertest.Start(t, "")
	db, err := database.Open(context.Background(), dsn, database.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = migrate.Run(context.Background(), f.Dir, db.Pool, migrate.Options{Logger: slog.New(slog.DiscardHandler)})
	if !errors.Is(err, dirlock.ErrLocked) || !strings.Contains(err.Error(), "fleetd (pid") {
		t.Fatalf("migrate of a running fleetd's data dir: %v", err)
	}
}
