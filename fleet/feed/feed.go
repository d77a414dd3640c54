// Package feed carries the live detection feed between fleetd replicas
// that share a PostgreSQL database, so that the console's SSE stream on
// any replica shows the detections every replica ingests.
//
// A replica hands each batch it has stored to Publish (ingest's OnStored).
// One goroutine turns the queued records into pg_notify calls on the
// channel edgefleet_detections: compact JSON arrays of records, each
// payload under PostgreSQL's 8000-byte limit, many payloads per statement.
// NOTIFY is delivered at commit, so a record is announced only once it is
// stored. Every replica, the sender included, LISTENs on a dedicated
// connection (not one of the pool's) and hands what arrives to its hub;
// the connection is re-opened with backoff when it breaks.
//
// The feed is best effort, like the hub it feeds: records queued while the
// queue is full, notified while a listener is reconnecting, or larger than
// a payload are lost for the live view (counted), never for the store.
// Without a database fleetd keeps the local path: ingest publishes straight
// into its own hub.
package feed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"edgefleet/fleet/api"
	"edgefleet/fleet/store"
)

// Channel is the default NOTIFY channel.
const Channel = "edgefleet_detections"

// MaxPayload is the largest notification payload sent, in bytes:
// PostgreSQL refuses 8000 and above.
const MaxPayload = 7900

// Options configures NewPostgres. Zero fields take the defaults.
type Options struct {
	// Channel is the NOTIFY channel; default Channel. Replicas of one
	// fleet must use the same.
	Channel string
	// Queue bounds the records waiting to be notified; default 16384.
	Queue int
	// MaxBackoff caps the wait between reconnections of the listener; default 5s.
	MaxBackoff time.Duration
	// Linger is how long the records of a burst are collected before they
	// are notified, so that a busy replica sends a few large payloads, one
	// transaction, rather than one per stored batch; default 50ms.
	Linger time.Duration
	// Watched, if set, tells whether anyone on this replica watches the
	// feed (the hub has subscribers): received payloads are decoded and
	// delivered only then, as deliver would drop them anyway. Decoding
	// every replica's records is most of a replica's feed cost. Nil means
	// always.
	Watched func() bool
	// Registerer receives the metrics; nil means none are registered.
	Registerer prometheus.Registerer
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// Postgres is the live feed over PostgreSQL LISTEN/NOTIFY. Publish is safe
// for concurrent use; Run once.
type Postgres struct {
	pool  *pgxpool.Pool
	opt   Options
	log   *slog.Logger
	queue chan store.Record
	ready chan struct{}
	once  sync.Once

	dropped  *prometheus.CounterVec
	sent     prometheus.Counter
	received prometheus.Counter
	reconn   prometheus.Counter
}

// Drop reasons, the values of edgefleet_feed_dropped_total's reason label.
const (
	ReasonQueueFull = "queue_full" // Publish found the queue full
	ReasonTooLarge  = "too_large"  // one record's JSON exceeds MaxPayload
	ReasonNotify    = "notify"     // the pg_notify statement failed
	ReasonBadJSON   = "bad_json"   // a received payload did not decode
)

// NewPostgres returns a feed over pool's database. Nothing is sent or
// received until Run.
func NewPostgres(pool *pgxpool.Pool, opt Options) (*Postgres, error) {
	if opt.Channel == "" {
		opt.Channel = Channel
	}
	if opt.Queue <= 0 {
		opt.Queue = 16384
	}
	if opt.MaxBackoff <= 0 {
		opt.MaxBackoff = 5 * time.Second
	}
	if opt.Linger <= 0 {
		opt.Linger = 50 * time.Millisecond
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	p := &Postgres{pool: pool, opt: opt, log: opt.Logger, queue: make(chan store.Record, opt.Queue), ready: make(chan struct{}),
		dropped:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgefleet_feed_dropped_total", Help: "Live feed records not passed between replicas, by reason."}, []string{"reason"}),
		sent:     prometheus.NewCounter(prometheus.CounterOpts{Name: "edgefleet_feed_notifications_sent_total", Help: "pg_notify payloads sent to the other replicas."}),
		received: prometheus.NewCounter(prometheus.CounterOpts{Name: "edgefleet_feed_notifications_received_total", Help: "Live feed notifications received from the replicas."}),
		reconn:   prometheus.NewCounter(prometheus.CounterOpts{Name: "edgefleet_feed_listen_reconnects_total", Help: "Times the live feed listener re-opened its connection."}),
	}
	for _, r := range []string{ReasonQueueFull, ReasonTooLarge, ReasonNotify, ReasonBadJSON} {
		p.dropped.WithLabelValues(r)
	}
	if opt.Registerer != nil {
		for _, c := range []prometheus.Collector{p.dropped, p.sent, p.received, p.reconn} {
			if err := opt.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("feed: register metrics: %w", err)
			}
		}
	}
	return p, nil
}

// Publish queues stored records for every replica's live feed. It never
// blocks: when the queue is full the records are dropped and counted.
func (p *Postgres) Publish(recs []store.Record) {
	for i := range recs {
		select {
		case p.queue <- recs[i]:
		default:
			p.dropped.WithLabelValues(ReasonQueueFull).Inc()
		}
	}
}

// Ready is closed once the listener has first subscribed: from then on,
// records any replica publishes reach deliver.
func (p *Postgres) Ready() <-chan struct{} { return p.ready }

// Run notifies the queued records and listens, passing every replica's
// records (this one's included) to deliver, until ctx ends. deliver must
// not block for long (Hub.Publish does not).
func (p *Postgres) Run(ctx context.Context, deliver func([]store.Record)) error {
	var wg sync.WaitGroup
	wg.Go(func() { p.notifyLoop(ctx) })
	wg.Go(func() { p.listenLoop(ctx, deliver) })
	wg.Wait()
	return nil
}

// notifyLoop sends what Publish queued, many payloads per statement: the
// records that arrive within Linger of the first go together.
func (p *Postgres) notifyLoop(ctx context.Context) {
	const maxRecords = 4096 // per statement
	recs := make([]store.Record, 0, maxRecords)
	linger := time.NewTimer(p.opt.Linger)
	linger.Stop()
	for {
		recs = recs[:0]
		select {
		case <-ctx.Done():
			return
		case r := <-p.queue:
			recs = append(recs, r)
		}
		linger.Reset(p.opt.Linger)
	fill:
		for len(recs) < maxRecords {
			select {
			case r := <-p.queue:
				recs = append(recs, r)
			case <-linger.C:
				break fill
			case <-ctx.Done():
				return
			}
		}
		linger.Stop() // since Go 1.23 a stopped timer delivers no stale tick
		payloads := p.encode(recs)
		if len(payloads) == 0 {
			continue
		}
		nctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := p.pool.Exec(nctx, `SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p`, p.opt.Channel, payloads)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				p.log.Warn("feed: notify", "records", len(recs), "err", err)
			}
			p.dropped.WithLabelValues(ReasonNotify).Add(float64(len(recs)))
			continue
		}
		p.sent.Add(float64(len(payloads)))
	}
}

