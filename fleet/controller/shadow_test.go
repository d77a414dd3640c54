package controller_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"
	"sync/atomic"
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

// TestShadowRollout200: fleetd and 200 simulated devices over real MQTT.
// A rollout with a shadow phase (min agreement 0.9) of a candidate the
// devices agree with at 0.95 completes: every device ran the phase, passed
// and swapped. Then a candidate they agree with at 0.80: the canary fails
// its shadow phase, the rollout aborts before any device swapped, and no
// device gets a rollback (there is nothing to undo).
func TestShadowRollout200(t *testing.T) {
	const n = 200
	model, err := os.ReadFile(modeltest.Path(t, "models", "yolov5n-int8.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	f := controllertest.Start(t, `
services: [{user: sim, password: sim-password}]
ota: {health_window: 200ms, job_timeout: 2m}
`)
	c := f.API
	model3, err := os.ReadFile(modeltest.Path(t, "models", "yolo26n_int8_320_e2e.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	controllertest.PushModel(t, c, "yolo-sim", "2", model)
	controllertest.PushModel(t, c, "yolo-sim", "3", model3)
	var agreement atomic.Value
	agreement.Store(0.95)
	var mu sync.Mutex
	commands := map[string][]api.Command{}
	startSim(t, sim.Options{Broker: "tcp://" + f.MQTT, Devices: n, MaxShadow: 100 * time.Millisecond,
		ShadowAgreementOf: func(string) float64 { return agreement.Load().(float64) },
		OnCommand: func(dev string, cmd api.Command) {
			mu.Lock()
			defer mu.Unlock()
			commands[dev] = append(commands[dev], cmd)
		}})
	controllertest.WaitOnline(t, c, n)

	req := rest.CreateRollout{Model: "yolo-sim@2", Canary: 2, Waves: "10%,50%,100%", MaxFailures: "0", Shadow: "10m", MinAgreement: 0.9, ShadowSample: "1/4"}
	sum := controllertest.CreateRollout(t, c, req)
	v := controllertest.WaitRollout(t, c, sum.ID, 2*time.Minute, func(v rest.Rollout) bool { return controllertest.Final(v.State) })
	if v.State != rest.StateCompleted || v.Succeeded != n {
		t.Fatalf("passing candidate: %s (%s), %+v", v.State, v.Reason, v.Progress)
	}
	passed := 0
	for _, p := range v.Progress {
		passed += p.ShadowPassed
		if math.Abs(p.ShadowAgreement-0.95) > 1e-9 || p.ShadowFailed != 0 {
			t.Errorf("wave %d: %+v", p.Wave, p)
		}
	}
	if passed != n {
		t.Errorf("%d shadow phases passed, want %d", passed, n)
	}
	mu.Lock()
	for dev, cmds := range commands {
		if len(cmds) != 1 || cmds[0].Shadow == nil || cmds[0].Shadow.SampleEvery != 4 {
			t.Fatalf("%s received %+v", dev, cmds)
		}
	}
	clear(commands)
	mu.Unlock()
	sh, err := c.RolloutShadow(context.Background(), sum.ID)
	if err != nil || len(sh.Devices) != n || sh.Devices[0].Final == nil || len(sh.Devices[0].SampleURLs) != 1 {
		t.Fatalf("shadow reports: %d devices, %v", len(sh.Devices), err)
	}

	agreement.Store(0.80)
	req.Model = "yolo-sim@3"
	sum = controllertest.CreateRollout(t, c, req)
	v = controllertest.WaitRollout(t, c, sum.ID, time.Minute, func(v rest.Rollout) bool { return controllertest.Final(v.State) && v.Progress[0].Failed == 2 })
	if v.State != rest.StateAborted || !strings.Contains(v.Reason, "failures exceed max-failures 0") || v.Progress[0].ShadowFailed != 2 {
		t.Fatalf("failing candidate: %s (%s), %+v", v.State, v.Reason, v.Progress)
	}
	for _, j := range v.Jobs {
		if j.Wave == 0 && !strings.Contains(j.Reason, "agreement 0.800 below min-agreement 0.900") || j.Rollback != "" || j.Wave > 0 && j.State != "cancelled" {
			t.Errorf("%s: %s %q, rollback %q", j.DeviceID, j.State, j.Reason, j.Rollback)
		}
	}
	mu.Lock()
	if len(commands) != 2 {
		t.Errorf("%d devices received commands, want the 2 canaries", len(commands))
	}
	for dev, cmds := range commands {
		for _, cmd := range cmds {
			if cmd.Kind != api.CommandModelUpdate {
				t.Errorf("%s received %s", dev, cmd.Kind)
			}
		}
	}
	mu.Unlock()
	for dev, ver := range controllertest.DeviceVersions(t, c) {
		if ver != "2" {
			t.Errorf("%s on version %s after the failed shadow rollout", dev, ver)
		}
	}
}

// TestConsoleShadow is issue 14's must-show 5: in headless Chromium, the
// rollout page shows each device's shadow metrics and a disagreement
// sample (a JPEG that decodes: naturalWidth > 0) of a simulated device
// whose shadow phase failed, and an operator accepts it with the button:
// the device then swaps.
func TestConsoleShadow(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	testutil.Chromium(t)
	model, err := os.ReadFile(modeltest.Path(t, "models", "yolov5n-int8.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	f := controllertest.Start(t, `
services: [{user: sim, password: sim-password}]
devices: [{id: cam-9, password: pw-cam-9}]
ota: {health_window: 200ms, job_timeout: 10m}
`)
	c := f.API
	controllertest.PushModel(t, c, "yolo-sim", "2", model)
	startSim(t, sim.Options{Broker: "tcp://" + f.MQTT, Devices: 2, MaxShadow: 100 * time.Millisecond,
		ShadowAgreementOf: func(d string) float64 { return map[bool]float64{true: 0.5, false: 0.97}[d == "sim-1"] }})
	// cam-9 takes its job and never answers: the rollout stays in its wave.
	agent := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + f.MQTT).SetClientID("cam-9").SetUsername("cam-9").SetPassword("pw-cam-9"))
	if tk := agent.Connect(); !tk.WaitTimeout(5*time.Second) || tk.Error() != nil {
		t.Fatalf("agent connect: %v", tk.Error())
	}
	defer agent.Disconnect(0)
	st := fmt.Sprintf(`{"device_id":"cam-9","online":true,"time_ms":%d,"model":"yolo-sim","model_version":"1"}`, time.Now().UnixMilli())
	if tk := agent.Publish(api.StateTopic("cam-9"), 1, true, st); !tk.WaitTimeout(5*time.Second) || tk.Error() != nil {
		t.Fatal(tk.Error())
	}
	controllertest.WaitOnline(t, c, 3)
	sum := controllertest.CreateRollout(t, c, rest.CreateRollout{Model: "yolo-sim@2", Canary: 0, Waves: "100%", MaxFailures: "1",
		Shadow: "5m", MinAgreement: 0.9})
	controllertest.WaitRollout(t, c, sum.ID, 30*time.Second, func(v rest.Rollout) bool {
		return v.States[api.JobFailed] == 1 && v.States[api.JobSucceeded] == 1
	})

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b := newBrowser(t, ctx)
	base := "http://" + f.HTTP
	b.signIn(base)
	b.do("rollout page", chromedp.Navigate(base+"/#/rollout/"+sum.ID), chromedp.WaitVisible(chromedp.CSS(`#shadow tr[data-device="sim-1"][data-outcome="failed"]`)))
	if s := b.text(`#shadow tr[data-device="sim-1"] td.agreement`); s != "0.500" {
		t.Errorf("sim-1 agreement cell %q", s)
	}
	if s := b.text(`#shadow tr[data-device="sim-0"]`); !strings.Contains(s, "passed") || !strings.Contains(s, "0.97") {
		t.Errorf("sim-0 row %q", s)
	}
	if s := b.text(`#shadow tr[data-device="sim-1"]`); !strings.Contains(s, "person → car") {
		t.Errorf("sim-1 row has no confusion pair: %q", s)
	}
	b.poll("a disagreement sample decoded", `[...document.querySelectorAll("#shadow-samples img")].some((i) => i.complete && i.naturalWidth > 0)`, 20*time.Second)
	b.do("Accept offered", chromedp.WaitVisible(chromedp.CSS(`#shadow button.accept[data-device="sim-1"]`)))

	// A viewer sees the same page without the button.
	viewer, err := c.CreateToken(ctx, rest.CreateToken{Name: "watcher", Role: rest.RoleViewer})
	if err != nil {
		t.Fatal(err)
	}
	b.click("sign out", "#signout")
	b.do("viewer signs in", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("#login-form")),
		chromedp.SendKeys(chromedp.CSS("#token"), viewer.Token), chromedp.Click(chromedp.CSS("#signin")), chromedp.WaitVisible(chromedp.CSS("#n-devices")))
	b.do("viewer's rollout page", chromedp.Navigate(base+"/#/rollout/"+sum.ID), chromedp.WaitVisible(chromedp.CSS(`#shadow tr[data-device="sim-1"][data-outcome="failed"]`)))
	b.poll("the viewer's sample decoded", `[...document.querySelectorAll("#shadow-samples img")].some((i) => i.complete && i.naturalWidth > 0)`, 20*time.Second)
	if n := b.text(`#shadow tr[data-device="sim-1"] td:last-child`); n != "–" {
		t.Errorf("a viewer's row offers %q", n)
	}
	b.click("sign out", "#signout")
	b.signIn(base)
	b.do("rollout page again", chromedp.Navigate(base+"/#/rollout/"+sum.ID))
	b.click("accept", `#shadow button.accept[data-device="sim-1"]`)
	b.do("accepted", chromedp.WaitVisible(chromedp.CSS(`#shadow tr[data-device="sim-1"][data-outcome="accepted"]`)))
	v := controllertest.WaitRollout(t, c, sum.ID, 30*time.Second, func(v rest.Rollout) bool { return v.States[api.JobSucceeded] == 2 })
	for _, j := range v.Jobs {
		if j.DeviceID == "sim-1" && (j.Shadow == nil || j.Shadow.AcceptedBy != "test" || !strings.HasSuffix(j.JobID, "-a")) {
			t.Errorf("sim-1 job %+v shadow %+v", j, j.Shadow)
		}
	}
	b.noTokenInURLs()
}
