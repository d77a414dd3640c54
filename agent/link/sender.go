package link

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"time"

	"edgefleet/fleet/api"
)

// Outbox is where the Sender takes events from: the agent's spool
// (agent/spool), or MemOutbox in tests. Seqs start at 1.
type Outbox interface {
	// Next returns up to max events with Seq above after, in increasing Seq;
	// none and a nil error when there are none yet (it need not block).
	Next(ctx context.Context, after uint64, max int) ([]api.Event, error)
	// Ack removes the events in ranges (inclusive); seqs it does not hold
	// are ignored.
	Ack(ctx context.Context, ranges ...api.SeqRange) error
}

// Optional Outbox extensions the Sender uses when present.
type (
	// readier: Ready receives a value when new events were stored, so the
	// Sender need not wait for its next poll.
	readier interface{ Ready() <-chan struct{} }
	// corrupter: an error from Next with CorruptSeq names a record that can
	// never be sent; the Sender acknowledges it (dropping it) and counts it.
	corrupter interface{ CorruptSeq() uint64 }
	// byteReader: NextBytes is Next bounded by the bytes it returns too, so
	// that the sender reads about one batch of events with snapshots.
	byteReader interface {
		NextBytes(ctx context.Context, after uint64, max, maxBytes int) ([]api.Event, error)
	}
)

// SenderOptions tune a Sender; zero values take the defaults.
type SenderOptions struct {
	// BatchSize is the most events per DetectionBatch; default 500. A batch
	// whose JSON exceeds api.MaxPayload is split.
	BatchSize int
	// BatchBytes bounds a batch by size as well: events are added while
	// their JSON size (an upper estimate, snapshots in base64 included)
	// stays within it; default and most api.MaxPayload less 4 KiB. An event
	// above it goes alone; one above api.MaxPayload can never be sent and is
	// dropped (acknowledged in the outbox), logged with its size and counted
	// in edgefleet_link_dropped_total{kind="too_large"}.
	BatchBytes int
	// Window is the most batches sent but not yet acknowledged by the fleet;
	// default 1, which keeps the fleet's store in seq order whatever it
	// loses. With a larger window, throughput over a long round trip grows,
	// but if the fleet drops one batch while later ones get through (say its
	// subscriber restarts behind an external broker), the resent batch is
	// stored after them: still at least once, no longer in order.
	Window int
	// AckTimeout is how long the oldest unacknowledged batch may wait for
	// the fleet's Ack before everything unacknowledged is sent again;
	// default 30 s.
	AckTimeout time.Duration
	// Poll is how often an empty Outbox is asked again; default 50 ms.
	Poll time.Duration
	// Logger defaults to the Link's logger.
	Logger *slog.Logger
}

// Sender drains an Outbox to the fleet through a Link: batches in seq order,
// at most Window of them awaiting the fleet's Ack (see SenderOptions.Window), Outbox.Ack when the Ack
// arrives. After a reconnect, an error or an AckTimeout it sends again
// everything not yet acknowledged (at least once; the fleet dedupes on
// (device, seq)). A Sender is used by one goroutine, its Run.
type Sender struct {
	link *Link
	out  Outbox
	opts SenderOptions
	log  *slog.Logger
}

// flight is one batch sent and not yet fully acknowledged.
type flight struct {
	seqs  []uint64 // increasing
	acked []bool
	left  int
	sent  time.Time
}

// NewSender returns a Sender of out's events over l. It consumes l.Acks().
func NewSender(l *Link, out Outbox, opts SenderOptions) *Sender {
	if opts.BatchSize <= 0 {
		opts.BatchSize = 500
	}
	if opts.BatchBytes <= 0 || opts.BatchBytes > maxBatchBytes {
		opts.BatchBytes = maxBatchBytes
	}
	if opts.Window <= 0 {
		opts.Window = 1
	}
	if opts.AckTimeout <= 0 {
		opts.AckTimeout = 30 * time.Second
	}
	if opts.Poll <= 0 {
		opts.Poll = 50 * time.Millisecond
	}
	log := opts.Logger
	if log == nil {
		log = l.opts.Logger
	}
	return &Sender{link: l, out: out, opts: opts, log: log.With("component", "sender", "device_id", l.opts.DeviceID)}
}

