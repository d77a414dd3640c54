package controller_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	paho "github.com/eclipse/paho.mqtt.golang"

	"edgefleet/fleet/api"
	"edgefleet/fleet/api/rest"
	"edgefleet/fleet/client"
	"edgefleet/fleet/controller/controllertest"
	"edgefleet/internal/testutil"
)

const fleetSize = 10000

// fillFleet registers n devices dev-00000.. over MQTT (their state
// messages, sent by a service login): site plant-(i%10), line i%4,
// yolov8n version i%3, every seventh offline.
func fillFleet(t *testing.T, f *controllertest.Fleetd, n int) {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + f.MQTT).SetClientID("filler").SetUsername("svc").SetPassword("svc-password").
		SetMaxResumePubInFlight(1000))
	if tk := c.Connect(); !tk.WaitTimeout(5*time.Second) || tk.Error() != nil {
		t.Fatalf("connect: %v", tk.Error())
	}
	defer c.Disconnect(0)
	now := time.Now().UnixMilli()
	var last paho.Token
	for i := range n {
		id := fmt.Sprintf("dev-%05d", i)
		st := api.State{DeviceID: id, Online: i%7 != 0, Time: now, Model: "yolov8n", ModelVersion: fmt.Sprint(i % 3),
			Labels: map[string]string{"site": fmt.Sprintf("plant-%d", i%10), "line": fmt.Sprint(i % 4)}}
		b, _ := json.Marshal(st)
		last = c.Publish(api.StateTopic(id), 1, false, b)
		if i%500 == 499 && (!last.WaitTimeout(10*time.Second) || last.Error() != nil) {
			t.Fatalf("publish: %v", last.Error())
		}
	}
	if !last.WaitTimeout(10*time.Second) || last.Error() != nil {
		t.Fatalf("publish: %v", last.Error())
	}
	testutil.WaitFor(t, fmt.Sprintf("%d devices registered", n), 30*time.Second, func() bool {
		p, err := f.API.DevicePage(context.Background(), rest.DeviceQuery{Limit: 1})
		return err == nil && p.Total == n
	})
}

// TestConsoleDevices: among 10,000 devices, the console pages through the
// list, finds one by search and filter, and decommissions it from its
// page; fleetd forgets it (its detections stay).
func TestConsoleDevices(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser and 10,000 devices")
	}
	testutil.Chromium(t)
	f := controllertest.Start(t, "services: [{user: svc, password: svc-password}]\n")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base := "http://" + f.HTTP
	start := time.Now()
	fillFleet(t, f, fleetSize)
	t.Logf("%d devices registered in %v", fleetSize, time.Since(start).Round(time.Millisecond))

	b := newBrowser(t, ctx)
	b.signIn(base)
	b.do("devices page", chromedp.Navigate(base+"/#/devices"), chromedp.WaitVisible(chromedp.CSS(`#devices tr[data-device="dev-00049"]`)))
	if s := b.text("#devices-total"); s != "1–50 of 10000 devices" {
		t.Errorf("total %q", s)
	}
	b.click("next page", "#page-next")
	b.do("page 2", chromedp.WaitVisible(chromedp.CSS(`#devices tr[data-device="dev-00050"]`)))
	b.poll("page 2 total", `document.getElementById("devices-total").textContent === "51–100 of 10000 devices"`, 10*time.Second)
	// Sorting by a column: descending id puts the last device first.
	b.click("sort", `th[data-sort="id"]`)
	b.do("sorted", chromedp.WaitVisible(chromedp.CSS(`#devices tr[data-device="dev-09999"]`)))

	// Search and filter: one device.
	set := func(id, v string) {
		t.Helper()
		if _, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](fmt.Sprintf(`(() => { const e = document.getElementById(%q); e.value = %q; e.dispatchEvent(new Event("change")); return true })()`, id, v))); err != nil {
			t.Fatal(err)
		}
	}
	b.do("search", chromedp.WaitVisible(chromedp.CSS("#f-q")))
	set("f-q", "734")
	b.poll("search applied", `location.hash.includes("q=734") && !!document.getElementById("devices-total") && document.getElementById("f-q").value === "734"`, 10*time.Second)
	b.do("search page", chromedp.WaitVisible(chromedp.CSS(`#devices tr[data-device="dev-07342"]`)))
	set("f-site", "plant-2")
	b.poll("site applied", `location.hash.includes("site=plant-2") && document.querySelectorAll("#devices tr[data-device]").length === 1`, 10*time.Second)
	set("f-status", "online")
	b.poll("status applied", `location.hash.includes("status=online") && !!document.querySelector('#devices tr[data-device="dev-07342"][data-status="online"]')`, 10*time.Second)
	b.poll("filtered total", `document.getElementById("devices-total").textContent === "1–1 of 1 devices"`, 10*time.Second)

	// Its page, and decommission with the confirmation.
	b.click("device link", `#devices tr[data-device="dev-07342"] a`)
	b.do("device page", chromedp.WaitVisible(chromedp.CSS("#device-info")))
	b.click("decommission", "#decommission")
	b.click("confirm", "#decommission-confirm-yes")
	b.do("flash", chromedp.WaitVisible(chromedp.CSS("#flash")))
	if s := b.text("#flash"); !strings.Contains(s, "dev-07342 decommissioned") {
		t.Errorf("flash %q", s)
	}
	var ce *client.Error
	if _, err := f.API.Device(ctx, "dev-07342"); !errorsAs(err, &ce) || ce.Status != 404 {
		t.Fatalf("after decommission: %v", err)
	}
	p, err := f.API.DevicePage(ctx, rest.DeviceQuery{Limit: 1})
	if err != nil || p.Total != fleetSize-1 {
		t.Fatalf("after decommission: %d devices, %v", p.Total, err)
	}
	b.do("search again", chromedp.Navigate(base+"/#/devices?q=07342"))
	b.poll("search after decommission finds none", `document.getElementById("f-q") && document.getElementById("f-q").value === "07342" &&
		document.getElementById("devices-total").textContent === "No device matches."`, 10*time.Second)
	b.noTokenInURLs()
}
