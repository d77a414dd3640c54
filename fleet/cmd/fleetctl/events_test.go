package main

import (
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"edgefleet/fleet/api/rest"
	"edgefleet/fleet/api/rest/eventstest"
)

// TestEventsAndCounts runs fleetctl events and counts against the
// analytics routes of the contract, served by eventstest from known events
// (fleetd's own routes are tested in fleet/server).
func TestEventsAndCounts(t *testing.T) {
	sample := eventstest.Sample("cam-1", time.Now())
	ts := httptest.NewServer(eventstest.New(token, nil, sample))
	defer ts.Close()
	t.Setenv("EDGEFLEET_CONFIG", "")
	t.Setenv("HOME", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	dir := t.TempDir()
	crop, csvFile := filepath.Join(dir, "crop.jpg"), filepath.Join(dir, "events.csv")
	tests := []struct {
		name   string
		args   []string
		code   int
		out    []string // substrings of stdout
		notOut string
		errOut string
	}{
		{"list", []string{"events", "list"}, 0, []string{"TYPE", "DETAIL", "line_cross", "exit in", "cell 9.0s", "track 6, 20 frames, 4.0s", "crop,thumb"}, "", ""},
		{"list filtered", []string{"events", "list", "--type", "line_cross", "--label", "Cup"}, 0, []string{"cup", "exit in"}, "bottle", ""},
		{"list limit", []string{"events", "list", "--limit", "1"}, 0, []string{"track_end"}, "line_cross", ""},
		{"list zone", []string{"events", "list", "--zone", "cell", "--from", "-2h"}, 0, []string{"zone_enter", "zone_exit"}, "line_cross", ""},
		{"list csv", []string{"events", "list", "--format", "csv", "--line", "exit"}, 0, []string{strings.Join(rest.EventCSVHeader, ","), "cam-1,8,belt-a,"}, "zone_enter", ""},
		{"list csv to a file", []string{"events", "list", "--format", "csv", "-o", csvFile}, 0, nil, "", ""},
		{"csv and json", []string{"events", "list", "--format", "csv", "--json"}, 2, nil, "", "do not go together"},
		{"bad format", []string{"events", "list", "--format", "xml"}, 2, nil, "", "not supported (table, csv)"},
		{"-o without csv", []string{"events", "list", "-o", csvFile}, 2, nil, "", "-o needs --format csv"},
		{"bad time", []string{"events", "list", "--from", "yesterday"}, 1, nil, "", "from:"},
		{"snapshot", []string{"events", "snapshot", "cam-1", "1", "-o", crop}, 0, nil, "", ""},
		{"snapshot thumb to stdout", []string{"events", "snapshot", "cam-1", "9", "--part", "thumb", "-o", "-"}, 0, []string{"\xff\xd8"}, "", ""},
		{"snapshot missing", []string{"events", "snapshot", "cam-1", "9", "-o", crop + ".2"}, 1, nil, "", "HTTP 404"},
		{"snapshot bad part", []string{"events", "snapshot", "cam-1", "1", "--part", "full", "-o", "-"}, 2, nil, "", "neither crop nor thumb"},
		{"snapshot bad seq", []string{"events", "snapshot", "cam-1", "x", "-o", "-"}, 2, nil, "", "SEQ \"x\""},
		{"snapshot needs -o", []string{"events", "snapshot", "cam-1", "1"}, 2, nil, "", "-o FILE is required"},
		{"snapshot needs its arguments", []string{"events", "snapshot", "cam-1"}, 2, nil, "", "takes 2 argument"},
		{"counts", []string{"counts", "--line", "exit", "--bucket", "24h"}, 0, []string{"BUCKET START", "exit", "in", "bottle", "cup", "TOTAL"}, "", ""},
		{"counts csv", []string{"counts", "--format", "csv"}, 0, []string{"start,line,direction,label,count", ",exit,out,bottle,"}, "", ""},
		{"counts bad bucket", []string{"counts", "--bucket", "soon"}, 1, nil, "", "bucket:"},
		{"events is a group", []string{"events"}, 0, []string{"usage: fleetctl events <command>", "events list", "events snapshot"}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := fleetctl(t, append(tt.args, "--server", ts.URL, "--token", token)...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out, errOut)
			}
			for _, s := range tt.out {
				if !strings.Contains(out, s) {
					t.Errorf("stdout lacks %q:\n%s", s, out)
				}
			}
			if tt.notOut != "" && strings.Contains(out, tt.notOut) {
				t.Errorf("stdout has %q:\n%s", tt.notOut, out)
			}
			if !strings.Contains(errOut, tt.errOut) {
				t.Errorf("stderr lacks %q:\n%s", tt.errOut, errOut)
			}
		})
	}
	if b, err := os.ReadFile(crop); err != nil || string(b) != string(sample[0].Snapshot.Crop) {
		t.Errorf("crop file: %d bytes, %v", len(b), err)
	}
	if b, err := os.ReadFile(csvFile); err != nil || strings.Count(string(b), "\n") != 10 {
		t.Errorf("csv file: %q, %v", b, err)
	}
	t.Run("json", func(t *testing.T) {
		code, out, errOut := fleetctl(t, "events", "list", "--json", "--server", ts.URL, "--token", token)
		var evs []rest.EventRecord
		if code != 0 || json.Unmarshal([]byte(out), &evs) != nil || len(evs) != len(sample) || !evs[0].Thumb {
			t.Fatalf("exit %d, %d events: %s", code, len(evs), errOut)
		}
		code, out, errOut = fleetctl(t, "counts", "--json", "--line", "exit", "--server", ts.URL, "--token", token)
		var p rest.CountPage
		if code != 0 || json.Unmarshal([]byte(out), &p) != nil || p.Total != 6 {
			t.Fatalf("counts: exit %d, %+v: %s", code, p, errOut)
		}
	})
}
