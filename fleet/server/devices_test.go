package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"edgefleet/fleet/api"
	"edgefleet/fleet/api/rest"
	"edgefleet/fleet/registry"
	"edgefleet/fleet/store"
)

func setupProvisioned(t *testing.T, provisioned []string) (*httptest.Server, store.Store, *registry.Registry) {
	t.Helper()
	st := store.NewMem(store.Retention{})
	reg, err := registry.Open(filepath.Join(t.TempDir(), "reg.db"), registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	pr := prometheus.NewRegistry()
	s, err := New(Options{Store: st, Registry: reg, Tokens: map[string]string{tok: "alice"}, Gatherer: pr, Logger: slog.New(slog.DiscardHandler),
		Provisioned: provisioned})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return ts, st, reg
}

func pageIDs(t *testing.T, ts *httptest.Server, query string) (rest.DevicePage, []string) {
	t.Helper()
	resp, b := do(t, ts, "/api/v1/devices?"+query, tok)
	if resp.StatusCode != 200 {
		t.Fatalf("?%s: %d %s", query, resp.StatusCode, b)
	}
	var p rest.DevicePage
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	ids := []string{}
	for _, d := range p.Devices {
		ids = append(ids, d.ID+":"+d.Status)
	}
	return p, ids
}

// TestDeviceList: search, filters, sorting and paging are done by fleetd;
// provisioned devices that never reported are listed with status never.
func TestDeviceList(t *testing.T) {
	ts, _, reg := setupProvisioned(t, []string{"cam-03", "spare-1"})
	for i := range 25 {
		id := fmt.Sprintf("cam-%02d", i+10)
		reg.UpdateState(api.State{DeviceID: id, Online: i%5 != 0, Labels: map[string]string{"site": []string{"north", "south"}[i%2], "line": fmt.Sprint(i % 3)},
			Model: "yolov8n", ModelVersion: fmt.Sprint(1 + i%2)})
	}
	reg.RecordDetections("cam-20", 50)
	tests := []struct {
		query string
		total int
		want  []string
	}{
		{"limit=3", 27, []string{"cam-03:never", "cam-10:offline", "cam-11:online"}},
		{"limit=2&offset=25", 27, []string{"cam-34:online", "spare-1:never"}},
		{"offset=99", 27, []string{}},
		{"status=never", 2, []string{"cam-03:never", "spare-1:never"}},
		{"q=spare", 1, []string{"spare-1:never"}},
		{"q=SOUTH&status=offline", 2, []string{"cam-15:offline", "cam-25:offline"}},
		{"site=north&line=0&version=1", 5, []string{"cam-10:offline", "cam-16:online", "cam-22:online", "cam-28:online", "cam-34:online"}},
		{"sort=-detections&limit=1", 27, []string{"cam-20:offline"}},
		{"sort=-id&limit=2", 27, []string{"spare-1:never", "cam-34:online"}},
		{"online=false&site=south", 2, []string{"cam-15:offline", "cam-25:offline"}},
	}
	for _, tt := range tests {
		p, got := pageIDs(t, ts, tt.query)
		if p.Total != tt.total || !slices.Equal(got, tt.want) {
			t.Errorf("?%s: total %d %v; want %d %v", tt.query, p.Total, got, tt.total, tt.want)
		}
	}
	for _, bad := range []string{"status=gone", "sort=color", "limit=5000", "offset=-1", "online=maybe"} {
		if resp, b := do(t, ts, "/api/v1/devices?"+bad, tok); resp.StatusCode != 400 {
			t.Errorf("?%s: %d %s, want 400", bad, resp.StatusCode, b)
		}
	}
	// A provisioned device never seen has a page too; an unknown one is 404.
	if resp, b := do(t, ts, "/api/v1/devices/spare-1", tok); resp.StatusCode != 200 || !json.Valid(b) || !contains(b, `"status": "never"`) {
		t.Errorf("spare-1: %d %s", resp.StatusCode, b)
	}
	if resp, _ := do(t, ts, "/api/v1/devices/nobody", tok); resp.StatusCode != 404 {
		t.Errorf("nobody: %d", resp.StatusCode)
	}
}

func contains(b []byte, s string) bool { return strings.Contains(string(b), s) }

func del(t *testing.T, ts *httptest.Server, path string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("DELETE", ts.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestDecommission: DELETE forgets the device and keeps its detections;
// purge deletes them; jobs are listed per device.
func TestDecommission(t *testing.T) {
	ts, st, reg := setupProvisioned(t, nil)
	ctx := context.Background()
	for _, id := range []string{"cam-1", "cam-2"} {
		reg.UpdateState(api.State{DeviceID: id, Online: true})
		if _, err := st.Ingest(ctx, id, []api.Event{{Seq: 1, CameraID: "c", Time: 1e15, Label: "x"}, {Seq: 2, CameraID: "c", Time: 1e15 + 1, Label: "x"}}); err != nil {
			t.Fatal(err)
		}
	}
	reg.RecordJob(api.JobStatus{DeviceID: "cam-1", JobID: "j1", State: api.JobSucceeded})
	if resp, b := do(t, ts, "/api/v1/devices/cam-1/jobs", tok); resp.StatusCode != 200 || !contains(b, `"job_id": "j1"`) {
		t.Fatalf("jobs: %d %s", resp.StatusCode, b)
	}
	count := func(dev string) int {
		p, err := st.Query(ctx, store.Query{Device: dev})
		if err != nil {
			t.Fatal(err)
		}
		return len(p.Records)
	}
	tests := []struct {
		path     string
		code     int
		left     string
		detLeft  int
		purgeDev string
	}{
		{"/api/v1/devices/cam-1", 200, "cam-2", 2, "cam-1"},
		{"/api/v1/devices/cam-1", 404, "cam-2", 2, "cam-1"},
		{"/api/v1/devices/cam-1?purge=true", 200, "cam-2", 0, "cam-1"},
		{"/api/v1/devices/cam-2?purge=maybe", 400, "cam-2", 2, "cam-2"},
		{"/api/v1/devices/cam-2?purge=1", 200, "", 0, "cam-2"},
	}
	for _, tt := range tests {
		code, b := del(t, ts, tt.path)
		if code != tt.code {
			t.Errorf("DELETE %s: %d %s, want %d", tt.path, code, b, tt.code)
		}
		_, got := pageIDs(t, ts, "")
		want := []string{}
		if tt.left != "" {
			want = []string{tt.left + ":online"}
		}
		if !slices.Equal(got, want) {
			t.Errorf("after DELETE %s: %v", tt.path, got)
		}
		if n := count(tt.purgeDev); n != tt.detLeft {
			t.Errorf("after DELETE %s: %s has %d detections, want %d", tt.path, tt.purgeDev, n, tt.detLeft)
		}
	}
}
