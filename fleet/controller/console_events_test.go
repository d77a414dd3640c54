package controller_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"edgefleet/fleet/api"
	"edgefleet/fleet/api/rest"
	"edgefleet/fleet/api/rest/eventstest"
	"edgefleet/fleet/client"
	"edgefleet/fleet/controller/controllertest"
	"edgefleet/internal/testutil"
)

// eventsBase returns the base URL where the browser finds the analytics
// routes serving sample: fleetd itself where it has them (the device sent
// the events over MQTT), else eventstest's double of those routes in front
// of fleetd, which serves everything else.
func eventsBase(t *testing.T, ctx context.Context, f *controllertest.Fleetd, device string, sample []eventstest.Event) string {
	t.Helper()
	_, err := f.API.Events(ctx, rest.EventQuery{Limit: 1})
	var ce *client.Error
	if errors.As(err, &ce) && ce.Status == http.StatusNotFound {
		t.Log("fleetd has no /api/v1/events: the analytics routes come from eventstest")
		u, _ := url.Parse("http://" + f.HTTP)
		ts := httptest.NewServer(eventstest.New(controllertest.Token, httputil.NewSingleHostReverseProxy(u), sample))
		t.Cleanup(ts.Close)
		return ts.URL
	}
	testutil.WaitFor(t, "the device's events stored", 10*time.Second, func() bool {
		p, err := f.API.Events(ctx, rest.EventQuery{Device: device})
		return err == nil && len(p.Events) == len(sample)
	})
	return "http://" + f.HTTP
}

