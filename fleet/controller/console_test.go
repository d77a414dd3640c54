package controller_test

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	paho "github.com/eclipse/paho.mqtt.golang"

	"edgefleet/fleet/api"
	"edgefleet/fleet/api/rest"
	"edgefleet/fleet/controller/controllertest"
	"edgefleet/internal/testutil"
	"edgefleet/models/modeltest"
)

// Chromium: a rollout to a device that answers over MQTT shows in the
// rollout list, and its page follows the device's job from downloading to
// succeeded, per wave and by state.
func TestConsoleRollout(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	exe := testutil.Chromium(t)
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
	agent := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + f.MQTT).SetClientID("cam-9").SetUsername("cam-9").SetPassword("pw-cam-9"))
	if tk := agent.Connect(); !tk.WaitTimeout(5*time.Second) || tk.Error() != nil {
		t.Fatalf("agent connect: %v", tk.Error())
	}
	defer agent.Disconnect(0)
	if tk := agent.Subscribe(api.CommandsTopic("cam-9"), 1, func(_ paho.Client, m paho.Message) {
		var c api.Command
		if api.Decode(m.Payload(), &c) == nil {
			cmds <- c
		}
	}); !tk.WaitTimeout(5*time.Second) || tk.Error() != nil {
		t.Fatalf("subscribe: %v", tk.Error())
	}
	pub := func(topic string, v any) {
		t.Helper()
		p, _ := json.Marshal(v)
		if tk := agent.Publish(topic, 1, false, p); !tk.WaitTimeout(5*time.Second) || tk.Error() != nil {
			t.Fatalf("publish %s: %v", topic, tk.Error())
		}
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

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.NoFirstRun, chromedp.UserDataDir(t.TempDir()))
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("%s: %v", sel, err)
		}
		return s
	}

	// The list: the rollout, in its only wave.
	row := `#rollouts tr[data-rollout="r1"]`
	if err := chromedp.Do(bctx, chromedp.Navigate(base+"/?token="+tok+"#/rollouts"), chromedp.WaitVisible(chromedp.CSS(row))); err != nil {
		t.Fatalf("rollout list: %v", err)
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
