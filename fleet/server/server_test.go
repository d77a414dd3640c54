package server

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"edgefleet/fleet/api"
	"edgefleet/fleet/api/rest"
	"edgefleet/fleet/registry"
	"edgefleet/fleet/store"
)

const tok = "s3cret-operator-token"

func setup(t *testing.T) (*Server, *httptest.Server, store.Store, *registry.Registry) {
	t.Helper()
	st := store.NewMem(store.Retention{})
	reg, err := registry.Open(filepath.Join(t.TempDir(), "reg.db"), registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	pr := prometheus.NewRegistry()
	s, err := New(Options{Store: st, Registry: reg, Tokens: map[string]string{tok: "alice"}, Gatherer: pr, Registerer: pr, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts, st, reg
}

func do(t *testing.T, ts *httptest.Server, path, token string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", ts.URL+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func seed(t *testing.T, st store.Store, reg *registry.Registry) time.Time {
	t.Helper()
	reg.UpdateState(api.State{DeviceID: "cam-1", Online: true, Labels: map[string]string{"site": "plant-a", "line": "1"}, Model: "yolo", ModelVersion: "v1"})
	reg.UpdateState(api.State{DeviceID: "cam-2", Online: false, Labels: map[string]string{"site": "plant-b", "line": "2"}})
	reg.UpdateTelemetry(api.Telemetry{DeviceID: "cam-1", Cameras: []api.CameraStats{{ID: "c0", Up: true, FPS: 12}}})
	base := time.Now().Add(-10 * time.Minute).Truncate(time.Minute)
	var ev []api.Event
	for i := range 30 {
		ev = append(ev, api.Event{Seq: uint64(i + 1), CameraID: "c0", Time: base.Add(time.Duration(i) * time.Second).UnixMicro(), Label: []string{"person", "car"}[i%2], Score: 0.75, Box: [4]float32{1, 2, 3, 4}})
	}
	if _, err := st.Ingest(context.Background(), "cam-1", ev); err != nil {
		t.Fatal(err)
	}
	return base
}

func TestAPI(t *testing.T) {
	_, ts, st, reg := setup(t)
	base := seed(t, st, reg)
	from := base.Format(time.RFC3339)
	tests := []struct {
		name, path, token string
		code              int
		want              string // substring of the body
	}{
		{"no token", "/api/v1/devices", "", 401, `"error": "missing or unknown operator token"`},
		{"wrong token", "/api/v1/devices", "nope", 401, "operator token"},
		{"query token", "/api/v1/devices?access_token=" + tok, "", 401, "Authorization header"},
		{"devices", "/api/v1/devices", tok, 200, `"cam-2"`},
		{"devices by site", "/api/v1/devices?site=plant-b", tok, 200, `"cam-2"`},
		{"devices bad online", "/api/v1/devices?online=maybe", tok, 400, "online"},
		{"device", "/api/v1/devices/cam-1", tok, 200, `"model_version": "v1"`},
		{"device missing", "/api/v1/devices/zzz", tok, 404, `device \"zzz\" not found`},
		{"telemetry", "/api/v1/devices/cam-1/telemetry?since=-1h", tok, 200, `"fps": 12`},
		{"telemetry bad since", "/api/v1/devices/cam-1/telemetry?since=yesterday", tok, 400, "since"},
		{"fleet", "/api/v1/fleet", tok, 200, `"online": 1`},
		{"detections", "/api/v1/detections?label=car&limit=5", tok, 200, `"next"`},
		{"detections bad limit", "/api/v1/detections?limit=0", tok, 400, "limit"},
		{"detections bad device", "/api/v1/detections?device=a/b", tok, 400, "device"},
		{"detections bad cursor", "/api/v1/detections?cursor=zz", tok, 400, "cursor"},
		{"count", "/api/v1/detections/count?from=" + from + "&bucket=10s", tok, 200, `"total": 30`},
		{"count bad bucket", "/api/v1/detections/count?bucket=0s", tok, 400, "bucket"},
		{"export bad format", "/api/v1/detections/export?format=xml", tok, 400, "format"},
		{"unknown route", "/api/v1/nothing", tok, 404, "no route"},
		{"healthz", "/healthz", "", 200, `"ok"`},
		{"metrics", "/metrics", "", 200, "edgefleet_http_requests_total"},
		{"openapi", "/api/openapi.json", "", 200, `"/api/v1/detections/stream"`},
		{"console", "/", "", 200, "<title>edgefleet console</title>"},
		{"console js", "/console/app.js", "", 200, "EventSource"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, ts, tt.path, tt.token)
			if resp.StatusCode != tt.code || !strings.Contains(string(body), tt.want) {
				t.Fatalf("GET %s: %d %s\nwant %d containing %q", tt.path, resp.StatusCode, body, tt.code, tt.want)
			}
			if tt.code >= 400 {
				var e rest.Error
				if err := json.Unmarshal(body, &e); err != nil || e.Status != tt.code {
					t.Errorf("error body %s is not {error, status}", body)
				}
			}
		})
	}
}

func TestPagination(t *testing.T) {
	_, ts, st, reg := setup(t)
	seed(t, st, reg)
	seen := map[uint64]bool{}
	path := "/api/v1/detections?limit=7"
	for range 10 {
		_, body := do(t, ts, path, tok)
		var p store.Page
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatal(err)
		}
		for _, r := range p.Records {
			if seen[r.Seq] {
				t.Fatalf("seq %d twice", r.Seq)
			}
			seen[r.Seq] = true
		}
		if p.Next == "" {
			break
		}
		path = "/api/v1/detections?limit=7&cursor=" + p.Next
	}
	if len(seen) != 30 {
		t.Fatalf("paged through %d records, want 30", len(seen))
	}
}

