package client_test

import (
	"context"
	"encoding/csv"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"edgefleet/fleet/api"
	"edgefleet/fleet/api/rest"
	"edgefleet/fleet/api/rest/eventstest"
	"edgefleet/fleet/client"
)

// TestEvents runs the analytics methods against the routes of the
// contract (eventstest serves them from known events).
func TestEvents(t *testing.T) {
	now := time.Now()
	sample := eventstest.Sample("cam-1", now)
	ts := httptest.NewServer(eventstest.New("tok", nil, sample))
	defer ts.Close()
	c, err := client.New(ts.URL, "tok", client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	tests := []struct {
		name string
		q    rest.EventQuery
		seqs []uint64 // newest first
	}{
		{"all", rest.EventQuery{}, []uint64{9, 8, 7, 6, 5, 4, 3, 2, 1}},
		{"type", rest.EventQuery{Type: api.TypeLineCross, Label: "bottle"}, []uint64{8, 7, 3, 2, 1}},
		{"zone", rest.EventQuery{Zone: "cell"}, []uint64{5, 4}},
		{"time", rest.EventQuery{From: "-30m", To: now.Format(time.RFC3339Nano)}, []uint64{9, 8, 7}},
		{"other device", rest.EventQuery{Device: "cam-2"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := c.Events(ctx, tt.q)
			if err != nil {
				t.Fatal(err)
			}
			var got []uint64
			for _, e := range p.Events {
				got = append(got, e.Seq)
			}
			if !slices.Equal(got, tt.seqs) {
				t.Errorf("seqs %v, want %v", got, tt.seqs)
			}
		})
	}

	// Pages: Next continues where the page ended.
	p, err := c.Events(ctx, rest.EventQuery{Limit: 4})
	if err != nil || len(p.Events) != 4 || p.Next == "" {
		t.Fatalf("page 1: %d events, next %q, %v", len(p.Events), p.Next, err)
	}
	if p.Events[0].Device != "cam-1" || p.Events[0].Type != api.TypeTrackEnd || p.Events[0].Crop || !p.Events[0].Thumb || p.Events[0].Snapshot != nil {
		t.Errorf("newest record %+v", p.Events[0])
	}
	if p, err = c.Events(ctx, rest.EventQuery{Limit: 4, Cursor: p.Next}); err != nil || len(p.Events) != 4 || p.Events[0].Seq != 5 {
		t.Fatalf("page 2: %+v %v", p, err)
	}

	// Snapshots: both parts of a crossing, the 404 of a part it lacks, a bad part.
	for _, part := range []string{rest.PartCrop, rest.PartThumb} {
		b, err := c.EventSnapshot(ctx, "cam-1", 1, part)
		want := sample[0].Snapshot.Crop
		if part == rest.PartThumb {
			want = sample[0].Snapshot.Thumb
		}
		if err != nil || string(b) != string(want) {
			t.Errorf("snapshot %s: %d bytes, %v", part, len(b), err)
		}
	}
	var ce *client.Error
	if _, err := c.EventSnapshot(ctx, "cam-1", 9, rest.PartCrop); !errors.As(err, &ce) || ce.Status != http.StatusNotFound {
		t.Errorf("missing crop: %v", err)
	}
	if _, err := c.EventSnapshot(ctx, "cam-1", 1, "full"); err == nil {
		t.Error("part full accepted")
	}

	// Counts, and both CSVs.
	cp, err := c.Counts(ctx, rest.CountQuery{Line: "exit", Bucket: "1h"})
	if err != nil || cp.Total != 6 || cp.Bucket != "1h0m0s" {
		t.Fatalf("counts: %+v %v", cp, err)
	}
	got := map[[2]string]int{}
	for _, r := range cp.Rows {
		got[[2]string{r.Direction, r.Label}] += r.Count
	}
	for k, n := range eventstest.SampleCounts {
		if got[k] != n {
			t.Errorf("count %v: %d, want %d", k, got[k], n)
		}
	}
	readCSV := func(body io.ReadCloser, err error) [][]string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer body.Close()
		rows, err := csv.NewReader(body).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		return rows
	}
	if rows := readCSV(c.ExportEvents(ctx, rest.EventQuery{Type: api.TypeLineCross, Cursor: "5"})); len(rows) != 7 || !slices.Equal(rows[0], rest.EventCSVHeader) {
		t.Errorf("events csv: %d rows: %q", len(rows), rows)
	}
	if rows := readCSV(c.ExportCounts(ctx, rest.CountQuery{Bucket: "24h"})); len(rows) < 4 || !slices.Equal(rows[0], rest.CountCSVHeader) {
		t.Errorf("counts csv: %q", rows)
	}

	// The token is checked.
	bad, _ := client.New(ts.URL, "wrong", client.Options{})
	if _, err := bad.Counts(ctx, rest.CountQuery{}); !errors.Is(err, client.ErrUnauthorized) {
		t.Errorf("wrong token: %v", err)
	}
}
