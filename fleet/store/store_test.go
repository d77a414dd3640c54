package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"edgefleet/fleet/api"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// impls opens each implementation fresh for one test.
var impls = []struct {
	name string
	open func(t testing.TB, r Retention) Store
}{
	{"mem", func(t testing.TB, r Retention) Store { return NewMem(r) }},
	{"bolt", func(t testing.TB, r Retention) Store {
		s, err := OpenBolt(filepath.Join(t.TempDir(), "det.db"), BoltOptions{Retention: r})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}},
	{"postgres", func(t testing.TB, r Retention) Store { return openPostgres(t, r, t0) }},
}

// events makes events seq from..to, one per second from t0, alternating cameras and labels.
func events(from, to uint64) []api.Event {
	var out []api.Event
	for s := from; s <= to; s++ {
		out = append(out, api.Event{
			Seq: s, CameraID: fmt.Sprintf("cam%d", s%2), Time: t0.Add(time.Duration(s) * time.Second).UnixMicro(),
			Label: []string{"person", "car", "dog"}[s%3], Score: 0.5, Box: [4]float32{1, 2, 3, 4},
		})
	}
	return out
}

// ingestConcurrently has devices goroutines (<prefix><d>) each ingest
// batches one after another, waiting for each: batch(i) gives the events of
// batch i. A failed call is reported on tb and ends that device's batches.
func ingestConcurrently(tb testing.TB, s Store, prefix string, devices, batches int, batch func(i uint64) []api.Event) {
	var wg sync.WaitGroup
	for d := range devices {
		wg.Go(func() {
			id := prefix + strconv.Itoa(d)
			for i := range uint64(batches) {
				if _, err := s.Ingest(context.Background(), id, batch(i)); err != nil {
					tb.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func all(t *testing.T, s Store, q Query) []Record {
	t.Helper()
	var out []Record
	q.Limit = 7
	for i := 0; ; i++ {
		p, err := s.Query(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p.Records...)
		if p.Next == "" {
			return out
		}
		q.Cursor = p.Next
		if i > 1000 {
			t.Fatal("pagination does not end")
		}
	}
}

func TestIngestIdempotent(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			s := im.open(t, Retention{})
			ctx := context.Background()
			r, err := s.Ingest(ctx, "dev-a", events(1, 10))
			if err != nil || r != (Result{Stored: 10}) {
				t.Fatalf("first ingest = %+v, %v", r, err)
			}
			r, err = s.Ingest(ctx, "dev-a", events(5, 15))
			if err != nil || r != (Result{Stored: 5, Duplicates: 6}) {
				t.Fatalf("overlapping ingest = %+v, %v", r, err)
			}
			// Same seqs from another device are different events.
			if r, err = s.Ingest(ctx, "dev-b", events(1, 3)); err != nil || r.Stored != 3 {
				t.Fatalf("other device = %+v, %v", r, err)
			}
			recs := all(t, s, Query{})
			if len(recs) != 18 {
				t.Fatalf("stored %d records, want 18", len(recs))
			}
			seen := map[string]bool{}
			for _, r := range recs {
				k := fmt.Sprint(r.Device, r.Seq)
				if seen[k] {
					t.Fatalf("duplicate %s", k)
				}
				seen[k] = true
			}
			if _, err := s.Ingest(ctx, "bad/id", events(1, 1)); err == nil {
				t.Fatal("bad device id accepted")
			}
		})
	}
}

func TestQuery(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			s := im.open(t, Retention{})
			ctx := context.Background()
			for _, d := range []string{"dev-a", "dev-b", "dev-c"} {
				if _, err := s.Ingest(ctx, d, events(1, 30)); err != nil {
					t.Fatal(err)
				}
			}
			tests := []struct {
				name string
				q    Query
				want int
			}{
				{"all", Query{}, 90},
				{"device", Query{Device: "dev-b"}, 30},
				{"unknown device", Query{Device: "nope"}, 0},
				{"camera", Query{Camera: "cam1"}, 45},
				{"label", Query{Label: "dog"}, 30},
				{"label in another case", Query{Label: "Dog"}, 30},
				{"label in capitals", Query{Device: "dev-a", Label: "PERSON"}, 10},
				{"device and label", Query{Device: "dev-a", Label: "person"}, 10},
				{"time range", Query{From: t0.Add(11 * time.Second), To: t0.Add(21 * time.Second)}, 30},
				{"device time range", Query{Device: "dev-c", From: t0.Add(11 * time.Second), To: t0.Add(21 * time.Second)}, 10},
				{"from only", Query{From: t0.Add(26 * time.Second)}, 15},
				{"to only", Query{To: t0.Add(3 * time.Second)}, 6},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					recs := all(t, s, tt.q)
					if len(recs) != tt.want {
						t.Fatalf("got %d records, want %d", len(recs), tt.want)
					}
					seen := map[string]bool{}
					for i, r := range recs {
						if !tt.q.match(&r) {
							t.Errorf("record %+v does not match", r)
						}
						k := fmt.Sprint(r.Device, r.Seq)
						if seen[k] {
							t.Errorf("record %s twice", k)
						}
						seen[k] = true
						if i > 0 && r.Time > recs[i-1].Time {
							t.Errorf("records not newest first at %d", i)
						}
					}
				})
			}
			if _, err := s.Query(ctx, Query{Cursor: "!!"}); !errors.Is(err, ErrBadCursor) {
				t.Errorf("bad cursor: err = %v, want ErrBadCursor", err)
			}
			p, err := s.Query(ctx, Query{Limit: 1})
			if err != nil || len(p.Records) != 1 || p.Records[0].Seq != 30 {
				t.Fatalf("newest = %+v, %v", p, err)
			}
		})
	}
}