// TestConsoleEvents is issue 13's must-show 4: in headless Chromium, the
// events page shows a test device's events with their thumbnails (decoded
// images, fetched with the token header), a click shows the event's crop
// and thumbnail, the line's chart draws its crossings per bucket as the
// events say, for two bucket widths, and the device page shows each
// camera's line and zone counters from its telemetry.
func TestConsoleEvents(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	testutil.Chromium(t)
	f := controllertest.Start(t, "devices: [{id: cam-7, password: pw-cam-7}]\n")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	now := time.Now()
	sample := eventstest.Sample("cam-7", now)

	// The device: online, its counters in telemetry, its events sent as an agent sends them.
	_, pub := testDevice(t, f, "cam-7", "pw-cam-7")
	pub(api.StateTopic("cam-7"), api.State{DeviceID: "cam-7", Online: true, Time: now.UnixMilli(), Cameras: []string{"belt-a"}})
	var lines []api.LineCount
	for k, n := range eventstest.SampleCounts {
		lines = append(lines, api.LineCount{Line: "exit", Direction: k[0], Label: k[1], Count: uint64(n)})
	}
	pub(api.TelemetryTopic("cam-7"), api.Telemetry{DeviceID: "cam-7", Time: now.UnixMilli(), Cameras: []api.CameraStats{{ID: "belt-a", Up: true, FPS: 5,
		Lines: lines, Zones: []api.ZoneCount{{Zone: "cell", Label: "person", Present: 1, Entered: 4}}}}})
	batch := api.DetectionBatch{DeviceID: "cam-7"}
	for _, e := range sample {
		batch.Events = append(batch.Events, e.Event)
	}
	pub(api.DetectionsTopic("cam-7"), batch)
	testutil.WaitFor(t, "cam-7 online with telemetry", 10*time.Second, func() bool {
		d, err := f.API.Device(ctx, "cam-7")
		return err == nil && d.Online && d.Telemetry != nil
	})
	base := eventsBase(t, ctx, f, "cam-7", sample)

	b := newBrowser(t, ctx)
	b.signIn(base)
	b.do("events page", chromedp.Navigate(base+"/#/events?device=cam-7"), chromedp.WaitVisible(chromedp.CSS(`#events tr[data-event="cam-7/1"]`)))
	b.poll("every event listed", `document.querySelectorAll("#events tr[data-event]").length === 9`, 10*time.Second)
	// Seven of them have a picture (six crossings, the ended track): each thumbnail decoded.
	b.poll("thumbnails shown", `(() => { const imgs = [...document.querySelectorAll("#events img.thumb")];
		return imgs.length === 7 && imgs.every((i) => i.complete && i.naturalWidth > 0) })()`, 15*time.Second)
	thumb := fmt.Sprintf("%s/api/v1/events/cam-7/%d/snapshot?part=thumb", base, sample[0].Seq)
	if auth, ok := b.authOf(thumb); !ok || auth != "Bearer "+controllertest.Token {
		t.Errorf("thumbnail %s: sent %v, Authorization %q", thumb, ok, auth)
	}

	// The line's chart: its bars are the crossings per bucket, its table the counts.
	checkChart := func(bucket time.Duration) {
		t.Helper()
		want := map[int64]int{}
		for _, e := range sample {
			if e.Type == api.TypeLineCross {
				want[time.UnixMicro(e.Time).Truncate(bucket).UnixMilli()]++
			}
		}
		title := fmt.Sprintf("Line exit: crossings per %s", strings.TrimSuffix(strings.TrimSuffix(bucket.String(), "0s"), "0m"))
		b.poll("chart of "+bucket.String(), fmt.Sprintf(`(() => { const c = document.querySelector('#line-counts .chart[data-line="exit"]');
			return !!c && c.querySelector("h3").textContent === %q })()`, title), 10*time.Second)
		got, err := chromedp.Run(b.ctx, chromedp.Evaluate[map[string]int](`Object.fromEntries([...document.querySelectorAll('#line-counts .chart[data-line="exit"] rect')]
			.filter((r) => +r.dataset.v > 0).map((r) => [r.dataset.t, +r.dataset.v]))`))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Errorf("%v buckets: bars %v, want %v", bucket, got, want)
		}
		for ms, n := range want {
			if got[fmt.Sprint(ms)] != n {
				t.Errorf("%v buckets: bar at %v is %d, want %d (bars %v)", bucket, time.UnixMilli(ms), got[fmt.Sprint(ms)], n, got)
			}
		}
	}
	checkChart(time.Hour)
	for k, n := range eventstest.SampleCounts {
		sel := fmt.Sprintf(`#line-counts table[data-line="exit"] tr[data-direction=%q][data-label=%q] td.n`, k[0], k[1])
		if s := b.text(sel); s != fmt.Sprint(n) {
			t.Errorf("line table %v: %q, want %d", k, s, n)
		}
	}
	if _, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`(() => { const e = document.getElementById("ef-bucket"); e.value = "15m"; e.dispatchEvent(new Event("change")); return true })()`)); err != nil {
		t.Fatal(err)
	}
	checkChart(15 * time.Minute)

	// A click on a thumbnail shows the crop and the thumbnail at full size.
	b.click("thumbnail", `#events tr[data-event="cam-7/1"] a.thumb`)
	b.poll("full snapshot", `(() => { const v = document.querySelector('#event-view[data-event="cam-7/1"]'); if (!v) return false;
		const c = v.querySelector('figure[data-part="crop"] img'), th = v.querySelector('figure[data-part="thumb"] img');
		return !!c && !!th && c.complete && th.complete && c.naturalWidth === 48 && th.naturalWidth === 160 })()`, 10*time.Second)

	// Filters by type and label.
	b.do("type filter", chromedp.Navigate(base+"/#/events?device=cam-7&type=zone_exit"))
	b.poll("zone exits only", `document.querySelectorAll("#events tr[data-event]").length === 1 && !!document.querySelector('#events tr[data-type="zone_exit"]')`, 10*time.Second)
	b.do("label filter", chromedp.Navigate(base+"/#/events?device=cam-7&label=Cup"))
	b.poll("cups only, the label in any case", `document.querySelectorAll("#events tr[data-event]").length === 1 && !!document.querySelector('#events tr[data-label="cup"]')`, 10*time.Second)

	// The device page: counters per camera from the latest telemetry.
	b.do("device page", chromedp.Navigate(base+"/#/device/cam-7"), chromedp.WaitVisible(chromedp.CSS("#line-counters")))
	for k, n := range eventstest.SampleCounts {
		sel := fmt.Sprintf(`#line-counters tr[data-camera="belt-a"][data-line="exit"][data-direction=%q][data-label=%q] td.n`, k[0], k[1])
		if s := b.text(sel); s != fmt.Sprint(n) {
			t.Errorf("device counter %v: %q, want %d", k, s, n)
		}
	}
	if p, e := b.text(`#zone-counters tr[data-zone="cell"] td.present`), b.text(`#zone-counters tr[data-zone="cell"] td.entered`); p != "1" || e != "4" {
		t.Errorf("zone counter: present %q entered %q", p, e)
	}
	b.noTokenInURLs()
}
