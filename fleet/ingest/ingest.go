// Package ingest is fleetd's MQTT front: it subscribes to the devices'
// state, telemetry, detections and job topics, feeds the registry, stores
// detections durably and then acknowledges them to the device. Snapshots
// (snapshot.go) asks devices for camera snapshots and routes their replies.
//
// Malformed messages (bad topic, oversized, bad JSON, wrong types, invalid
// ids, a device id that does not match the topic) are counted per reason in
// edgefleet_ingest_dropped_total and dropped; they never affect other
// devices. Detection batches are stored concurrently so the store can group
// them into one commit.
package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"edgefleet/fleet/api"
	"edgefleet/fleet/registry"
	"edgefleet/fleet/store"
)

// Conn is the MQTT connection ingest uses: the embedded broker's inline
// client (Inline) or a client of an external broker (Dial).
type Conn interface {
	// Subscribe calls h for every message matching filter, until ctx ends.
	// h may be called concurrently and must not keep payload after it returns.
	Subscribe(ctx context.Context, filter string, h func(topic string, payload []byte)) error
	// Publish sends a message at QoS 1.
	Publish(ctx context.Context, topic string, retain bool, payload []byte) error
}

// Devices is the part of the registry ingest feeds.
type Devices interface {
	UpdateState(api.State) error
	UpdateTelemetry(api.Telemetry) error
	RecordJob(api.JobStatus) error
	RecordDetections(device string, n int)
}

var _ Devices = (*registry.Registry)(nil)

// Drop reasons, the values of the reason label.
const (
	ReasonBadTopic       = "bad_topic"
	ReasonTooLarge       = "too_large"
	ReasonBadJSON        = "bad_json"
	ReasonWrongType      = "wrong_type"
	ReasonUnknownField   = "unknown_field"
	ReasonInvalid        = "invalid"
	ReasonDeviceMismatch = "device_mismatch"
	ReasonJobMismatch    = "job_mismatch"
	ReasonStoreError     = "store_error"
	ReasonUnexpected     = "unexpected_kind"
)

// Options configures New. Store and Devices are required.
type Options struct {
	Store   store.Store
	Devices Devices
	// ShareGroup, when set, subscribes to detections through the MQTT
	// shared subscription $share/<group>/..., so several fleetd processes
	// split the detections of an external broker.
	ShareGroup string
	// ShareReports, with ShareGroup, splits state, telemetry and job
	// reports the same way, so each reaches one replica. Set it only when
	// the registry and the rollouts live in a database every replica
	// shares (a report applied by any replica is applied for all);
	// without it every replica gets every report, which keeps a registry
	// of its own complete.
	ShareReports bool
	// StateCatchUp is how long, with ShareReports, Run also holds a plain
	// subscription to the devices' state: a shared subscription is sent no
	// retained messages, and the retained states are how a starting
	// replica learns what changed while no replica was running. During
	// the window a state message may be applied by every replica; states
	// are whole and carry their time, so applying one again changes
	// nothing. Default 10s.
	StateCatchUp time.Duration
	// MaxInflight bounds detection batches being stored at once; default 50000.
	MaxInflight int
	// AckWorkers hand stored batches to the registry and the live feed and
	// send their acks (not waiting for the broker); default 4.
	AckWorkers int
	// OnStored, if set, is called with each batch's newly stored records.
	OnStored func(recs []store.Record)
	// OnJob, if set, is called with each valid job status report.
	OnJob func(api.JobStatus)
	// Snapshots, if set, receives the devices' snapshot replies; Run then
	// subscribes to them (never shared, so each replica gets its own).
	Snapshots *Snapshots
	// Registerer receives the metrics; nil means none are registered.
	Registerer prometheus.Registerer
	// Logger receives errors and lifecycle logs; nil means slog.Default().
	Logger *slog.Logger
}

// Ingest is safe for concurrent use.
type Ingest struct {
	opt   Options
	conn  Conn
	sem   chan struct{}
	wg    sync.WaitGroup // batches submitted and not yet acked
	log   *slog.Logger
	acks  chan stored
	ready chan struct{}

	mu      sync.RWMutex
	closing bool

	messages *prometheus.CounterVec
	dropped  *prometheus.CounterVec
	events   *prometheus.CounterVec
	ackLat   prometheus.Histogram
	inflight prometheus.Gauge
}