func TestCount(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			s := im.open(t, Retention{})
			ctx := context.Background()
			if _, err := s.Ingest(ctx, "dev-a", events(1, 30)); err != nil {
				t.Fatal(err)
			}
			b, err := s.Count(ctx, Query{From: t0, To: t0.Add(30 * time.Second)}, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			want := []int{9, 10, 10} // seqs 1-9, 10-19, 20-29; 30 is at To, excluded
			if len(b) != len(want) {
				t.Fatalf("buckets = %+v", b)
			}
			for i := range want {
				if b[i].Count != want[i] || !b[i].Start.Equal(t0.Add(time.Duration(i)*10*time.Second)) {
					t.Errorf("bucket %d = %+v, want %d at %v", i, b[i], want[i], t0.Add(time.Duration(i)*10*time.Second))
				}
			}
			b, err = s.Count(ctx, Query{Label: "dog", From: t0, To: t0.Add(time.Minute)}, time.Minute)
			if err != nil || len(b) != 1 || b[0].Count != 10 {
				t.Fatalf("dog count = %+v, %v", b, err)
			}
			for _, bad := range []struct {
				q Query
				w time.Duration
			}{{Query{From: t0, To: t0.Add(time.Hour)}, 0}, {Query{}, time.Second}, {Query{From: t0, To: t0.Add(24 * time.Hour)}, time.Millisecond}} {
				if _, err := s.Count(ctx, bad.q, bad.w); !errors.Is(err, ErrBadQuery) {
					t.Errorf("Count(%+v, %v) err = %v, want ErrBadQuery", bad.q, bad.w, err)
				}
			}
		})
	}
}

func TestRetain(t *testing.T) {
	tests := []struct {
		name string
		ret  Retention
		want int // records kept of 30
	}{
		{"none", Retention{}, 30},
		{"age", Retention{MaxAge: 10 * time.Second}, 10},
		{"events", Retention{MaxEvents: 12}, 12},
		{"bytes", Retention{MaxBytes: 1}, 0},
	}
	for _, im := range impls {
		for _, tt := range tests {
			t.Run(im.name+"/"+tt.name, func(t *testing.T) {
				s := im.open(t, tt.ret)
				ctx := context.Background()
				if _, err := s.Ingest(ctx, "dev-a", events(1, 30)); err != nil {
					t.Fatal(err)
				}
				now := t0.Add(31 * time.Second) // seq 21..30 are within 10s
				n, err := s.Retain(ctx, now)
				if err != nil {
					t.Fatal(err)
				}
				recs := all(t, s, Query{})
				if len(recs) != tt.want || n != 30-tt.want {
					t.Fatalf("kept %d (deleted %d), want %d", len(recs), n, tt.want)
				}
				if len(recs) > 0 && recs[len(recs)-1].Seq != uint64(31-tt.want) {
					t.Errorf("oldest kept seq %d, want %d", recs[len(recs)-1].Seq, 31-tt.want)
				}
				// An expired event sent again is a duplicate, not a new record.
				r, err := s.Ingest(ctx, "dev-a", events(1, 1))
				if err != nil || r.Stored != 0 || r.Duplicates != 1 {
					t.Errorf("resend of expired event = %+v, %v", r, err)
				}
			})
		}
	}
}

func TestBoltReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "det.db")
	s, err := OpenBolt(path, BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := s.Ingest(ctx, "dev-a", events(1, 5)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Ingest(ctx, "dev-a", events(6, 6)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Ingest after Close: %v", err)
	}
	s, err = OpenBolt(path, BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r, err := s.Ingest(ctx, "dev-a", events(3, 8))
	if err != nil || r != (Result{Stored: 3, Duplicates: 3}) {
		t.Fatalf("after reopen: %+v, %v", r, err)
	}
	if st := s.Stats(); st.Records != 8 {
		t.Fatalf("stats records = %d, want 8", st.Records)
	}
}

func TestBoltGroupCommit(t *testing.T) {
	s, err := OpenBolt(filepath.Join(t.TempDir(), "det.db"), BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const devices, batches = 50, 20
	var wg sync.WaitGroup
	errs := make(chan error, devices)
	for d := range devices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range uint64(batches) {
				if _, err := s.Ingest(context.Background(), fmt.Sprintf("dev-%d", d), events(b*3+1, b*3+3)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.Stored != devices*batches*3 || st.Calls != devices*batches {
		t.Fatalf("stats = %+v", st)
	}
	if st.Commits >= st.Calls {
		t.Errorf("no grouping: %d commits for %d calls", st.Commits, st.Calls)
	}
	t.Logf("%d calls in %d commits", st.Calls, st.Commits)
}

func FuzzCursor(f *testing.F) {
	f.Add(encodeCursor(position{time: 5, device: "dev-a", seq: 9}))
	f.Add("")
	f.Add("AAAAAAAAAAAAAAAAAAAAAAAA")
	s := NewMem(Retention{})
	s.Ingest(context.Background(), "dev-a", events(1, 3))
	f.Fuzz(func(t *testing.T, c string) {
		p, err := decodeCursor(c)
		if err == nil && decodeCursorMust(t, encodeCursor(p)) != p {
			t.Fatalf("cursor %q does not round-trip", c)
		}
		s.Query(context.Background(), Query{Cursor: c})
		s.Query(context.Background(), Query{Device: "dev-a", Cursor: c})
	})
}

func decodeCursorMust(t *testing.T, c string) position {
	p, err := decodeCursor(c)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// BenchmarkBoltIngest measures group commit: each op is 64 devices each
// ingesting 50 batches of 5 events concurrently (16,000 events), so that
// -benchtime=1x (as make bench runs it) still measures something.
func BenchmarkBoltIngest(b *testing.B) {
	s, err := OpenBolt(filepath.Join(b.TempDir(), "det.db"), BoltOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const devices, batches, per = 64, 50, 5
	seq := uint64(0)
	b.ResetTimer()
	for range b.N {
		ingestConcurrently(b, s, "dev-", devices, batches, func(i uint64) []api.Event {
			first := seq + i*per + 1
			return events(first, first+per-1)
		})
		seq += batches * per
	}
	st := s.Stats()
	b.ReportMetric(float64(st.Stored)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(st.Calls)/float64(max(st.Commits, 1)), "calls/commit")
}

func TestBoltSchemaVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "det.db")
	s, err := OpenBolt(path, BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyVersion, []byte("99")) })
	db.Close()
	if _, err := OpenBolt(path, BoltOptions{}); err == nil || !strings.Contains(err.Error(), `schema version "99"`) {
		t.Fatalf("opening a newer schema: %v", err)
	}
}

// TestDeleteDevice: a purge removes one device's records, and only those,
// from queries and counts; deleting an unknown device deletes nothing.
func TestDeleteDevice(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			s := im.open(t, Retention{})
			ctx := context.Background()
			for _, d := range []string{"cam-a", "cam-ab", "cam-b"} {
				if _, err := s.Ingest(ctx, d, events(1, 30)); err != nil {
					t.Fatal(err)
				}
			}
			dd := s.(DeviceDeleter)
			for _, c := range []struct {
				device string
				want   int
			}{{"cam-a", 30}, {"cam-a", 0}, {"nobody", 0}} {
				n, err := dd.DeleteDevice(ctx, c.device)
				if err != nil || n != c.want {
					t.Errorf("delete %s: %d, %v; want %d", c.device, n, err, c.want)
				}
			}
			if got := all(t, s, Query{Device: "cam-a"}); len(got) != 0 {
				t.Errorf("cam-a still has %d records", len(got))
			}
			rest := all(t, s, Query{})
			if len(rest) != 60 {
				t.Errorf("%d records left, want 60", len(rest))
			}
			for _, r := range rest {
				if r.Device == "cam-a" {
					t.Fatalf("cam-a record left: %+v", r)
				}
			}
		})
	}
}