// encode packs records into JSON arrays of at most MaxPayload bytes.
func (p *Postgres) encode(recs []store.Record) []string {
	var out []string
	buf := make([]byte, 0, MaxPayload)
	flush := func() {
		if len(buf) > 0 {
			out = append(out, string(append(buf, ']')))
			buf = buf[:0]
		}
	}
	var b []byte
	for i := range recs {
		// json.Marshal's bytes without reflection; none where it would fail.
		b = api.AppendRecord(b[:0], recs[i].Device, &recs[i].Event)
		if len(b) == 0 || len(b)+2 > MaxPayload {
			p.dropped.WithLabelValues(ReasonTooLarge).Inc()
			continue
		}
		if len(buf)+1+len(b)+1 > MaxPayload {
			flush()
		}
		if len(buf) == 0 {
			buf = append(buf, '[')
		} else {
			buf = append(buf, ',')
		}
		buf = append(buf, b...)
	}
	flush()
	return out
}

// listenLoop keeps a LISTEN connection open, reconnecting with backoff.
func (p *Postgres) listenLoop(ctx context.Context, deliver func([]store.Record)) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		start := time.Now()
		err := p.listen(ctx, deliver)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > time.Minute {
			backoff = 100 * time.Millisecond // it was up a while: start over
		}
		p.log.Warn("feed: listen: reconnecting", "err", err, "in", backoff)
		p.reconn.Inc()
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, p.opt.MaxBackoff)
	}
}

// listen opens a connection of its own, LISTENs and delivers until an error.
func (p *Postgres) listen(ctx context.Context, deliver func([]store.Record)) error {
	cfg := p.pool.Config().ConnConfig.Copy()
	cfg.RuntimeParams["application_name"] = "fleetd-feed"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("feed: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{p.opt.Channel}.Sanitize()); err != nil {
		return fmt.Errorf("feed: listen: %w", err)
	}
	p.once.Do(func() { close(p.ready) })
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return ctx.Err()
			}
			return fmt.Errorf("feed: wait: %w", err)
		}
		p.received.Inc()
		if p.opt.Watched != nil && !p.opt.Watched() {
			continue // no one to deliver to: skip the decoding
		}
		var recs []store.Record
		if err := json.Unmarshal([]byte(n.Payload), &recs); err != nil {
			p.dropped.WithLabelValues(ReasonBadJSON).Inc()
			continue
		}
		deliver(recs)
	}
}