// Run sends until ctx is done, then returns nil. Outbox and publish errors
// are logged, counted and retried; they do not end Run.
func (s *Sender) Run(ctx context.Context) error {
	var (
		inflight []*flight
		after    uint64 // the last seq handed to the link
		session  uint64
		ready    <-chan struct{}
	)
	if r, ok := s.out.(readier); ok {
		ready = r.Ready()
	}
	m := s.link.metrics
	// rewind forgets what is in flight and resumes after the last seq
	// below the oldest unacknowledged batch; acknowledged events are gone
	// from the outbox, so only unacknowledged ones are sent again.
	rewind := func(reason string) {
		if len(inflight) == 0 {
			return
		}
		after = inflight[0].seqs[0] - 1
		inflight = inflight[:0]
		m.resends.WithLabelValues(reason).Inc()
	}
	onAck := func(a api.Ack) {
		if err := s.out.Ack(ctx, a.Ranges...); err != nil {
			// The events stay in the outbox and are sent again later.
			s.log.Warn("outbox ack failed", "error", err)
			return
		}
		var n int
		inflight = slices.DeleteFunc(inflight, func(f *flight) bool {
			n += f.ack(a.Ranges)
			return f.left == 0
		})
		m.eventsAcked.Add(float64(n))
	}
	poll := time.NewTimer(s.opts.Poll)
	defer poll.Stop()
	var lastErr time.Time
	for {
		n, err := s.link.WaitConnected(ctx)
		if err != nil {
			return nil
		}
		if n != session {
			rewind("reconnect")
			session = n
		}
	drain:
		for {
			select {
			case a := <-s.link.Acks():
				onAck(a)
			default:
				break drain
			}
		}
		if len(inflight) > 0 && time.Since(inflight[0].sent) > s.opts.AckTimeout {
			s.log.Warn("no ack from the fleet in time; sending again", "from_seq", inflight[0].seqs[0], "batches", len(inflight))
			rewind("ack_timeout")
		}
		if len(inflight) < s.opts.Window {
			evs, err := s.next(ctx, after)
			if err != nil {
				var c corrupter
				if errors.As(err, &c) && len(evs) == 0 {
					seq := c.CorruptSeq()
					s.log.Error("dropping corrupt outbox record", "seq", seq, "error", err)
					if err := s.out.Ack(ctx, api.SeqRange{From: seq, To: seq}); err == nil {
						m.dropped.WithLabelValues("corrupt").Inc()
						continue
					}
				}
				if ctx.Err() != nil {
					return nil
				}
				m.outboxErrors.Inc()
				if time.Since(lastErr) > 10*time.Second {
					s.log.Warn("outbox next failed", "error", err)
					lastErr = time.Now()
				}
			}
			if len(evs) > 0 {
				evs = cutBatch(evs, s.opts.BatchBytes)
				fl, err := s.send(ctx, evs)
				inflight = append(inflight, fl...)
				if len(fl) > 0 {
					after = fl[len(fl)-1].seqs[len(fl[len(fl)-1].seqs)-1]
				}
				if err == nil {
					continue
				}
				if ctx.Err() != nil {
					return nil
				}
				m.publishErrors.Inc()
				s.log.Debug("publish failed", "error", err)
				// Send again from the first unacknowledged event: what
				// failed may or may not have reached the fleet.
				if len(inflight) == 0 {
					after = evs[0].Seq - 1
				} else {
					rewind("publish_error")
				}
			}
		}
		_, _, changed := s.link.current()
		poll.Reset(s.opts.Poll)
		select {
		case <-ctx.Done():
			return nil
		case a := <-s.link.Acks():
			onAck(a)
		case <-ready:
		case <-changed:
		case <-poll.C:
		}
	}
}

