// Package sim runs virtual edge agents over real MQTT, for load tests and
// demos: each device publishes its retained state (with an offline last
// will), telemetry every few seconds and detection batches at a steady
// rate, and measures how long fleetd takes to acknowledge each batch. The
// devices also answer update commands (see ota.go), so rollouts can be
// tested against a thousand devices over real MQTT, and snapshot commands
// with a small real JPEG (see snapshot.go), so the console's device page
// shows a snapshot relayed through fleetd.
package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"edgefleet/fleet/api"
)

// Options configures Run. Broker and Devices are required.
type Options struct {
	// Broker is the MQTT URL, e.g. tcp://127.0.0.1:1883.
	Broker string
	// Devices is how many virtual agents to run; they are <Prefix><n>.
	Devices int
	Prefix  string // default "sim-"
	// Rate is detection batches per second per device; default 1.
	Rate float64
	// Events per batch; default 3.
	Events int
	// TelemetryEvery is the telemetry period; default 10s.
	TelemetryEvery time.Duration
	// Duration of the sending phase; then Run waits up to Drain for the last acks.
	Duration time.Duration
	Drain    time.Duration // default 5s
	// ConnectRate caps new connections per second; default 500.
	ConnectRate int
	// Login returns the MQTT username and password of a device; nil means
	// username = device id and an empty password.
	Login func(device string) (user, password string) `json:"-"`
	// Sites and Lines spread the devices over labels site-<i> and line-<j>; defaults 3 and 4.
	Sites, Lines int
	// Labels the detections are drawn from; default person, car, forklift, helmet.
	Labels []string
	// Model, ModelVersion and AgentVersion are what the devices run at
	// start; defaults yolo-sim, 1 and sim.
	Model, ModelVersion, AgentVersion string
	// FailRate is the fraction of devices (picked by FailsUpdate) whose
	// updates fail at the health check.
	FailRate float64
	// Fails, if set, picks the devices whose updates fail instead of FailRate.
	Fails func(device string) bool `json:"-"`
	// OnCommand, if set, is called with every well-formed command a device
	// receives (repeats included), before the device acts on it; it must
	// be safe for concurrent use and must not block.
	OnCommand func(device string, c api.Command) `json:"-"`
	// UpdateStep is the time between two job states; default 20ms.
	UpdateStep time.Duration
	// MaxHealthWindow caps the health window a command asks for; default 1s.
	MaxHealthWindow time.Duration
	// ResendAfter, if set, sends a batch again when it has not been acked
	// this long after it was last sent, as an agent's spool does (a fleetd
	// that died with it, a database outage); zero never resends.
	ResendAfter time.Duration
	// ShadowAgreement is the agreement devices report in a shadow phase
	// (shadow.go); 0 means 0.95. ShadowSpread lowers each device's by up
	// to that much (a hash of its id picks how much);
	// ShadowAgreementOf, if set, decides instead. MaxShadow caps a shadow
	// phase's duration; default 1s.
	ShadowAgreement   float64
	ShadowSpread      float64
	ShadowAgreementOf func(device string) float64 `json:"-"`
	MaxShadow         time.Duration
	// OnConnected, if set, is called once the devices have connected, with
	// how many did.
	OnConnected func(connected int) `json:"-"`
}

func (o *Options) defaults() {
	if o.Prefix == "" {
		o.Prefix = "sim-"
	}
	if o.Rate <= 0 {
		o.Rate = 1
	}
	if o.Events <= 0 {
		o.Events = 3
	}
	if o.TelemetryEvery <= 0 {
		o.TelemetryEvery = 10 * time.Second
	}
	if o.Drain <= 0 {
		o.Drain = 5 * time.Second
	}
	if o.ConnectRate <= 0 {
		o.ConnectRate = 500
	}
	if o.Login == nil {
		o.Login = func(d string) (string, string) { return d, "" }
	}
	if o.MaxShadow <= 0 {
		o.MaxShadow = time.Second
	}
	if o.Sites <= 0 {
		o.Sites = 3
	}
	if o.Lines <= 0 {
		o.Lines = 4
	}
	if len(o.Labels) == 0 {
		o.Labels = []string{"person", "car", "forklift", "helmet"}
	}
	if o.Model == "" {
		o.Model = "yolo-sim"
	}
	if o.ModelVersion == "" {
		o.ModelVersion = "1"
	}
	if o.AgentVersion == "" {
		o.AgentVersion = "sim"
	}
	if o.UpdateStep <= 0 {
		o.UpdateStep = 20 * time.Millisecond
	}
	if o.MaxHealthWindow <= 0 {
		o.MaxHealthWindow = time.Second
	}
	if o.Fails == nil {
		rate := o.FailRate
		o.Fails = func(d string) bool { return FailsUpdate(d, rate) }
	}
}

