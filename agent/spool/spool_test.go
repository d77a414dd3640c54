package spool

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	bolt "go.etcd.io/bbolt"

	"edgefleet/fleet/api"
	"edgefleet/internal/testutil"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func ev(i int) api.Event {
	return api.Event{
		CameraID:     fmt.Sprintf("cam-%d", i%3),
		Time:         1_700_000_000_000_000 + int64(i),
		Model:        "yolov8n",
		ModelVersion: "1.2.0",
		ClassID:      i % 80,
		Label:        "person",
		Score:        0.5 + float32(i%50)/100,
		Box:          [4]float32{float32(i), 2, 30.5, 40.25},
	}
}

func evs(from, n int) []api.Event {
	out := make([]api.Event, n)
	for i := range out {
		out[i] = ev(from + i)
	}
	return out
}

func open(t testing.TB, path string, o Options) *Spool {
	t.Helper()
	if o.Logger == nil {
		o.Logger = quiet
	}
	s, err := Open(path, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func seqs(es []api.Event) []uint64 {
	out := make([]uint64, len(es))
	for i, e := range es {
		out[i] = e.Seq
	}
	return out
}

// clock is a settable time source for MaxAge tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestAppendNextAck(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "spool.db"), Options{})
	first, last, err := s.Append(ctx, evs(0, 10)...)
	if err != nil || first != 1 || last != 10 {
		t.Fatalf("Append = %d, %d, %v; want 1, 10, nil", first, last, err)
	}
	select {
	case <-s.Ready():
	default:
		t.Fatal("Ready did not signal after Append")
	}
	got, err := s.Next(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 10 {
		t.Fatalf("Next returned %d events, want 10", len(got))
	}
	for i, e := range got {
		want := ev(i)
		want.Seq = uint64(i + 1)
		if e != want {
			t.Fatalf("event %d = %+v, want %+v", i, e, want)
		}
	}
	tests := []struct {
		name   string
		ranges []api.SeqRange
		after  uint64
		max    int
		want   []uint64
	}{
		{"ack middle and single", []api.SeqRange{{From: 3, To: 5}, {From: 8, To: 8}}, 0, 100, []uint64{1, 2, 6, 7, 9, 10}},
		{"repeat is harmless", []api.SeqRange{{From: 3, To: 5}}, 0, 100, []uint64{1, 2, 6, 7, 9, 10}},
		{"unknown seqs ignored", []api.SeqRange{{From: 100, To: 200}}, 0, 100, []uint64{1, 2, 6, 7, 9, 10}},
		{"after skips", nil, 6, 100, []uint64{7, 9, 10}},
		{"max limits", nil, 0, 2, []uint64{1, 2}},
		{"ack front", []api.SeqRange{{From: 0, To: 2}}, 0, 100, []uint64{6, 7, 9, 10}},
		{"after past end", nil, 10, 5, []uint64{}},
		{"after max uint64", nil, ^uint64(0), 5, []uint64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.Ack(ctx, tt.ranges...); err != nil {
				t.Fatal(err)
			}
			got, err := s.Next(ctx, tt.after, tt.max)
			if err != nil {
				t.Fatal(err)
			}
			if g := seqs(got); fmt.Sprint(g) != fmt.Sprint(tt.want) {
				t.Fatalf("seqs = %v, want %v", g, tt.want)
			}
		})
	}
	st := s.Stats()
	if st.Depth != 4 || st.Acked != 6 || st.Appended != 10 || st.FirstSeq != 6 || st.NextSeq != 11 {
		t.Fatalf("Stats = %+v; want depth 4, acked 6, appended 10, first 6, next 11", st)
	}
	if err := s.Ack(ctx, api.SeqRange{From: 5, To: 4}); err == nil {
		t.Fatal("Ack of an inverted range succeeded")
	}
	if _, err := s.Next(ctx, 0, 0); err == nil {
		t.Fatal("Next with max 0 succeeded")
	}
	if f, l, err := s.Append(ctx); err != nil || f != 0 || l != 0 {
		t.Fatalf("empty Append = %d, %d, %v", f, l, err)
	}
}

func TestRestartKeepsSeqAndClose(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "spool.db")
	s := open(t, path, Options{})
	if _, _, err := s.Append(ctx, evs(0, 5)...); err != nil {
		t.Fatal(err)
	}
	if err := s.Ack(ctx, api.SeqRange{From: 1, To: 5}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, _, err := s.Append(ctx, ev(1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v, want ErrClosed", err)
	}
	if err := s.Ack(ctx, api.SeqRange{From: 1, To: 1}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Ack after Close: %v, want ErrClosed", err)
	}
	if _, err := s.Next(ctx, 0, 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after Close: %v, want ErrClosed", err)
	}

	s = open(t, path, Options{})
	first, last, err := s.Append(ctx, evs(5, 3)...)
	if err != nil || first != 6 || last != 8 {
		t.Fatalf("Append after restart = %d, %d, %v; want 6, 8 (seqs never reused)", first, last, err)
	}
	if st := s.Stats(); st.Depth != 3 || st.FirstSeq != 6 {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestConcurrentAppenders(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "spool.db"), Options{})
	const workers, calls = 8, 100
	var mu sync.Mutex
	var ranges [][2]uint64
	var wg sync.WaitGroup
	total := 0
	for w := range workers {
		for c := range calls {
			total += 1 + (w+c)%5
		}
		wg.Go(func() {
			for c := range calls {
				n := 1 + (w+c)%5
				f, l, err := s.Append(ctx, evs(w*1000+c, n)...)
				if err != nil {
					t.Error(err)
					return
				}
				if l-f+1 != uint64(n) {
					t.Errorf("Append of %d events got seqs %d..%d", n, f, l)
				}
				mu.Lock()
				ranges = append(ranges, [2]uint64{f, l})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	sort.Slice(ranges, func(i, j int) bool { return ranges[i][0] < ranges[j][0] })
	next := uint64(1)
	for _, r := range ranges {
		if r[0] != next {
			t.Fatalf("seq ranges not contiguous and disjoint: range %v after %d", r, next-1)
		}
		next = r[1] + 1
	}
	if next-1 != uint64(total) {
		t.Fatalf("last seq %d, want %d", next-1, total)
	}
	got, err := s.Next(ctx, 0, total+10)
	if err != nil || len(got) != total {
		t.Fatalf("Next = %d events, %v; want %d", len(got), err, total)
	}
	for i, e := range got {
		if e.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d", i, e.Seq)
		}
	}
	commits := value(s.m.commits)
	if commits >= workers*calls {
		t.Errorf("%v commits for %d Appends: no group commit", commits, workers*calls)
	}
	t.Logf("%d appends in %v commits", workers*calls, commits)
}

func TestAgeExpiry(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := open(t, filepath.Join(t.TempDir(), "spool.db"), Options{MaxAge: time.Hour, Now: clk.Now})
	if _, _, err := s.Append(ctx, evs(0, 3)...); err != nil {
		t.Fatal(err)
	}
	clk.Add(30 * time.Minute)
	if _, _, err := s.Append(ctx, evs(3, 2)...); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.OldestAge != 30*time.Minute || st.Depth != 5 {
		t.Fatalf("Stats = %+v; want oldest age 30m, depth 5", st)
	}
	clk.Add(45 * time.Minute) // first three are 75m old, the next two 45m
	if _, _, err := s.Append(ctx, ev(5)); err != nil {
		t.Fatal(err)
	}
	got, err := s.Next(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(seqs(got)) != "[4 5 6]" {
		t.Fatalf("after expiry seqs = %v, want [4 5 6]", seqs(got))
	}
	st := s.Stats()
	if st.DroppedAge != 3 || st.OldestAge != 45*time.Minute {
		t.Fatalf("Stats = %+v; want 3 dropped for age, oldest 45m", st)
	}
	if n := value(s.m.dropped.WithLabelValues("age")); n != 3 {
		t.Fatalf("dropped{reason=age} = %v, want 3", n)
	}
}

func TestAgeSweepWithoutAppends(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := open(t, filepath.Join(t.TempDir(), "spool.db"), Options{MaxAge: 800 * time.Millisecond, Now: clk.Now})
	if _, _, err := s.Append(ctx, evs(0, 4)...); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Second)
	testutil.WaitFor(t, "the sweep to expire the events", 5*time.Second, func() bool { return s.Stats().Depth == 0 })
	if st := s.Stats(); st.DroppedAge != 4 || st.OldestAge != 0 {
		t.Fatalf("Stats = %+v", st)
	}
}

func writeBolt(t *testing.T, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, []byte("this is not a bbolt file, just some text that goes on"), 0o600); err != nil {
		t.Fatal(err)
	}
	future := filepath.Join(dir, "future.db")
	writeBolt(t, future, func(tx *bolt.Tx) error {
		m, _ := tx.CreateBucket(bucketMeta)
		tx.CreateBucket(bucketEvents)
		return m.Put(keyVersion, u64(schemaVersion+1))
	})
	foreign := filepath.Join(dir, "foreign.db")
	writeBolt(t, foreign, func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket([]byte("registry"))
		return err
	})
	badMeta := filepath.Join(dir, "badmeta.db")
	writeBolt(t, badMeta, func(tx *bolt.Tx) error {
		m, _ := tx.CreateBucket(bucketMeta)
		tx.CreateBucket(bucketEvents)
		m.Put(keyVersion, u64(schemaVersion))
		return m.Put(keyNextSeq, []byte{1, 2, 3})
	})
	tests := []struct {
		name string
		path string
		opts Options
		is   error  // errors.Is target, if any
		has  string // substring of the message
	}{
		{"garbage file", garbage, Options{}, nil, "garbage.db"},
		{"future version", future, Options{}, ErrVersion, fmt.Sprintf("version %d", schemaVersion+1)},
		{"foreign bbolt file", foreign, Options{}, ErrSchema, "no meta bucket"},
		{"damaged meta", badMeta, Options{}, ErrSchema, "next_seq"},
		{"max bytes too small", filepath.Join(dir, "small.db"), Options{MaxBytes: 1000}, nil, "max_bytes"},
		{"negative max age", filepath.Join(dir, "age.db"), Options{MaxAge: -time.Second}, nil, "max_age"},
		{"missing directory", filepath.Join(dir, "nope", "spool.db"), Options{}, os.ErrNotExist, "nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Logger = quiet
			s, err := Open(tt.path, tt.opts)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v is not %v", err, tt.is)
			}
			if !contains(err.Error(), tt.has) {
				t.Errorf("error %q does not mention %q", err, tt.has)
			}
		})
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func TestUpgradeFromV1(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v1.db")
	// Schema 1: meta{version, next_seq}, events{seq: JSON api.Event}.
	writeBolt(t, path, func(tx *bolt.Tx) error {
		m, _ := tx.CreateBucket(bucketMeta)
		b, _ := tx.CreateBucket(bucketEvents)
		m.Put(keyVersion, u64(1))
		m.Put(keyNextSeq, u64(13))
		for _, seq := range []uint64{10, 11, 12} {
			e := ev(int(seq))
			e.Seq = seq
			j, _ := json.Marshal(e)
			if err := b.Put(u64(seq), j); err != nil {
				return err
			}
		}
		return nil
	})
	s := open(t, path, Options{})
	got, err := s.Next(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range got {
		want := ev(10 + i)
		want.Seq = uint64(10 + i)
		if e != want {
			t.Fatalf("upgraded event %d = %+v, want %+v", i, e, want)
		}
	}
	if len(got) != 3 {
		t.Fatalf("got %d events, want 3", len(got))
	}
	if st := s.Stats(); st.Depth != 3 || st.NextSeq != 13 || st.Bytes == 0 {
		t.Fatalf("Stats after upgrade = %+v", st)
	}
	if f, _, err := s.Append(ctx, ev(0)); err != nil || f != 13 {
		t.Fatalf("Append after upgrade = %d, %v; want 13", f, err)
	}
	s.Close()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.View(func(tx *bolt.Tx) error {
		if v := binary.BigEndian.Uint64(tx.Bucket(bucketMeta).Get(keyVersion)); v != schemaVersion {
			t.Errorf("version after upgrade = %d, want %d", v, schemaVersion)
		}
		return nil
	})
}

func TestCorruptRecordNamesSeq(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "spool.db")
	s := open(t, path, Options{})
	if _, _, err := s.Append(ctx, evs(0, 5)...); err != nil {
		t.Fatal(err)
	}
	s.Close()
	writeBolt(t, path, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEvents)
		v := append([]byte(nil), b.Get(u64(3))...)
		v[len(v)/2] ^= 0x40
		return b.Put(u64(3), v)
	})
	s = open(t, path, Options{})
	got, err := s.Next(ctx, 0, 10)
	var ce *CorruptError
	var cs interface{ CorruptSeq() uint64 }
	if !errors.As(err, &cs) || cs.CorruptSeq() != 3 {
		t.Fatalf("Next error %v has no CorruptSeq 3", err)
	}
	if !errors.As(err, &ce) || ce.Seq != 3 || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Next error = %v, want CorruptError at seq 3", err)
	}
	if fmt.Sprint(seqs(got)) != "[1 2]" {
		t.Fatalf("events before the corrupt one = %v, want [1 2]", seqs(got))
	}
	if err := s.Ack(ctx, api.SeqRange{From: 3, To: 3}); err != nil {
		t.Fatal(err)
	}
	got, err = s.Next(ctx, 2, 10)
	if err != nil || fmt.Sprint(seqs(got)) != "[4 5]" {
		t.Fatalf("after acking the corrupt record: %v, %v", seqs(got), err)
	}
}

