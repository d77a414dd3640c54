package controller_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	paho "github.com/eclipse/paho.mqtt.golang"

	"edgefleet/fleet/api"
	"edgefleet/fleet/api/rest"
	"edgefleet/fleet/controller/controllertest"
	"edgefleet/fleet/sim"
	"edgefleet/internal/testutil"
	"edgefleet/models/modeltest"
)

// Chromium: opened with an old ?token= link (dropped from the address), a
// rollout to a device that answers over MQTT shows in the rollout list, and its page follows the device's job from downloading to
// succeeded, per wave and by state.
func TestConsoleRollout(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	testutil.Chromium(t)
	model, err := os.ReadFile(modeltest.Path(t, "models", "yolov5n-int8.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	f := controllertest.Start(t, `
devices: [{id: cam-9, password: pw-cam-9}]
ota: {health_window: 1s, job_timeout: 1m}
`)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base := "http://" + f.HTTP
	tok := controllertest.Token

	// The device: it takes commands and reports its job as the test says.
	cmds := make(chan api.Command, 4)
	agent, pub := testDevice(t, f, "cam-9", "pw-cam-9")
	if tk := agent.Subscribe(api.CommandsTopic("cam-9"), 1, func(_ paho.Client, m paho.Message) {
		var c api.Command
		if api.Decode(m.Payload(), &c) == nil {
			cmds <- c
		}
	}); !tk.WaitTimeout(5*time.Second) || tk.Error() != nil {
		t.Fatalf("subscribe: %v", tk.Error())
	}
	pub(api.StateTopic("cam-9"), api.State{DeviceID: "cam-9", Online: true, Time: time.Now().UnixMilli(), Labels: map[string]string{"site": "plant-x"}, Model: "yolov5n", ModelVersion: "1"})
	testutil.WaitFor(t, "cam-9 registered online", 5*time.Second, func() bool {
		d, err := f.API.Device(ctx, "cam-9")
		return err == nil && d.Online
	})

	// An operator pushes version 2 and rolls it out.
	controllertest.PushModel(t, f.API, "yolov5n", "2", model)
	controllertest.CreateRollout(t, f.API, rest.CreateRollout{Model: "yolov5n@2", Selector: "site=plant-x", Waves: "100%"})
	var cmd api.Command
	select {
	case cmd = <-cmds:
	case <-time.After(10 * time.Second):
		t.Fatal("no command reached the device")
	}
	report := func(state string, progress float64) {
		t.Helper()
		pub(api.JobTopic("cam-9", cmd.JobID), api.JobStatus{DeviceID: "cam-9", JobID: cmd.JobID, State: state, Progress: progress, Time: time.Now().UnixMilli()})
	}
	report(api.JobQueued, 0)
	report(api.JobDownloading, 0.5)

	b := newBrowser(t, ctx)
	bctx, text := b.ctx, b.text

	// The list: the rollout, in its only wave.
	row := `#rollouts tr[data-rollout="r1"]`
	if err := chromedp.Do(bctx, chromedp.Navigate(base+"/?token="+tok+"#/rollouts"), chromedp.WaitVisible(chromedp.CSS(row))); err != nil {
		t.Fatalf("rollout list: %v", err)
	}
	// The old ?token= link: kept for the tab, gone from the address bar.
	if href, err := chromedp.Run(bctx, chromedp.Evaluate[string](`location.href`)); err != nil || strings.Contains(href, tok) || !strings.HasSuffix(href, "/#/rollouts") {
		t.Errorf("address after a ?token= link: %q, %v", href, err)
	}
	for _, want := range []string{"yolov5n@2", "site=plant-x", "wave 1/1", "0 / 0"} {
		if s := text(row); !strings.Contains(s, want) {
			t.Errorf("rollout row %q lacks %q", s, want)
		}
	}
	// Its page: the device downloading, counted in flight in wave 1 and by state.
	if err := chromedp.Do(bctx, chromedp.Navigate(base+"/#/rollout/r1"),
		chromedp.WaitVisible(chromedp.CSS(`#jobs tr[data-device="cam-9"][data-state="downloading"]`))); err != nil {
		t.Fatalf("rollout page: %v", err)
	}
	if s := text(`#jobs tr[data-device="cam-9"]`); !strings.Contains(s, "downloading 50%") {
		t.Errorf("job row %q", s)
	}
	if s := text(`#waves tr[data-wave="1"]`); !strings.Contains(s, "1 (100%)") {
		t.Errorf("wave row %q", s)
	}
	if n, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.querySelector('#waves tr[data-wave="1"]').cells[3].textContent`)); err != nil || n != "1" {
		t.Errorf("wave 1 in flight: %q, %v", n, err)
	}
	if s := text(`#job-states tr[data-state="downloading"] td.count`); s != "1" {
		t.Errorf("downloading count %q", s)
	}
	// The device succeeds: the page follows by itself.
	report(api.JobHealthCheck, 0)
	report(api.JobSucceeded, 0)
	if _, err := chromedp.Run(bctx, chromedp.Poll[bool](`(() => { const s = document.getElementById("rollout-state"); return !!s && s.textContent === "completed" })()`,
		chromedp.WithPollingTimeout(15*time.Second))); err != nil {
		t.Fatalf("rollout page did not show the rollout completed: %v", err)
	}
	if s := text(`#job-states tr[data-state="succeeded"] td.count`); s != "1" {
		t.Errorf("succeeded count %q", s)
	}
	if err := chromedp.Do(bctx, chromedp.WaitVisible(chromedp.CSS(`#jobs tr[data-device="cam-9"][data-state="succeeded"]`))); err != nil {
		t.Fatal(err)
	}
}

// TestConsoleInBrowser runs fleetd and a real headless Chromium: after
// signing in (no token in any request URL), the console lists a device that
// an agent registered over MQTT; the live feed shows new detections (with a
// ticket from fleetd; where fleetd has no ticket route yet, it says the feed
// is unavailable); the device page shows charts, recent detections, its job
// history, and a simulated device's page shows its camera's snapshot, a JPEG
// relayed through fleetd over MQTT and fetched with the token header.
func TestConsoleInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	testutil.Chromium(t)

	f := controllertest.Start(t, "devices: [{id: cam-7, password: pw-cam-7}]\nservices: [{user: sim, password: sim-password}]\n")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base := "http://" + f.HTTP

	// A test agent registers over real MQTT.
	_, pub := testDevice(t, f, "cam-7", "pw-cam-7")
	pub(api.StateTopic("cam-7"), api.State{DeviceID: "cam-7", Online: true, Time: time.Now().UnixMilli(), Labels: map[string]string{"site": "plant-x", "line": "7"},
		Model: "yolov8n", ModelVersion: "3", Engine: "pure-go", Cameras: []string{"dock"}})
	for i := range 3 {
		pub(api.TelemetryTopic("cam-7"), api.Telemetry{DeviceID: "cam-7", Time: time.Now().UnixMilli(), Cameras: []api.CameraStats{{ID: "dock", Up: true, FPS: 10 + float64(i)}},
			InferP50Ms: 30, InferP99Ms: 45, SpoolDepth: uint64(i)})
	}
	pub(api.JobTopic("cam-7", "j-old"), api.JobStatus{DeviceID: "cam-7", JobID: "j-old", State: api.JobFailed, Reason: "checksum", Time: time.Now().UnixMilli()})
	seq := uint64(0)
	detect := func(label string) {
		t.Helper()
		seq++
		pub(api.DetectionsTopic("cam-7"), api.DetectionBatch{DeviceID: "cam-7", Events: []api.Event{{Seq: seq, CameraID: "dock", Time: time.Now().UnixMicro(), Label: label, Score: 0.88, Box: [4]float32{10, 20, 110, 220}}}})
	}
	testutil.WaitFor(t, "cam-7 job recorded", 5*time.Second, func() bool {
		d, err := f.API.DeviceJobs(ctx, "cam-7")
		return err == nil && len(d.Jobs) == 1
	})

	// A simulated device (sim-0, camera cam0) answers snapshot requests over MQTT.
	controllertest.StartSim(t, f.MQTT, 1, 0)
	controllertest.WaitOnline(t, f.API, 2)

	b := newBrowser(t, ctx)
	b.signIn(base)
	if n, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](`sessionStorage.getItem("edgefleet_token").length + (localStorage.getItem("edgefleet_token") || "").length`)); err != nil || n != len(controllertest.Token) {
		t.Errorf("token kept in sessionStorage only: %d, %v", n, err)
	}

	// Devices: the device registered over MQTT is listed with its labels.
	row := chromedp.CSS(`#devices tr[data-device="cam-7"]`)
	b.do("devices", chromedp.Navigate(base+"/#/devices"), chromedp.WaitVisible(row))
	text := b.text(string(row))
	for _, want := range []string{"cam-7", "plant-x", "online", "yolov8n", "3"} {
		if !strings.Contains(text, want) {
			t.Errorf("devices row %q lacks %q", text, want)
		}
	}

	// Live feed.
	b.do("live", chromedp.Navigate(base+"/#/live"))
	if ticketRoute(t, base) {
		live := func() {
			b.poll("live feed connected", `!!document.getElementById("feed-state") && document.getElementById("feed-state").textContent === "live"`, 10*time.Second)
		}
		live()
		detect("forklift")
		b.do("live feed", chromedp.WaitVisible(chromedp.CSS(`#feed tr[data-label="forklift"][data-device="cam-7"]`)))
		// The label filter keeps other labels out.
		if _, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`(() => { const f = document.getElementById("label-filter"); f.value = "helmet"; f.dispatchEvent(new Event("change")); return true })()`)); err != nil {
			t.Fatalf("filter: %v", err)
		}
		live()
		detect("person")
		detect("helmet")
		b.do("filtered feed", chromedp.WaitVisible(chromedp.CSS(`#feed tr[data-label="helmet"]`)))
		if n, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](`document.querySelectorAll('#feed tr[data-label="person"]').length`)); err != nil || n != 0 {
			t.Errorf("filtered feed shows %d person rows (err %v)", n, err)
		}
	} else {
		b.poll("feed unavailable without a ticket route", `!!document.getElementById("feed-state") && document.getElementById("feed-state").textContent.startsWith("unavailable")`, 10*time.Second)
		detect("helmet")
	}

	// Device page: charts, recent detections, job history, snapshot; it refreshes on its own.
	b.do("device page", chromedp.Navigate(base+"/#/device/cam-7"),
		chromedp.WaitVisible(chromedp.CSS(`svg[data-chart="Frames per second"] polyline`)),
		chromedp.WaitVisible(chromedp.CSS(`#recent tr[data-label="helmet"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#job-history tr[data-job="j-old"][data-state="failed"]`)))
	detect("ladder")
	b.do("device page update", chromedp.WaitVisible(chromedp.CSS(`#recent tr[data-label="ladder"]`)))

	// The simulated device's page shows its camera's snapshot: a 160x120
	// JPEG that fleetd relayed from the device, fetched with the token header.
	b.do("sim device page", chromedp.Navigate(base+"/#/device/sim-0"))
	b.poll("snapshot shown", fmt.Sprintf(`(() => { const i = document.querySelector("img.snap"); return !!i && i.complete && i.naturalWidth === %d && i.naturalHeight === %d && i.src.startsWith("blob:") })()`,
		sim.SnapshotWidth, sim.SnapshotHeight), 20*time.Second)
	snapURL := base + "/api/v1/devices/sim-0/cameras/" + sim.SimCamera + "/snapshot"
	if got, ok := b.authOf(snapURL); !ok || got != "Bearer "+controllertest.Token {
		t.Errorf("snapshot request %s sent %v with Authorization %q", snapURL, ok, got)
	}
	b.noTokenInURLs()
}

// ticketRoute reports whether fleetd has the live feed's ticket route.
func ticketRoute(t *testing.T, base string) bool {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/api/v1/live/ticket", nil)
	req.Header.Set("Authorization", "Bearer "+controllertest.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusCreated
}

// TestConsoleRollout runs fleetd's core with OTA and a real headless