// Report is the outcome of a run.
type Report struct {
	Devices        int           `json:"devices"`
	Connected      int           `json:"connected"`
	ConnectErrors  int           `json:"connect_errors"`
	Batches        int64         `json:"batches_sent"`
	Events         int64         `json:"events_sent"`
	Acked          int64         `json:"batches_acked"`
	Lost           int64         `json:"batches_lost"` // sent but not acked by the end of the drain
	Resent         int64         `json:"batches_resent"`
	PublishErrors  int64         `json:"publish_errors"`
	Telemetry      int64         `json:"telemetry_sent"`
	AckP50         time.Duration `json:"ack_p50"`
	AckP99         time.Duration `json:"ack_p99"`
	AckMax         time.Duration `json:"ack_max"`
	Elapsed        time.Duration `json:"elapsed"`
	BatchesPerSec  float64       `json:"batches_per_s"`
	ConnectElapsed time.Duration `json:"connect_elapsed"`
	// OTA counts the update commands answered.
	OTA OTAStats `json:"ota"`
	// Versions are the devices' versions at the end, by device id.
	Versions map[string]Version `json:"versions,omitempty"`
	// LastSeq is each device's last seq sent (it sent 1..LastSeq), by
	// device id: what a checker compares the stored seqs with.
	LastSeq map[string]uint64 `json:"last_seq,omitempty"`
}

// OK reports whether every batch was acknowledged and p99 is under limit.
func (r Report) OK(limit time.Duration) bool {
	return r.ConnectErrors == 0 && r.Lost == 0 && r.PublishErrors == 0 && r.Batches > 0 && r.AckP99 < limit
}

func (r Report) String() string {
	return fmt.Sprintf("devices %d (connected %d, errors %d) sent %d batches / %d events in %v (%.0f batches/s), acked %d, lost %d, publish errors %d; ack latency p50 %v p99 %v max %v",
		r.Devices, r.Connected, r.ConnectErrors, r.Batches, r.Events, r.Elapsed.Round(time.Millisecond), r.BatchesPerSec, r.Acked, r.Lost, r.PublishErrors,
		r.AckP50.Round(time.Microsecond), r.AckP99.Round(time.Microsecond), r.AckMax.Round(time.Microsecond))
}

// device is one virtual agent.
type device struct {
	id       string
	detTopic string // api.DetectionsTopic(id)
	o        *Options
	ctx      context.Context // Run's: update jobs end with it
	cl       *mqttConn
	seq      uint64
	labels   map[string]string
	ota      *otaCounters
	jobsWG   sync.WaitGroup

	resentInLoop atomic.Int64

	// pubMu makes "read the versions, publish them" one step for state and
	// telemetry, so the broker gets them in the order the versions changed:
	// a telemetry report that read the old version cannot follow the state
	// announcing the new one (fleetd's registry takes the version from
	// whichever came last).
	pubMu sync.Mutex

	mu                                sync.Mutex
	pending                           map[uint64]time.Time // first seq of a batch -> sent
	unacked                           map[uint64]*sent     // with ResendAfter: first seq -> the batch
	lat                               []time.Duration
	jobs                              map[string]*jobRun // by job id
	closing                           bool
	model, modelVersion, agentVersion string
	snapJPEG                          []byte // the snapshot, encoded on first use (snapshot.go)
}

// sent is a batch kept for resending.
type sent struct {
	payload []byte
	last    time.Time
}

// resend sends again the batches unacked for ResendAfter, and reports how many it sent.
func (d *device) resend(now time.Time) int {
	if d.o.ResendAfter <= 0 {
		return 0
	}
	var due [][]byte
	d.mu.Lock()
	for _, b := range d.unacked {
		if now.Sub(b.last) >= d.o.ResendAfter {
			b.last = now
			due = append(due, b.payload)
		}
	}
	d.mu.Unlock()
	for _, p := range due {
		d.cl.publish(api.DetectionsTopic(d.id), 1, false, p)
	}
	return len(due)
}

