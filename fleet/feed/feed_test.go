package feed

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"edgefleet/fleet/api"
	"edgefleet/fleet/database"
	"edgefleet/fleet/store"
	"edgefleet/internal/testutil"
)

func value(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

func records(dev string, from, n int) []store.Record {
	out := make([]store.Record, n)
	for i := range out {
		out[i] = store.Record{Device: dev, Event: api.Event{Seq: uint64(from + i), CameraID: "cam0", Time: time.Now().UnixMicro(),
			Model: "yolov8n", ModelVersion: "1", ClassID: 2, Label: "car", Score: 0.75, Box: [4]float32{1, 2, 3, 4}}}
	}
	return out
}

func TestEncode(t *testing.T) {
	p, err := NewPostgres(nil, Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	huge := records("d1", 1, 1)[0]
	huge.Label = strings.Repeat("x", MaxPayload)
	tests := []struct {
		name        string
		recs        []store.Record
		payloads    int // at least
		wantDropped float64
	}{
		{"one", records("d1", 1, 1), 1, 0},
		{"split", records("d1", 1, 500), 2, 0},
		{"too large dropped, the rest kept", append(append(records("d1", 1, 3), huge), records("d1", 4, 3)...), 1, 1},
		{"none", nil, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := value(p.dropped.WithLabelValues(ReasonTooLarge))
			out := p.encode(tc.recs)
			if len(out) < tc.payloads {
				t.Fatalf("%d payloads, want at least %d", len(out), tc.payloads)
			}
			var got []store.Record
			for _, s := range out {
				if len(s) > MaxPayload {
					t.Fatalf("payload of %d bytes", len(s))
				}
				var recs []store.Record
				if err := json.Unmarshal([]byte(s), &recs); err != nil {
					t.Fatal(err)
				}
				got = append(got, recs...)
			}
			var want []store.Record
			for _, r := range tc.recs {
				if r.Label != huge.Label {
					want = append(want, r)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("decoded %d records, want %d: %v", len(got), len(want), got)
			}
			if d := value(p.dropped.WithLabelValues(ReasonTooLarge)) - before; d != tc.wantDropped {
				t.Fatalf("dropped %v, want %v", d, tc.wantDropped)
			}
		})
	}
}

// sink collects delivered records by device and seq.
type sink struct {
	mu  sync.Mutex
	got map[string]map[uint64]int
}

func (s *sink) deliver(recs []store.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.got == nil {
		s.got = map[string]map[uint64]int{}
	}
	for _, r := range recs {
		if s.got[r.Device] == nil {
			s.got[r.Device] = map[uint64]int{}
		}
		s.got[r.Device][r.Seq]++
	}
}

func (s *sink) count(dev string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got[dev])
}

// runFeed opens a pool on dsn (one replica) and runs a feed on it until the test ends.
func runFeed(t *testing.T, dsn string) (*Postgres, *sink, *pgxpool.Pool) {
	t.Helper()
	return runFeedWith(t, dsn, Options{})
}

// runFeedWith is runFeed with options (Logger and MaxBackoff are set here).
func runFeedWith(t *testing.T, dsn string, opt Options) (*Postgres, *sink, *pgxpool.Pool) {
	t.Helper()
	db, err := database.Open(context.Background(), dsn, database.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	opt.Logger, opt.MaxBackoff = slog.New(slog.DiscardHandler), 200*time.Millisecond
	p, err := NewPostgres(db.Pool, opt)
	if err != nil {
		t.Fatal(err)
	}
	s := &sink{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, s.deliver) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("feed: %v", err)
		}
	})
	select {
	case <-p.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("feed not listening after 10s")
	}
	return p, s, db.Pool
}

// TestAcrossReplicas: what one replica publishes reaches every replica,
// itself included, each record once, large batches split into payloads.
func TestAcrossReplicas(t *testing.T) {
	dsn := testutil.Postgres(t)
	a, sa, _ := runFeed(t, dsn)
	_, sb, _ := runFeed(t, dsn)
	const n = 3000 // well past one 8000-byte payload
	a.Publish(records("dev-a", 1, n))
	for _, s := range []*sink{sa, sb} {
		testutil.WaitFor(t, "every record on both replicas", 20*time.Second, func() bool { return s.count("dev-a") == n })
		s.mu.Lock()
		for seq, c := range s.got["dev-a"] {
			if c != 1 {
				t.Errorf("seq %d delivered %d times", seq, c)
			}
		}
		s.mu.Unlock()
	}
	if sent := value(a.sent); sent < 2 {
		t.Errorf("%v payloads sent for %d records, want a split", sent, n)
	}
}

// TestLinger: records published one at a time within Linger of the first
// go out in one notification.
func TestLinger(t *testing.T) {
	dsn := testutil.Postgres(t)
	a, sa, _ := runFeedWith(t, dsn, Options{Linger: 2 * time.Second})
	a.Publish(records("dev-l", 1, 1))
	testutil.WaitFor(t, "the first record taken from the queue", 5*time.Second, func() bool { return len(a.queue) == 0 })
	for seq := 2; seq <= 20; seq++ { // 20 records fit one payload
		a.Publish(records("dev-l", seq, 1))
	}
	testutil.WaitFor(t, "every record delivered", 10*time.Second, func() bool { return sa.count("dev-l") == 20 })
	if sent := value(a.sent); sent != 1 {
		t.Fatalf("%v notifications for 20 records published within the linger, want 1", sent)
	}
}

// TestUnwatched: a replica whose hub has no subscribers receives the
// notifications but decodes and delivers none; watched, it delivers.
func TestUnwatched(t *testing.T) {
	dsn := testutil.Postgres(t)
	var watched atomic.Bool
	a, _, _ := runFeed(t, dsn)
	b, sb, _ := runFeedWith(t, dsn, Options{Watched: watched.Load})
	a.Publish(records("dev-u", 1, 10))
	testutil.WaitFor(t, "the notification received", 10*time.Second, func() bool { return value(b.received) >= 1 })
	if n := sb.count("dev-u"); n != 0 {
		t.Fatalf("%d records delivered while unwatched", n)
	}
	watched.Store(true)
	a.Publish(records("dev-u", 11, 10))
	testutil.WaitFor(t, "records delivered once watched", 10*time.Second, func() bool { return sb.count("dev-u") == 10 })
}

// TestListenerReconnects: a listener whose connection is killed comes back
// by itself and delivers again.
func TestListenerReconnects(t *testing.T) {
	dsn := testutil.Postgres(t)
	a, _, pool := runFeed(t, dsn)
	b, sb, _ := runFeed(t, dsn)
	var killed int
	if err := pool.QueryRow(context.Background(),
		`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'fleetd-feed' AND datname = current_database()`).Scan(&killed); err != nil {
		t.Fatal(err)
	}
	if killed != 2 {
		t.Fatalf("terminated %d listeners, want 2", killed)
	}
	testutil.WaitFor(t, "listener reconnected", 10*time.Second, func() bool { return value(b.reconn) >= 1 })
	// Records notified before the new LISTEN are lost (best effort): keep publishing until some arrive.
	seq := 0
	testutil.WaitFor(t, "records delivered after the reconnect", 10*time.Second, func() bool {
		seq++
		a.Publish(records("dev-r", seq, 1))
		return sb.count("dev-r") > 0
	})
}