// next reads the next batch's worth of events from the outbox.
func (s *Sender) next(ctx context.Context, after uint64) ([]api.Event, error) {
	if br, ok := s.out.(byteReader); ok {
		return br.NextBytes(ctx, after, s.opts.BatchSize, s.opts.BatchBytes)
	}
	return s.out.Next(ctx, after, s.opts.BatchSize)
}

// send publishes evs as one batch, or several when its JSON is too large,
// and returns the flights that were acknowledged by the broker.
func (s *Sender) send(ctx context.Context, evs []api.Event) ([]*flight, error) {
	b := api.DetectionBatch{DeviceID: s.link.opts.DeviceID, Events: evs}
	err := s.link.PublishBatch(ctx, &b)
	switch {
	case err == nil:
		f := &flight{seqs: make([]uint64, len(evs)), acked: make([]bool, len(evs)), left: len(evs), sent: time.Now()}
		for i, e := range evs {
			f.seqs[i] = e.Seq
		}
		m := s.link.metrics
		m.batches.Inc()
		m.eventsSent.Add(float64(len(evs)))
		return []*flight{f}, nil
	case errors.Is(err, ErrTooLarge) && len(evs) > 1:
		h := len(evs) / 2
		f1, err := s.send(ctx, evs[:h])
		if err != nil {
			return f1, err
		}
		f2, err := s.send(ctx, evs[h:])
		return append(f1, f2...), err
	case errors.Is(err, ErrTooLarge):
		// One event the fleet would never accept: drop it rather than
		// block the outbox forever.
		s.log.Error("dropping event too large to send", "seq", evs[0].Seq, "type", evs[0].Type,
			"estimated_bytes", wireSize(&evs[0]), "max_payload", api.MaxPayload, "error", err)
		s.link.metrics.dropped.WithLabelValues("too_large").Inc()
		if err := s.out.Ack(ctx, api.SeqRange{From: evs[0].Seq, To: evs[0].Seq}); err != nil {
			return nil, err
		}
		return nil, nil
	}
	return nil, err
}

// maxBatchBytes is the default and largest SenderOptions.BatchBytes: the
// payload limit less room for the batch's envelope.
const maxBatchBytes = api.MaxPayload - 4<<10

// cutBatch returns the longest prefix of evs whose estimated JSON size is
// within maxBytes, and at least the first event.
func cutBatch(evs []api.Event, maxBytes int) []api.Event {
	total := 0
	for i := range evs {
		total += wireSize(&evs[i])
		if total > maxBytes && i > 0 {
			return evs[:i]
		}
	}
	return evs
}

// wireSize is an upper estimate of the JSON size of e inside a batch:
// field names and numbers at their longest, strings with a margin for
// escapes, snapshot bytes in base64.
func wireSize(e *api.Event) int {
	str := func(s string) int { return len(s) + len(s)/8 + 8 }
	n := 260 + str(e.CameraID) + str(e.Model) + str(e.ModelVersion) + str(e.Label) + str(e.Type)
	if t := e.Track; t != nil {
		n += 120 + 36*len(t.Path)
	}
	if l := e.Line; l != nil {
		n += 40 + str(l.Line) + str(l.Direction)
	}
	if z := e.Zone; z != nil {
		n += 40 + str(z.Zone)
	}
	if sn := e.Snapshot; sn != nil {
		n += 60 + base64Len(len(sn.Crop)) + base64Len(len(sn.Thumb))
	}
	return n
}

func base64Len(n int) int { return (n + 2) / 3 * 4 }

// ack marks the seqs covered by ranges and returns how many were new.
func (f *flight) ack(ranges []api.SeqRange) int {
	n := 0
	for _, r := range ranges {
		i, _ := slices.BinarySearch(f.seqs, r.From)
		for ; i < len(f.seqs) && f.seqs[i] <= r.To; i++ {
			if !f.acked[i] {
				f.acked[i] = true
				n++
			}
		}
	}
	f.left -= n
	return n
}
