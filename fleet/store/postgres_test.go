package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"edgefleet/fleet/api"
	"edgefleet/fleet/database"
	"edgefleet/fleet/database/dbtest"
)

// openPostgres opens a Postgres store in a fresh database whose clock reads now.
func openPostgres(t testing.TB, r Retention, now time.Time) *Postgres {
	t.Helper()
	db := dbtest.Open(t)
	s, err := OpenPostgres(context.Background(), db.Pool, PostgresOptions{Retention: r, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func partitionNames(t testing.TB, pool *pgxpool.Pool) map[string]bool {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'detections'::regclass`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var n string
		rows.Scan(&n)
		out[n] = true
	}
	return out
}

// TestPostgresPartitions: days around now get partitions, age retention
// drops whole old days, and an event of a dropped day sent again is a duplicate.
func TestPostgresPartitions(t *testing.T) {
	now := t0.Add(10 * 24 * time.Hour)
	s := openPostgres(t, Retention{MaxAge: 72 * time.Hour}, now)
	ctx := context.Background()
	parts := partitionNames(t, s.pool)
	for _, want := range []string{"detections_20261204", "detections_20261205", "detections_20261206", "detections_20261207", "detections_default"} {
		if !parts[want] {
			t.Errorf("partition %s missing; have %v", want, parts)
		}
	}
	// One event a day for the last 8 days, then one from 40 days ago (default partition).
	for i := range 8 {
		ev := api.Event{Seq: uint64(i + 1), CameraID: "c", Label: "person", Time: now.Add(-time.Duration(7-i) * 24 * time.Hour).UnixMicro()}
		if r, err := s.Ingest(ctx, "dev-a", []api.Event{ev}); err != nil || r.Stored != 1 {
			t.Fatalf("ingest day %d: %+v, %v", i, r, err)
		}
	}
	old := api.Event{Seq: 100, CameraID: "c", Label: "person", Time: now.Add(-40 * 24 * time.Hour).UnixMicro()}
	if r, err := s.Ingest(ctx, "dev-b", []api.Event{old}); err != nil || r.Stored != 1 {
		t.Fatalf("ingest old: %+v, %v", r, err)
	}
	parts = partitionNames(t, s.pool)
	if !parts["detections_20261128"] || parts["detections_20261025"] {
		t.Fatalf("late events: partitions %v (want one for 7 days ago, none for 40)", parts)
	}
	n, err := s.Retain(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	// Kept: captured after now-72h: days -2, -1, 0 (3 events); the one at exactly -3d is at the cutoff.
	recs := all(t, s, Query{})
	if n != 9-len(recs) || len(recs) != 4 {
		t.Fatalf("retain deleted %d, kept %d records", n, len(recs))
	}
	parts = partitionNames(t, s.pool)
	if parts["detections_20261128"] || parts["detections_20261201"] || !parts["detections_20261202"] {
		t.Errorf("after retain: partitions %v", parts)
	}
	r, err := s.Ingest(ctx, "dev-a", []api.Event{{Seq: 1, CameraID: "c", Label: "person", Time: now.Add(-7 * 24 * time.Hour).UnixMicro()}})
	if err != nil || r != (Result{Duplicates: 1}) {
		t.Errorf("resend of a dropped day's event = %+v, %v", r, err)
	}
}

// TestPostgresBatchAcrossDevices: calls of many devices share commits, and
// a seq repeated within one commit is stored once and counted once.
func TestPostgresBatchAcrossDevices(t *testing.T) {
	s := openPostgres(t, Retention{}, t0)
	ctx := context.Background()
	const devices, batches = 40, 10
	var wg sync.WaitGroup
	var mu sync.Mutex
	var total Result
	for d := range devices {
		wg.Go(func() {
			for b := range uint64(batches) {
				// Each batch resends the previous one's last event.
				r, err := s.Ingest(ctx, fmt.Sprintf("dev-%d", d), events(max(b*3, 1), b*3+3))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				total.Stored += r.Stored
				total.Duplicates += r.Duplicates
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if want := (Result{Stored: devices * batches * 3, Duplicates: devices * (batches - 1)}); total != want {
		t.Fatalf("total %+v, want %+v", total, want)
	}
	st := s.Stats()
	if st.Commits >= st.Calls {
		t.Errorf("no grouping: %d commits for %d calls", st.Commits, st.Calls)
	}
	if recs := all(t, s, Query{Device: "dev-7"}); len(recs) != batches*3 {
		t.Errorf("dev-7 has %d records", len(recs))
	}
	// Two calls in one commit carrying the same event: one stores it.
	res := make(chan Result, 2)
	for range 2 {
		if err := s.Submit(ctx, "dev-x", events(1, 2), func(r Result, err error) {
			if err != nil {
				t.Error(err)
			}
			res <- r
		}); err != nil {
			t.Fatal(err)
		}
	}
	a, b := <-res, <-res
	if a.Stored+b.Stored != 2 || a.Duplicates+b.Duplicates != 2 {
		t.Errorf("same events twice: %+v and %+v", a, b)
	}
}

// TestPostgresLinger: a lone caller's commits never wait for more calls;
// calls arriving together make the next commits wait and group more.
func TestPostgresLinger(t *testing.T) {
	s := openPostgres(t, Retention{}, t0)
	ctx := context.Background()
	for b := range uint64(20) {
		if _, err := s.Ingest(ctx, "dev-alone", events(b*3+1, b*3+3)); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.lingered.Load(); n != 0 {
		t.Fatalf("a lone caller's commits waited %d times", n)
	}
	ingestConcurrently(t, s, "dev-", 50, 20, func(b uint64) []api.Event { return events(b*3+1, b*3+3) })
	if s.lingered.Load() == 0 {
		t.Fatal("1,000 concurrent calls: no commit waited for more")
	}
	if recs := all(t, s, Query{Device: "dev-49"}); len(recs) != 60 {
		t.Fatalf("dev-49 has %d records, want 60", len(recs))
	}
}

// TestPostgresLingerGap: callers that each wait for their previous commit
// (a closed loop) end a linger once they have all arrived, after
// lingerGap of quiet, not at the end of Linger; calls that keep arriving
// (an open stream) make a commit linger in full.
func TestPostgresLingerGap(t *testing.T) {
	db := dbtest.Open(t)
	ctx := context.Background()
	s, err := OpenPostgres(ctx, db.Pool, PostgresOptions{Linger: time.Second, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ingestConcurrently(t, s, "loop-", 20, 5, func(b uint64) []api.Event { return events(b*2+1, b*2+2) })
	lingered, idle := s.lingered.Load(), s.lingerIdle.Load()
	if lingered == 0 || idle != lingered {
		t.Fatalf("closed loop: %d commits lingered, %d of them ended by the gap; want all of at least one", lingered, idle)
	}

	// An open stream: three calls every 10 ms for 1.5 s, none waited for.
	var acked sync.WaitGroup
	done := func(Result, error) { acked.Done() }
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for b := range uint64(150) {
		<-tick.C
		for d := range 3 {
			acked.Add(1)
			if err := s.Submit(ctx, fmt.Sprintf("stream-%d", d), events(b+1, b+1), done); err != nil {
				t.Fatal(err)
			}
		}
	}
	acked.Wait()
	if full := (s.lingered.Load() - lingered) - (s.lingerIdle.Load() - idle); full == 0 {
		t.Fatal("open stream: no commit lingered in full")
	}
}

// TestPostgresResendsOnTwoReplicas: two stores on one database (two
// replicas) storing the same resent events at once, the calls in opposite
// orders, never deadlock, and each event is stored once.
func TestPostgresResendsOnTwoReplicas(t *testing.T) {
	db := dbtest.Open(t)
	ctx := context.Background()
	var reps []*Postgres
	for range 2 {
		s, err := OpenPostgres(ctx, db.Pool, PostgresOptions{Now: func() time.Time { return t0 }})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		reps = append(reps, s)
	}
	const devices, rounds = 40, 10
	var stored atomic.Int64
	for round := range uint64(rounds) {
		var wg sync.WaitGroup
		for i, s := range reps {
			for d := range devices {
				if i == 1 {
					d = devices - 1 - d
				}
				wg.Go(func() {
					res, err := s.Ingest(ctx, fmt.Sprintf("dev-%d", d), events(round*3+1, round*3+3))
					if err != nil {
						t.Error(err)
						return
					}
					stored.Add(int64(res.Stored))
				})
			}
		}
		wg.Wait()
	}
	if want := int64(devices * rounds * 3); stored.Load() != want {
		t.Fatalf("%d events stored, want %d", stored.Load(), want)
	}
}

// proxy forwards TCP to target until cut; cut closes every connection and
// refuses new ones until heal.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); p.cut() })
	go p.serve()
	return p
}

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		go func() { io.Copy(up, c); up.Close() }()
		go func() { io.Copy(c, up); c.Close() }()
	}
}

func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *proxy) heal() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

// TestPostgresOutage: while the database is unreachable Ingest fails (so
// ingest does not ack and devices keep their events); once it is back the
// same store works again and nothing is stored twice.
func TestPostgresOutage(t *testing.T) {
	dsn := dbtest.DSN(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	px := newProxy(t, u.Host)
	u.Host = px.ln.Addr().String()
	ctx := context.Background()
	db, err := database.Open(ctx, u.String(), database.Options{ConnectTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err := OpenPostgres(ctx, db.Pool, PostgresOptions{CommitTimeout: 2 * time.Second, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if r, err := s.Ingest(ctx, "dev-a", events(1, 5)); err != nil || r.Stored != 5 {
		t.Fatalf("before outage: %+v, %v", r, err)
	}
	px.cut()
	if _, err := s.Ingest(ctx, "dev-a", events(6, 10)); err == nil {
		t.Fatal("ingest succeeded with the database unreachable")
	}
	if err := db.Ping(ctx); err == nil {
		t.Fatal("ping succeeded with the database unreachable")
	}
	px.heal()
	r, err := s.Ingest(ctx, "dev-a", events(4, 10))
	if err != nil || r != (Result{Stored: 5, Duplicates: 2}) {
		t.Fatalf("after outage: %+v, %v", r, err)
	}
	if err := db.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestPostgresClosed(t *testing.T) {
	s := openPostgres(t, Retention{}, t0)
	s.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Ingest(context.Background(), "dev-a", events(1, 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Ingest after Close: %v", err)
	}
	if _, err := s.Query(context.Background(), Query{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Query after Close: %v", err)
	}
}

// TestPostgresRetainCount: count retention drops whole old days as
// partitions, then the oldest rows of the next day.
func TestPostgresRetainCount(t *testing.T) {
	now := t0.Add(2 * 24 * time.Hour)
	s := openPostgres(t, Retention{MaxEvents: 15}, now)
	ctx := context.Background()
	var evs []api.Event
	for d := range 3 {
		for i := range 10 {
			evs = append(evs, api.Event{Seq: uint64(d*10 + i + 1), CameraID: "c", Label: "person",
				Time: t0.Add(time.Duration(d)*24*time.Hour + time.Duration(i)*time.Minute).UnixMicro()})
		}
	}
	if r, err := s.Ingest(ctx, "dev-a", evs); err != nil || r.Stored != 30 {
		t.Fatalf("ingest: %+v, %v", r, err)
	}
	n, err := s.Retain(ctx, now)
	if err != nil || n != 15 {
		t.Fatalf("retain = %d, %v; want 15", n, err)
	}
	recs := all(t, s, Query{})
	if len(recs) != 15 || recs[len(recs)-1].Seq != 16 {
		t.Fatalf("kept %d records, oldest seq %d", len(recs), recs[len(recs)-1].Seq)
	}
	if parts := partitionNames(t, s.pool); parts["detections_20261125"] || !parts["detections_20261126"] {
		t.Errorf("partitions after retain: %v", parts)
	}
	if st := s.Stats(); st.Records != 15 || st.Stored != 30 {
		t.Errorf("stats after retain: %+v", st)
	}
	if n, err := s.Retain(ctx, now); err != nil || n != 0 {
		t.Errorf("second retain = %d, %v", n, err)
	}
	r, err := s.Ingest(ctx, "dev-a", evs[10:16])
	if err != nil || r != (Result{Duplicates: 6}) {
		t.Errorf("resend of dropped and kept events = %+v, %v", r, err)
	}
}