func TestCollectorsRegister(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "spool.db"), Options{})
	reg := prometheus.NewRegistry()
	for _, c := range s.Collectors() {
		if err := reg.Register(c); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.Append(context.Background(), evs(0, 7)...); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]int{}
	for _, mf := range mfs {
		names[mf.GetName()] = len(mf.GetMetric())
	}
	for name, n := range map[string]int{"edgefleet_spool_depth_events": 1, "edgefleet_spool_appended_events_total": 1, "edgefleet_spool_dropped_events_total": 3, "edgefleet_spool_commit_seconds": 1} {
		if names[name] != n {
			t.Errorf("%s has %d series, want %d", name, names[name], n)
		}
	}
	if v := value(s.m.gauges[0]); v != 7 {
		t.Fatalf("depth gauge = %v, want 7", v)
	}
}

// value reads the single value of a counter or gauge.
func value(c prometheus.Collector) float64 {
	ch := make(chan prometheus.Metric, 1)
	go func() { c.Collect(ch); close(ch) }()
	var m dto.Metric
	for pm := range ch {
		_ = pm.Write(&m)
	}
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return -1
}

func TestContextEnds(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "spool.db"), Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := s.Append(ctx, ev(1)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append with a canceled ctx: %v", err)
	}
	if err := s.Ack(ctx, api.SeqRange{From: 1, To: 1}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Ack with a canceled ctx: %v", err)
	}
	if _, err := s.Next(ctx, 0, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next with a canceled ctx: %v", err)
	}
	if st := s.Stats(); st.Depth != 0 || st.NextSeq != 1 {
		t.Fatalf("canceled calls changed the spool: %+v", st)
	}
}