// Run runs the fleet of virtual agents until Duration has passed (or ctx
// ends), then waits for outstanding acks and reports.
func Run(ctx context.Context, o Options) (Report, error) {
	o.defaults()
	if o.Broker == "" || o.Devices <= 0 {
		return Report{}, errors.New("sim: run: Broker and Devices are required")
	}
	rep := Report{Devices: o.Devices}
	devs := make([]*device, 0, o.Devices)
	var mu sync.Mutex
	var connErr error
	ota := &otaCounters{}
	start := time.Now()
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second / time.Duration(o.ConnectRate))
	for i := range o.Devices {
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := connect(ctx, &o, i, ota)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				rep.ConnectErrors++
				connErr = err
				return
			}
			devs = append(devs, d)
		}()
	}
	tick.Stop()
	wg.Wait()
	rep.Connected = len(devs)
	rep.ConnectElapsed = time.Since(start)
	defer func() {
		// Leave as an agent does: retained state offline, then disconnect.
		for _, d := range devs {
			d.stopJobs()
			off, _ := json.Marshal(api.State{DeviceID: d.id, Online: false, Time: time.Now().UnixMilli()})
			d.cl.publish(api.StateTopic(d.id), 1, true, off)
			d.cl.close()
		}
	}()
	if len(devs) == 0 {
		return rep, fmt.Errorf("sim: no device connected: %v", connErr)
	}
	if o.OnConnected != nil {
		o.OnConnected(len(devs))
	}

	sendCtx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()
	var c counters
	sendStart := time.Now()
	runSenders(sendCtx, &o, devs, &c)
	rep.Elapsed = time.Since(sendStart)
	rep.Batches, rep.Events, rep.PublishErrors, rep.Telemetry = c.batches.Load(), c.events.Load(), c.pubErrs.Load(), c.tele.Load()
	rep.BatchesPerSec = float64(rep.Batches) / rep.Elapsed.Seconds()

	// Drain: wait for the last acks.
	drain := time.Now().Add(o.Drain)
	for time.Now().Before(drain) && ctx.Err() == nil {
		if outstanding(devs) == 0 {
			break
		}
		for _, d := range devs {
			rep.Resent += int64(d.resend(time.Now()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, d := range devs {
		rep.Resent += d.resentInLoop.Load()
	}
	var lat []time.Duration
	for _, d := range devs {
		d.mu.Lock()
		rep.Lost += int64(len(d.pending))
		lat = append(lat, d.lat...)
		d.mu.Unlock()
	}
	rep.Acked = int64(len(lat))
	rep.OTA = ota.stats()
	rep.Versions = make(map[string]Version, len(devs))
	rep.LastSeq = make(map[string]uint64, len(devs))
	for _, d := range devs {
		rep.Versions[d.id] = d.version()
		rep.LastSeq[d.id] = d.seq
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		rep.AckP50 = lat[len(lat)/2]
		rep.AckP99 = lat[len(lat)*99/100]
		rep.AckMax = lat[len(lat)-1]
	}
	return rep, nil
}

func outstanding(devs []*device) int {
	n := 0
	for _, d := range devs {
		d.mu.Lock()
		n += len(d.pending)
		d.mu.Unlock()
	}
	return n
}

func connect(ctx context.Context, o *Options, i int, ota *otaCounters) (*device, error) {
	id := fmt.Sprintf("%s%d", o.Prefix, i)
	d := &device{id: id, detTopic: api.DetectionsTopic(id), o: o, ctx: ctx, ota: ota, pending: map[uint64]time.Time{}, unacked: map[uint64]*sent{}, jobs: map[string]*jobRun{},
		model: o.Model, modelVersion: o.ModelVersion, agentVersion: o.AgentVersion,
		labels: map[string]string{"site": fmt.Sprintf("site-%d", i%o.Sites), "line": fmt.Sprintf("line-%d", (i/o.Sites)%o.Lines)}}
	user, pass := o.Login(d.id)
	lwt, _ := json.Marshal(api.State{DeviceID: d.id, Online: false})
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var err error
	d.cl, err = dialMQTT(cctx, o.Broker, d.id, user, pass, &will{topic: api.StateTopic(d.id), payload: lwt, retain: true, qos: 1}, d.onMessage)
	if err != nil {
		return nil, fmt.Errorf("sim: connect %s: %w", d.id, err)
	}
	if err := d.cl.subscribe(cctx, api.AcksTopic(d.id), api.CommandsTopic(d.id)); err != nil {
		d.cl.close()
		return nil, fmt.Errorf("sim: subscribe %s: %w", d.id, err)
	}
	if err := d.publishState(); err != nil {
		d.cl.close()
		return nil, fmt.Errorf("sim: state %s: %w", d.id, err)
	}
	return d, nil
}

func (d *device) onAck(_ string, payload []byte) {
	now := time.Now()
	var buf [4]api.SeqRange
	ranges, ok := parseAck(buf[:0], payload, d.id)
	if !ok {
		var a api.Ack
		if api.Decode(payload, &a) != nil {
			return
		}
		ranges = a.Ranges
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, r := range ranges {
		for s, t := range d.pending {
			if s >= r.From && s <= r.To {
				d.lat = append(d.lat, now.Sub(t))
				delete(d.pending, s)
				delete(d.unacked, s)
			}
		}
	}
}

// publishTelemetry publishes one telemetry report with the device's
// current versions (see pubMu).
func (d *device) publishTelemetry(uptime time.Time) error {
	d.pubMu.Lock()
	defer d.pubMu.Unlock()
	now, v := time.Now(), d.version()
	p, _ := json.Marshal(api.Telemetry{DeviceID: d.id, Time: now.UnixMilli(), UptimeS: now.Sub(uptime).Seconds(),
		AgentVersion: v.AgentVersion, Model: v.Model, ModelVersion: v.ModelVersion, Engine: "sim",
		Cameras: []api.CameraStats{{ID: SimCamera, Up: true, FPS: 15 + rand.Float64()}}, InferP50Ms: 20 + 5*rand.Float64(), InferP99Ms: 40 + 10*rand.Float64(),
		SpoolDepth: uint64(rand.IntN(10))})
	return d.cl.publish(api.TelemetryTopic(d.id), 0, false, p)
}
