package server

import (
	"context"
	"encoding/json"
	"image"
	"image/jpeg"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	paho "github.com/eclipse/paho.mqtt.golang"

	"edgefleet/fleet/api"
	"edgefleet/fleet/broker"
	"edgefleet/fleet/broker/brokertest"
	"edgefleet/fleet/ingest"
	"edgefleet/fleet/registry"
	"edgefleet/fleet/store"
	"edgefleet/internal/testutil"
)

// TestConsoleInBrowser runs fleetd's core (embedded broker, store,
// registry, ingest, HTTP) and a real headless Chromium: the console shows a
// device that an agent registered over MQTT, and the live feed and the
// device page update when the agent sends detections.
func TestConsoleInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	exe := testutil.Chromium(t)

	// fleetd core.
	auth := broker.NewStaticAuth()
	auth.SetDevice("cam-7", "pw-cam-7")
	b := brokertest.Start(t, broker.Options{Addr: "127.0.0.1:0", Auth: auth, Logger: slog.New(slog.DiscardHandler)})
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "det.db"), store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	reg, err := registry.Open(filepath.Join(t.TempDir(), "reg.db"), registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	srv, err := New(Options{Store: st, Registry: reg, Tokens: map[string]string{tok: "alice"}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	in, err := ingest.New(ingest.Embedded(b), ingest.Options{Store: st, Devices: reg, OnStored: srv.Hub().Publish, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ictx, icancel := context.WithCancel(ctx)
	idone := make(chan error, 1)
	go func() { idone <- in.Run(ictx) }()
	defer func() { icancel(); <-idone }()
	ts := httptest.NewServer(srv)
	defer ts.Close()

	// The agent's snapshot server: one small JPEG per camera.
	snaps := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/snapshot/dock.jpg") {
			http.NotFound(w, r)
			return
		}
		img := image.NewRGBA(image.Rect(0, 0, 64, 48))
		w.Header().Set("Content-Type", "image/jpeg")
		jpeg.Encode(w, img, nil)
	}))
	defer snaps.Close()

	// A test agent registers over real MQTT.
	agent := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + b.Addr()).SetClientID("cam-7").SetUsername("cam-7").SetPassword("pw-cam-7"))
	if tok := agent.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("agent connect: %v", tok.Error())
	}
	defer agent.Disconnect(0)
	pub := func(topic string, v any) {
		t.Helper()
		p, _ := json.Marshal(v)
		if tok := agent.Publish(topic, 1, false, p); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", topic, tok.Error())
		}
	}
	<-in.Ready() // ingest subscribed
	pub(api.StateTopic("cam-7"), api.State{DeviceID: "cam-7", Online: true, Time: time.Now().UnixMilli(), Labels: map[string]string{"site": "plant-x", "line": "7"},
		Model: "yolov8n", ModelVersion: "3", Engine: "pure-go", Cameras: []string{"dock"}, SnapshotURL: snaps.URL})
	for i := range 3 {
		pub(api.TelemetryTopic("cam-7"), api.Telemetry{DeviceID: "cam-7", Time: time.Now().UnixMilli(), Cameras: []api.CameraStats{{ID: "dock", Up: true, FPS: 10 + float64(i)}},
			InferP50Ms: 30, InferP99Ms: 45, SpoolDepth: uint64(i)})
	}
	seq := uint64(0)
	detect := func(label string) {
		t.Helper()
		seq++
		pub(api.DetectionsTopic("cam-7"), api.DetectionBatch{DeviceID: "cam-7", Events: []api.Event{{Seq: seq, CameraID: "dock", Time: time.Now().UnixMicro(), Label: label, Score: 0.88, Box: [4]float32{10, 20, 110, 220}}}})
	}

	// The browser.
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.NoFirstRun, chromedp.UserDataDir(t.TempDir()))
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()

	// Overview: the device registered over MQTT is listed with its labels.
	row := chromedp.CSS(`#devices tr[data-device="cam-7"]`)
	if err := chromedp.Do(bctx, chromedp.Navigate(ts.URL+"/?token="+tok+"#/"), chromedp.WaitVisible(row)); err != nil {
		t.Fatalf("overview: %v", err)
	}
	text, err := chromedp.Run(bctx, chromedp.Text(row))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"cam-7", "plant-x", "online", "yolov8n 3"} {
		if !strings.Contains(text, want) {
			t.Errorf("overview row %q lacks %q", text, want)
		}
	}

	// Live feed: a new detection appears without reloading.
	live := func() error {
		_, err := chromedp.Run(bctx, chromedp.Poll[bool](`document.getElementById("feed-state") && document.getElementById("feed-state").textContent === "live"`, chromedp.WithPollingTimeout(10*time.Second)))
		return err
	}
	if err := chromedp.Do(bctx, chromedp.Navigate(ts.URL+"/#/live")); err != nil {
		t.Fatal(err)
	}
	if err := live(); err != nil {
		t.Fatalf("live feed did not connect: %v", err)
	}
	detect("forklift")
	if err := chromedp.Do(bctx, chromedp.WaitVisible(chromedp.CSS(`#feed tr[data-label="forklift"][data-device="cam-7"]`))); err != nil {
		t.Fatalf("live feed: %v", err)
	}
	// The label filter keeps other labels out.
	if _, err := chromedp.Run(bctx, chromedp.Evaluate[bool](`(() => { const f = document.getElementById("label-filter"); f.value = "helmet"; f.dispatchEvent(new Event("change")); return true })()`)); err != nil {
		t.Fatalf("filter: %v", err)
	}
	if err := live(); err != nil {
		t.Fatalf("filtered feed did not connect: %v", err)
	}
	detect("person")
	detect("helmet")
	if err := chromedp.Do(bctx, chromedp.WaitVisible(chromedp.CSS(`#feed tr[data-label="helmet"]`))); err != nil {
		t.Fatalf("filtered feed: %v", err)
	}
	if n, err := chromedp.Run(bctx, chromedp.Evaluate[int](`document.querySelectorAll('#feed tr[data-label="person"]').length`)); err != nil || n != 0 {
		t.Errorf("filtered feed shows %d person rows (err %v)", n, err)
	}

	// Device page: charts and recent detections; it refreshes on its own.
	if err := chromedp.Do(bctx, chromedp.Navigate(ts.URL+"/#/device/cam-7"),
		chromedp.WaitVisible(chromedp.CSS(`svg[data-chart="Frames per second"] polyline`)),
		chromedp.WaitVisible(chromedp.CSS(`#recent tr[data-label="helmet"]`))); err != nil {
		t.Fatalf("device page: %v", err)
	}
	detect("ladder")
	if err := chromedp.Do(bctx, chromedp.WaitVisible(chromedp.CSS(`#recent tr[data-label="ladder"]`))); err != nil {
		t.Fatalf("device page did not update: %v", err)
	}
	// The latest snapshot from the device's snapshot_url is shown.
	if _, err := chromedp.Run(bctx, chromedp.Poll[bool](`(() => { const i = document.querySelector("img.snap"); return !!i && i.complete && i.naturalWidth === 64 })()`, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		t.Fatalf("snapshot not shown: %v", err)
	}
}

// TestConsoleRollout runs fleetd's core with OTA and a real headless