func TestCloseDuringAppends(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "spool.db")
	s := open(t, path, Options{})
	var mu sync.Mutex
	var returned []uint64
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				f, l, err := s.Append(ctx, evs(g*10000+i, 3)...)
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("Append: %v, want success or ErrClosed", err)
					return
				}
				mu.Lock()
				returned = append(returned, f, l)
				mu.Unlock()
			}
		})
	}
	testutil.Eventually(t, "appends returning", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(returned) >= 8
	})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	s = open(t, path, Options{})
	got, err := s.Next(ctx, 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	have := map[uint64]bool{}
	for _, e := range got {
		have[e.Seq] = true
	}
	if len(returned) == 0 {
		t.Fatal("no Append returned before Close")
	}
	for _, seq := range returned {
		if !have[seq] {
			t.Fatalf("seq %d returned by Append before Close is not stored", seq)
		}
	}
}

func TestSecondOpenOfSameFileFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spool.db")
	open(t, path, Options{})
	start := time.Now()
	s, err := Open(path, Options{Logger: quiet})
	if err == nil {
		s.Close()
		t.Fatal("second Open of a file in use succeeded")
	}
	if !contains(err.Error(), "spool.db") || time.Since(start) > 5*time.Second {
		t.Fatalf("second Open: %v after %v", err, time.Since(start))
	}
}
