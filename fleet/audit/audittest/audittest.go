// Package audittest is the behaviour every audit.Log must have, as one
// suite that runs against any implementation (Run).
package audittest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"edgefleet/fleet/audit"
)

// Open opens a fresh, empty log with o for one test; it should close the
// log at the test's cleanup.
type Open func(t *testing.T, o audit.Options) audit.Log

// Run runs the behaviour suite against the logs open makes.
func Run(t *testing.T, open Open) {
	tests := []struct {
		name string
		fn   func(t *testing.T, l audit.Log, now time.Time)
	}{
		{"RecordList", testRecordList},
		{"Pages", testPages},
		{"Refusals", testRefusals},
		{"Concurrent", testConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
			tc.fn(t, open(t, audit.Options{Now: func() time.Time { return now }}), now)
		})
	}
}

var ctx = context.Background()

func record(t *testing.T, l audit.Log, e audit.Entry) audit.Entry {
	t.Helper()
	got, err := l.Record(ctx, e)
	if err != nil {
		t.Fatalf("record %+v: %v", e, err)
	}
	return got
}

func testRecordList(t *testing.T, l audit.Log, now time.Time) {
	if es, err := l.List(ctx, audit.Query{}); err != nil || len(es) != 0 {
		t.Fatalf("empty log: %v, %v", es, err)
	}
	at := time.Date(2026, 11, 30, 8, 0, 0, 0, time.FixedZone("x", 3600))
	a := record(t, l, audit.Entry{Time: at, Operator: "alice", Role: "operator", Action: "rollout.create", Target: "r1", Detail: "yolov8n@2", Outcome: audit.OK, Status: 201})
	b := record(t, l, audit.Entry{Operator: "bob", Role: "viewer", Action: "rollout.create", Outcome: audit.Refused, Status: 403, Error: "needs operator", Target: strings.Repeat("é", 300)})
	if a.ID == 0 || b.ID <= a.ID {
		t.Fatalf("ids %d, %d: want increasing from 1", a.ID, b.ID)
	}
	if !a.Time.Equal(at) || a.Time.Location() != time.UTC || !b.Time.Equal(now) {
		t.Errorf("times %v, %v; want %v (UTC) and the clock's %v", a.Time, b.Time, at, now)
	}
	if len(b.Target) > 260 || !strings.HasSuffix(b.Target, "…") || !strings.HasPrefix(b.Target, "éé") {
		t.Errorf("long target not cut to a valid string: %d bytes %q", len(b.Target), b.Target[:8])
	}
	es, err := l.List(ctx, audit.Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || es[0] != b || es[1] != a {
		t.Fatalf("list:\n%+v\nwant newest first:\n%+v\n%+v", es, b, a)
	}
}

func testPages(t *testing.T, l audit.Log, _ time.Time) {
	for i := range 25 {
		record(t, l, audit.Entry{Operator: "alice", Action: "model.push", Target: fmt.Sprintf("m@%d", i), Outcome: audit.OK})
	}
	var all []audit.Entry
	before := uint64(0)
	for {
		page, err := l.List(ctx, audit.Query{Before: before, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		if len(page) < 10 {
			break
		}
		before = page[len(page)-1].ID
	}
	if len(all) != 25 {
		t.Fatalf("paged through %d entries, want 25", len(all))
	}
	for i, e := range all {
		if want := fmt.Sprintf("m@%d", 24-i); e.Target != want {
			t.Fatalf("entry %d is %s, want %s", i, e.Target, want)
		}
	}
	if es, _ := l.List(ctx, audit.Query{Before: all[24].ID}); len(es) != 0 {
		t.Errorf("before the first entry: %d entries", len(es))
	}
	if es, _ := l.List(ctx, audit.Query{Before: all[0].ID + 100, Limit: 1}); len(es) != 1 || es[0].ID != all[0].ID {
		t.Errorf("before past the newest: %+v", es)
	}
	if es, _ := l.List(ctx, audit.Query{}); len(es) != 25 {
		t.Errorf("default limit: %d entries", len(es))
	}
}

func testRefusals(t *testing.T, l audit.Log, _ time.Time) {
	for _, e := range []audit.Entry{
		{Action: "x", Outcome: audit.OK},
		{Operator: "a", Outcome: audit.OK},
		{Operator: "a", Action: "x"},
	} {
		if _, err := l.Record(ctx, e); !errors.Is(err, audit.ErrBadEntry) {
			t.Errorf("record %+v: %v", e, err)
		}
	}
	for _, q := range []audit.Query{{Limit: -1}, {Limit: audit.MaxLimit + 1}} {
		if _, err := l.List(ctx, q); !errors.Is(err, audit.ErrBadQuery) {
			t.Errorf("list %+v: %v", q, err)
		}
	}
}

func testConcurrent(t *testing.T, l audit.Log, _ time.Time) {
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 10 {
				if _, err := l.Record(ctx, audit.Entry{Operator: fmt.Sprint("op", g), Action: "a", Target: fmt.Sprint(i), Outcome: audit.OK}); err != nil {
					t.Errorf("record: %v", err)
				}
			}
		})
	}
	wg.Wait()
	es, err := l.List(ctx, audit.Query{Limit: 100})
	if err != nil || len(es) != 40 {
		t.Fatalf("%d entries, %v; want 40", len(es), err)
	}
	seen := map[uint64]bool{}
	for i, e := range es {
		if seen[e.ID] || i > 0 && e.ID >= es[i-1].ID {
			t.Fatalf("ids not unique and decreasing at %d: %d", i, e.ID)
		}
		seen[e.ID] = true
	}
}