func TestExportCSV(t *testing.T) {
	_, ts, st, reg := setup(t)
	seed(t, st, reg)
	resp, body := do(t, ts, "/api/v1/detections/export?format=csv&label=person", tok)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/csv; charset=utf-8" {
		t.Fatalf("export: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	rows, err := csv.NewReader(strings.NewReader(string(body))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 16 || strings.Join(rows[0], ",") != strings.Join(CSVHeader, ",") {
		t.Fatalf("%d rows, header %v", len(rows), rows[0])
	}
	if r := rows[1]; r[0] != "cam-1" || r[4] != "person" || r[6] != "0.75" || r[10] != "4" {
		t.Errorf("row %v", r)
	}
}

func TestStream(t *testing.T) {
	s, ts, _, _ := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/api/v1/detections/stream?label=car&ticket="+liveTicket(t, ts.URL, tok), nil)
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	br := bufio.NewReader(resp.Body)
	// The opening comment is written once the feed has subscribed.
	if l, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(l, ":") {
		t.Fatalf("opening comment %q: %v", l, err)
	}
	s.Hub().Publish([]store.Record{
		{Device: "d1", Event: api.Event{Seq: 1, Label: "person"}},
		{Device: "d1", Event: api.Event{Seq: 2, Label: "car"}},
	})
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended: %v", err)
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		var r store.Record
		if err := json.Unmarshal([]byte(data), &r); err != nil {
			t.Fatal(err)
		}
		if r.Label != "car" || r.Seq != 2 {
			t.Fatalf("filtered feed got %+v", r)
		}
		return
	}
}

func FuzzParseQuery(f *testing.F) {
	f.Add("device=a&from=-1h&to=2026-01-02T03:04:05Z&limit=5&cursor=abc")
	f.Add("from=123456&label=x")
	f.Add("type=line_cross&line=door&zone=bay&format=csv")
	f.Fuzz(func(t *testing.T, raw string) {
		r := httptest.NewRequest("GET", "/x", nil)
		r.URL.RawQuery = raw
		parseQuery(r)
		parseEventQuery(r)
		checkFormat(r)
	})
}
