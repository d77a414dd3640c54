package controller_test

import (
	"context"
	"fmt"
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

// TestConsoleOperates: in headless Chromium, an operator signs in (no
// token in any request URL), uploads a model, creates a rollout from the
// form, pauses and aborts it; a provisioned device that never connected
// is listed as such; an unknown device says so.
func TestConsoleOperates(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	testutil.Chromium(t)
	modelPath := modeltest.Path(t, "models", "yolov5n-int8.tflite")
	f := controllertest.Start(t, `
devices: [{id: cam-9, password: pw-cam-9}, {id: cam-8, password: pw-cam-8}, {id: spare-1, password: pw-spare-1}]
ota: {health_window: 1m, job_timeout: 10m}
`)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base := "http://" + f.HTTP
	agent := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + f.MQTT).SetClientID("cam-9").SetUsername("cam-9").SetPassword("pw-cam-9"))
	if tk := agent.Connect(); !tk.WaitTimeout(5*time.Second) || tk.Error() != nil {
		t.Fatalf("agent connect: %v", tk.Error())
	}
	defer agent.Disconnect(0)
	st := fmt.Sprintf(`{"device_id":"cam-9","online":true,"time_ms":%d,"labels":{"site":"plant-x"},"model":"yolov5n","model_version":"1"}`, time.Now().UnixMilli())
	if tk := agent.Publish(api.StateTopic("cam-9"), 1, true, st); !tk.WaitTimeout(5*time.Second) || tk.Error() != nil {
		t.Fatal(tk.Error())
	}
	testutil.WaitFor(t, "cam-9 online", 5*time.Second, func() bool { d, err := f.API.Device(ctx, "cam-9"); return err == nil && d.Online })
	// cam-8 is a target too, but offline: its job waits, and ends cancelled when the rollout aborts.
	offline := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + f.MQTT).SetClientID("cam-8").SetUsername("cam-8").SetPassword("pw-cam-8"))
	if tk := offline.Connect(); !tk.WaitTimeout(5*time.Second) || tk.Error() != nil {
		t.Fatalf("cam-8 connect: %v", tk.Error())
	}
	st8 := fmt.Sprintf(`{"device_id":"cam-8","online":false,"time_ms":%d,"labels":{"site":"plant-x"},"model":"yolov5n","model_version":"1"}`, time.Now().UnixMilli())
	if tk := offline.Publish(api.StateTopic("cam-8"), 1, true, st8); !tk.WaitTimeout(5*time.Second) || tk.Error() != nil {
		t.Fatal(tk.Error())
	}
	offline.Disconnect(0)
	testutil.WaitFor(t, "cam-8 known, offline", 5*time.Second, func() bool {
		d, err := f.API.Device(ctx, "cam-8")
		return err == nil && !d.Online && d.Labels["site"] == "plant-x"
	})

	b := newBrowser(t, ctx)
	b.signIn(base)

	// Upload a model with the form.
	b.do("models page", chromedp.Navigate(base+"/#/models"), chromedp.WaitVisible(chromedp.CSS("#upload-form")),
		chromedp.SendKeys(chromedp.CSS("#up-name"), "yolov5n"), chromedp.SendKeys(chromedp.CSS("#up-version"), "2"),
		chromedp.SetUploadFiles(chromedp.CSS("#up-file"), []string{modelPath}), chromedp.Click(chromedp.CSS("#up-submit")))
	b.poll("upload done", `(() => { const p = document.getElementById("upload-progress"); const m = document.getElementById("upload-msg");
		return !!document.querySelector('#artifacts tr[data-artifact="yolov5n@2"]') || (!!p && p.value === 1 && !!m && m.textContent.startsWith("Uploaded")) })()`, 30*time.Second)
	b.do("model listed", chromedp.WaitVisible(chromedp.CSS(`#artifacts tr[data-artifact="yolov5n@2"]`)))

	// A rollout from the form.
	b.do("new rollout", chromedp.Navigate(base+"/#/rollouts"), chromedp.Click(chromedp.CSS("#new-rollout-button")),
		chromedp.WaitReady(chromedp.CSS(`#ro-artifact option[value="yolov5n@2"]`)),
		chromedp.SendKeys(chromedp.CSS("#ro-selector"), "site=plant-x"), chromedp.SendKeys(chromedp.CSS("#ro-waves"), "100%"),
		chromedp.Click(chromedp.CSS("#ro-create")), chromedp.WaitVisible(chromedp.CSS("#rollout-state")))
	b.poll("rollout running", `document.getElementById("rollout-state").textContent.startsWith("wave")`, 10*time.Second)
	b.click("pause", "#act-pause")
	b.poll("paused", `!!document.getElementById("rollout-state") && document.getElementById("rollout-state").textContent === "paused"`, 10*time.Second)
	b.do("abort", chromedp.WaitVisible(chromedp.CSS("#act-resume")), chromedp.SendKeys(chromedp.CSS("#abort-reason"), "wrong model"),
		chromedp.Click(chromedp.CSS("#act-abort")))
	b.poll("aborted", `!!document.getElementById("rollout-state") && document.getElementById("rollout-state").textContent === "aborted"`, 10*time.Second)
	ro, err := f.API.Rollouts(ctx)
	if err != nil || len(ro) != 1 || ro[0].State != rest.StateAborted || !strings.Contains(ro[0].Reason, "wrong model") || ro[0].Cancelled != 1 {
		t.Fatalf("rollouts %+v, %v", ro, err)
	}
	// The job never sent shows as cancelled, with why, not as pending.
	b.do("cancelled job", chromedp.WaitVisible(chromedp.CSS(`#jobs tr[data-device="cam-8"][data-state="cancelled"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#job-states tr[data-state="cancelled"]`)))
	if s := b.text(`#jobs tr[data-device="cam-8"] td.reason`); !strings.Contains(s, "not sent") || !strings.Contains(s, "wrong model") {
		t.Errorf("cam-8's reason: %q", s)
	}
	if s := b.text("#rollout-info"); !strings.Contains(s, "1 cancelled (never sent") {
		t.Errorf("rollout info: %q", s)
	}

	// The provisioned device that never connected is listed as such; an unknown device says so.
	b.do("never seen", chromedp.Navigate(base+"/#/devices?status=never"), chromedp.WaitVisible(chromedp.CSS(`#devices tr[data-device="spare-1"][data-status="never"]`)))
	b.click("never-seen link", `#devices tr[data-device="spare-1"] a`)
	b.do("never-seen page", chromedp.WaitVisible(chromedp.CSS("#never-note")))
	b.do("unknown device", chromedp.Navigate(base+"/#/device/nobody"), chromedp.WaitVisible(chromedp.CSS("#page-error")))
	if s := b.text("#page-error"); !strings.Contains(s, "No device named nobody") {
		t.Errorf("unknown device page: %q", s)
	}
	b.noTokenInURLs()
}