// New returns an Ingest reading from conn.
func New(conn Conn, opt Options) (*Ingest, error) {
	if opt.Store == nil || opt.Devices == nil {
		return nil, errors.New("ingest: new: Store and Devices are required")
	}
	if opt.MaxInflight <= 0 {
		opt.MaxInflight = 50000
	}
	if opt.AckWorkers <= 0 {
		opt.AckWorkers = 4
	}
	if opt.StateCatchUp <= 0 {
		opt.StateCatchUp = 10 * time.Second
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	in := &Ingest{
		opt: opt, conn: conn, sem: make(chan struct{}, opt.MaxInflight), log: opt.Logger, acks: make(chan stored, 4096), ready: make(chan struct{}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgefleet_ingest_messages_total", Help: "MQTT messages received, by topic kind."}, []string{"kind"}),
		dropped:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgefleet_ingest_dropped_total", Help: "Messages dropped, by reason."}, []string{"reason"}),
		events:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgefleet_ingest_events_total", Help: "Detection events received, by result (stored or duplicate)."}, []string{"result"}),
		ackLat: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "edgefleet_ingest_ack_seconds", Help: "Time from receiving a detection batch to publishing its ack.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "edgefleet_ingest_inflight_batches", Help: "Detection batches being stored."}),
	}
	for _, r := range []string{ReasonBadTopic, ReasonTooLarge, ReasonBadJSON, ReasonWrongType, ReasonUnknownField, ReasonInvalid, ReasonDeviceMismatch, ReasonJobMismatch, ReasonStoreError} {
		in.dropped.WithLabelValues(r)
	}
	if opt.Registerer != nil {
		for _, c := range []prometheus.Collector{in.messages, in.dropped, in.events, in.ackLat, in.inflight} {
			if err := opt.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("ingest: register metrics: %w", err)
			}
		}
	}
	return in, nil
}

// Run subscribes and serves until ctx ends, then waits for batches in flight.
func (in *Ingest) Run(ctx context.Context) error {
	var workers sync.WaitGroup
	for range in.opt.AckWorkers {
		workers.Go(func() {
			for s := range in.acks {
				in.ack(s)
			}
		})
	}
	defer func() {
		in.mu.Lock()
		in.closing = true
		in.mu.Unlock()
		in.wg.Wait()
		close(in.acks)
		workers.Wait()
	}()
	for _, f := range in.filters() {
		if err := in.conn.Subscribe(ctx, f, in.Handle); err != nil {
			return fmt.Errorf("ingest: subscribe %s: %w", f, err)
		}
	}
	if in.opt.ShareGroup != "" && in.opt.ShareReports {
		// Retained states are not sent to shared subscriptions: read them
		// on a plain one for a while. ".../state/#" matches what
		// ".../state" does; a filter of its own keeps paho (which routes
		// by filter, $share/<group>/ stripped) from replacing the shared
		// subscription's route with this one and dropping both at the end.
		catchUp := api.Filter(api.KindState) + "/#"
		cctx, cancel := context.WithTimeout(ctx, in.opt.StateCatchUp)
		defer cancel()
		if err := in.conn.Subscribe(cctx, catchUp, in.Handle); err != nil {
			return fmt.Errorf("ingest: subscribe %s: %w", catchUp, err)
		}
	}
	in.log.Info("ingest subscribed", "share_group", in.opt.ShareGroup, "share_reports", in.opt.ShareReports)
	close(in.ready)
	<-ctx.Done()
	return nil
}

// filters are the subscriptions Run makes: detections shared with
// ShareGroup, the reports too with ShareReports, snapshots never.
func (in *Ingest) filters() []string {
	share := func(f string) string {
		if in.opt.ShareGroup == "" {
			return f
		}
		return "$share/" + in.opt.ShareGroup + "/" + f
	}
	reports := func(f string) string {
		if in.opt.ShareReports {
			return share(f)
		}
		return f
	}
	filters := []string{reports(api.Filter(api.KindState)), reports(api.Filter(api.KindTelemetry)),
		reports(api.Filter(api.KindJobs)), share(api.Filter(api.KindDetections))}
	if in.opt.Snapshots != nil {
		filters = append(filters, api.Filter(api.KindSnapshot)) // never shared: a reply goes to the replica that asked
	}
	return filters
}

// Ready is closed once Run has subscribed to every topic.
func (in *Ingest) Ready() <-chan struct{} { return in.ready }

// Dropped returns how many messages were dropped for reason.
func (in *Ingest) Dropped(reason string) float64 {
	return counterValue(in.dropped.WithLabelValues(reason))
}

// Handle processes one MQTT message. It does not keep payload.
func (in *Ingest) Handle(topic string, payload []byte) {
	received := time.Now()
	device, kind, job, err := api.ParseTopic(topic)
	if err != nil {
		in.drop(ReasonBadTopic)
		return
	}
	in.messages.WithLabelValues(kind).Inc()
	if len(payload) > api.MaxPayload {
		in.drop(ReasonTooLarge)
		return
	}
	switch kind {
	case api.KindState:
		if len(payload) == 0 {
			return // a cleared retained state
		}
		var st api.State
		if in.decode(payload, &st) && in.sameDevice(device, st.DeviceID) {
			in.opt.Devices.UpdateState(st)
		}
	case api.KindTelemetry:
		var t api.Telemetry
		if in.decode(payload, &t) && in.sameDevice(device, t.DeviceID) {
			in.opt.Devices.UpdateTelemetry(t)
		}
	case api.KindJobs:
		var j api.JobStatus
		if in.decode(payload, &j) && in.sameDevice(device, j.DeviceID) {
			if j.JobID != job {
				in.drop(ReasonJobMismatch)
				return
			}
			in.opt.Devices.RecordJob(j)
			if in.opt.OnJob != nil {
				in.opt.OnJob(j)
			}
		}
	case api.KindDetections:
		var b api.DetectionBatch
		if err := api.DecodeBatch(payload, &b); err != nil {
			in.drop(Classify(err))
			return
		}
		if !in.sameDevice(device, b.DeviceID) || len(b.Events) == 0 {
			return
		}
		in.submit(b, received)
	case api.KindSnapshot:
		if in.opt.Snapshots == nil {
			in.drop(ReasonUnexpected)
			return
		}
		in.opt.Snapshots.deliver(device, job, payload)
	default:
		in.drop(ReasonUnexpected) // acks and commands are ours, not the devices'
	}
}

// stored is a batch whose store call has finished.
type stored struct {
	batch    api.DetectionBatch
	received time.Time
	res      store.Result
	err      error
}

// submit hands a batch to the store; an ack worker acknowledges it once
// it is durable. It blocks (slowing only this device) while MaxInflight
// batches are pending.
func (in *Ingest) submit(b api.DetectionBatch, received time.Time) {
	in.mu.RLock()
	defer in.mu.RUnlock()
	if in.closing {
		return // the device resends it to the next fleetd
	}
	in.sem <- struct{}{}
	in.wg.Add(1)
	in.inflight.Inc()
	done := func(res store.Result, err error) {
		in.acks <- stored{batch: b, received: received, res: res, err: err}
	}
	if sub, ok := in.opt.Store.(store.Submitter); ok {
		if err := sub.Submit(context.Background(), b.DeviceID, b.Events, done); err != nil {
			done(store.Result{}, err)
		}
		return
	}
	go func() {
		res, err := in.opt.Store.Ingest(context.Background(), b.DeviceID, b.Events)
		done(res, err)
	}()
}

// ack feeds the registry and live feed with a stored batch and publishes
// its ack. The publish is waited for (the broker's PUBACK) on a goroutine
// of its own: an ack worker waiting a round trip per ack would cap acks at
// AckWorkers per round trip, and a busy broker's round trips are long.
// The batch counts against MaxInflight until its ack is published.
func (in *Ingest) ack(s stored) {
	release := func() { <-in.sem; in.wg.Done(); in.inflight.Dec() }
	b, res := s.batch, s.res
	if s.err != nil {
		defer release()
		in.drop(ReasonStoreError)
		in.log.Error("store detections", "device_id", b.DeviceID, "events", len(b.Events), "err", s.err)
		return
	}
	in.events.WithLabelValues("stored").Add(float64(res.Stored))
	in.events.WithLabelValues("duplicate").Add(float64(res.Duplicates))
	if res.Stored > 0 {
		// The device's detection count and the live feed take detections
		// only: analytics events (with their snapshots) are read through
		// /api/v1/events. Of a batch with resent events, at most its
		// detections are new ones.
		dets := 0
		for i := range b.Events {
			if !b.Events[i].IsAnalytics() {
				dets++
			}
		}
		if n := min(res.Stored, dets); n > 0 {
			in.opt.Devices.RecordDetections(b.DeviceID, n)
		}
		if in.opt.OnStored != nil && dets > 0 {
			recs := make([]store.Record, 0, dets)
			for _, e := range b.Events {
				if !e.IsAnalytics() {
					recs = append(recs, store.Record{Device: b.DeviceID, Event: e})
				}
			}
			// A batch mixing new and resent events is fed whole; the feed is best effort.
			in.opt.OnStored(recs)
		}
	}
	payload := AppendAck(nil, b.DeviceID, b.Events)
	if q, ok := in.conn.(QuickPublisher); ok {
		// At QoS 0: nothing to wait for, and neither the broker nor the
		// device sends a PUBACK for it. An ack lost with a connection
		// is an ack the device did not get: it sends the batch again,
		// and the store answers it as duplicates.
		defer release()
		if err := q.PublishQuick(api.AcksTopic(b.DeviceID), payload); err != nil {
			in.log.Warn("publish ack", "device_id", b.DeviceID, "err", err)
			return
		}
		in.ackLat.Observe(time.Since(s.received).Seconds())
		return
	}
	go func() {
		defer release()
		if err := in.conn.Publish(context.Background(), api.AcksTopic(b.DeviceID), false, payload); err != nil {
			in.log.Warn("publish ack", "device_id", b.DeviceID, "err", err)
			return
		}
		in.ackLat.Observe(time.Since(s.received).Seconds())
	}()
}

// QuickPublisher is a Conn that can also send a message at QoS 0 without
// waiting for it to leave: acks go that way. Dial's client is one.
type QuickPublisher interface {
	PublishQuick(topic string, payload []byte) error
}

// AppendAck appends the JSON of the Ack for events (their seqs in ranges)
// to b, as json.Marshal writes it, without reflection.
func AppendAck(b []byte, device string, events []api.Event) []byte {
	ranges := Ranges(events)
	if api.ValidateID(device) != nil || ranges == nil {
		p, _ := json.Marshal(&api.Ack{DeviceID: device, Ranges: ranges})
		return append(b, p...)
	}
	b = append(b, `{"device_id":"`...)
	b = append(b, device...) // letters, digits, . _ -: nothing to escape
	b = append(b, `","ranges":[`...)
	for i, r := range ranges {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"from":`...)
		b = strconv.AppendUint(b, r.From, 10)
		b = append(b, `,"to":`...)
		b = strconv.AppendUint(b, r.To, 10)
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

// Ranges compresses the seqs of events (increasing) into inclusive ranges.
func Ranges(events []api.Event) []api.SeqRange {
	var out []api.SeqRange
	for _, e := range events {
		if n := len(out); n > 0 && out[n-1].To+1 == e.Seq {
			out[n-1].To = e.Seq
			continue
		}
		out = append(out, api.SeqRange{From: e.Seq, To: e.Seq})
	}
	return out
}

func (in *Ingest) drop(reason string) { in.dropped.WithLabelValues(reason).Inc() }

// decode decodes payload strictly, counting a drop on failure.
func (in *Ingest) decode(payload []byte, v any) bool {
	err := api.Decode(payload, v)
	if err == nil {
		return true
	}
	in.drop(Classify(err))
	return false
}

func (in *Ingest) sameDevice(topicDevice, payloadDevice string) bool {
	if topicDevice != payloadDevice {
		in.drop(ReasonDeviceMismatch)
		return false
	}
	return true
}

// Classify maps an api.Decode error to a drop reason.
func Classify(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	msg := err.Error()
	switch {
	case errors.As(err, &syn), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF), strings.HasSuffix(msg, "trailing data"):
		return ReasonBadJSON
	case errors.As(err, &typ):
		return ReasonWrongType
	case strings.Contains(msg, "unknown field"):
		return ReasonUnknownField
	case strings.Contains(msg, "exceeds"):
		return ReasonTooLarge
	}
	return ReasonInvalid
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return 0
	}
	return m.GetCounter().GetValue()
}
