// Package link is the agent's MQTT session with the fleet
// (github.com/eclipse/paho.mqtt.golang): it connects with the device's
// credentials and TLS, keeps a retained online State with an offline last
// will, reconnects with exponential backoff and jitter, publishes detection
// batches at QoS 1 waiting for the broker's PUBACK, and hands the fleet's
// acks and commands to the agent. Sender drains an Outbox (the spool)
// through a Link, at least once, resuming where the fleet's acks left off,
// in batches bounded by count and by bytes (events may carry snapshots).
package link

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"

	"edgefleet/fleet/api"
)

// Sentinel errors of the package.
var (
	// ErrNotConnected is returned by publishes while there is no session.
	ErrNotConnected = errors.New("link: not connected")
	// ErrTimeout is returned when the broker did not acknowledge a publish
	// within Options.PublishTimeout.
	ErrTimeout = errors.New("link: publish not acknowledged in time")
	// ErrTooLarge is returned for a payload above api.MaxPayload.
	ErrTooLarge = errors.New("link: payload too large")
)

// Options configures a Link. Zero durations take the documented defaults;
// Brokers and DeviceID are required.
type Options struct {
	// Brokers are tried in order on each connection attempt, e.g.
	// "tcp://fleet:1883" or "ssl://fleet:8883" (also "tls://", "mqtts://"),
	// or MQTT over websockets, "ws://" and "wss://".
	Brokers []string
	// DeviceID is this device's id; it is also the MQTT client id.
	DeviceID string
	// Username defaults to DeviceID. Password is the device's password or token.
	Username string
	Password string
	// CAFile verifies the broker's certificate (system roots when empty);
	// CertFile and KeyFile are the device's client certificate, both or neither.
	CAFile, CertFile, KeyFile string
	// TLS, when set, is used as is instead of the three files.
	TLS *tls.Config
	// KeepAlive is the MQTT keepalive; default 30 s.
	KeepAlive time.Duration
	// ConnectTimeout bounds one connection attempt; default 10 s.
	ConnectTimeout time.Duration
	// BackoffMin and BackoffMax bound the wait between failed connection
	// attempts: the step doubles from min to max, and each wait is drawn
	// from [step/2, step] (equal jitter), so no wait exceeds BackoffMax;
	// default 500 ms and 30 s.
	BackoffMin, BackoffMax time.Duration
	// PublishTimeout bounds the wait for a PUBACK; default 10 s.
	PublishTimeout time.Duration
	// State is published retained (with DeviceID, Online and Time filled in)
	// on every connect; see also SetState.
	State api.State
	// QueueLen is the capacity of the Acks and Commands channels; a message
	// arriving when its channel is full is dropped and counted (acks are
	// recovered by the Sender's resend, commands are re-sent by the fleet).
	// Default 1024.
	QueueLen int
	// Registerer receives the link's metrics (edgefleet_link_*); nil: none.
	Registerer prometheus.Registerer
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

func (o *Options) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.KeepAlive, 30*time.Second)
	def(&o.ConnectTimeout, 10*time.Second)
	def(&o.BackoffMin, 500*time.Millisecond)
	def(&o.BackoffMax, 30*time.Second)
	def(&o.PublishTimeout, 10*time.Second)
	if o.BackoffMax < o.BackoffMin {
		o.BackoffMax = o.BackoffMin
	}
	if o.Username == "" {
		o.Username = o.DeviceID
	}
	if o.QueueLen <= 0 {
		o.QueueLen = 1024
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// session is one MQTT connection; lost is closed when it ends.
type session struct {
	c    paho.Client
	n    uint64
	lost chan struct{}
	once sync.Once
	err  error
}

func (s *session) end(err error) {
	s.once.Do(func() { s.err = err; close(s.lost) })
}

// Link is the device's MQTT link to the fleet. It is safe for concurrent use;
// Run must be running for anything to be sent.
type Link struct {
	opts    Options
	log     *slog.Logger
	tls     *tls.Config
	metrics *metrics
	acks    chan api.Ack
	cmds    chan api.Command

	mu      sync.Mutex
	sess    *session      // nil while disconnected
	changed chan struct{} // closed and replaced whenever sess changes
	nsess   uint64
	state   api.State
	running bool
}

// New checks opts and loads the TLS files; it does not connect.
func New(opts Options) (*Link, error) {
	opts.setDefaults()
	if len(opts.Brokers) == 0 {
		return nil, errors.New("link: new: no broker URL")
	}
	if err := api.ValidateID(opts.DeviceID); err != nil {
		return nil, fmt.Errorf("link: new: device id: %w", err)
	}
	l := &Link{
		opts:    opts,
		log:     opts.Logger.With("component", "link", "device_id", opts.DeviceID),
		acks:    make(chan api.Ack, opts.QueueLen),
		cmds:    make(chan api.Command, opts.QueueLen),
		changed: make(chan struct{}),
		state:   opts.State,
	}
	needTLS := false
	for _, u := range opts.Brokers {
		scheme, _, ok := strings.Cut(u, "://")
		if !ok {
			return nil, fmt.Errorf("link: new: broker %q: want scheme://host:port", u)
		}
		switch scheme {
		case "tcp", "mqtt", "ws":
		case "ssl", "tls", "mqtts", "tcps", "wss":
			needTLS = true
		default:
			return nil, fmt.Errorf("link: new: broker %q: unsupported scheme %q", u, scheme)
		}
	}
	switch {
	case opts.TLS != nil:
		l.tls = opts.TLS
	case needTLS || opts.CAFile != "" || opts.CertFile != "":
		cfg, err := loadTLS(opts.CAFile, opts.CertFile, opts.KeyFile)
		if err != nil {
			return nil, err
		}
		l.tls = cfg
	}
	l.metrics = newMetrics()
	if opts.Registerer != nil {
		if err := l.metrics.register(opts.Registerer); err != nil {
			return nil, fmt.Errorf("link: new: register metrics: %w", err)
		}
	}
	return l, nil
}

func loadTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("link: tls ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("link: tls ca %s: no PEM certificates", caFile)
		}
		cfg.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("link: tls: set both cert_file and key_file, or neither")
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("link: tls client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// Acks delivers the fleet's acknowledgements, decoded and checked. The
// Sender consumes it; do not read it while a Sender runs.
func (l *Link) Acks() <-chan api.Ack { return l.acks }

// Commands delivers the fleet's commands, decoded and checked.
func (l *Link) Commands() <-chan api.Command { return l.cmds }

// Connected reports whether a session is up.
func (l *Link) Connected() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sess != nil
}

// current returns the session (nil if none), its number, and a channel
// closed at the next change.
func (l *Link) current() (*session, uint64, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sess, l.nsess, l.changed
}

func (l *Link) setSession(s *session) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sess = s
	if s != nil {
		l.nsess = s.n
	}
	close(l.changed)
	l.changed = make(chan struct{})
}

// WaitConnected blocks until a session is up and returns its number, which
// grows with every new session.
func (l *Link) WaitConnected(ctx context.Context) (uint64, error) {
	for {
		s, n, changed := l.current()
		if s != nil {
			return n, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-changed:
		}
	}
}

// SetState replaces the State template (e.g. after a model update) and
// publishes it at once if connected.
func (l *Link) SetState(ctx context.Context, st api.State) error {
	l.mu.Lock()
	l.state = st
	l.mu.Unlock()
	if !l.Connected() {
		return nil
	}
	return l.publishState(ctx, true)
}

func (l *Link) stateJSON(online bool) []byte {
	l.mu.Lock()
	st := l.state
	l.mu.Unlock()
	st.DeviceID = l.opts.DeviceID
	st.Online = online
	st.Time = time.Now().UnixMilli()
	b, _ := json.Marshal(st) // a State always marshals
	return b
}

func (l *Link) publishState(ctx context.Context, online bool) error {
	return l.publish(ctx, api.StateTopic(l.opts.DeviceID), 1, true, l.stateJSON(online))
}

// Run keeps a session with the fleet until ctx is done: it connects,
// subscribes to the device's acks and commands, publishes the retained
// online State, and reconnects with backoff when the session is lost. On
// the way out it publishes the offline State and disconnects cleanly. It
// returns nil once ctx is done.
func (l *Link) Run(ctx context.Context) error {
	l.mu.Lock()
	if l.running {
		l.mu.Unlock()
		return errors.New("link: run: already running")
	}
	l.running = true
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.running = false
		l.mu.Unlock()
	}()

	bo := newBackoff(l.opts.BackoffMin, l.opts.BackoffMax, nil)
	var n uint64
	for {
		n++
		s, err := l.connect(ctx, n)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			l.metrics.connectFailures.Inc()
			wait := bo.next()
			l.log.Warn("connect failed", "error", err, "retry_in", wait.Round(time.Millisecond))
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
			continue
		}
		bo.reset()
		l.metrics.connects.Inc()
		l.metrics.connected.Set(1)
		l.setSession(s)
		l.log.Info("connected", "attempt", n)
		select {
		case <-ctx.Done():
			l.setSession(nil)
			l.metrics.connected.Set(0)
			l.shutdown(s)
			return nil
		case <-s.lost:
			l.setSession(nil)
			l.metrics.connected.Set(0)
			l.log.Warn("connection lost", "error", s.err)
			s.c.Disconnect(0)
		}
	}
}

// backoff is the wait between failed connection attempts: the step
// doubles from min to max, and each wait is drawn from [step/2, step]
// (equal jitter), so it never exceeds max and never falls below min/2.
type backoff struct {
	min, max, step time.Duration
	rng            *rand.Rand // nil: the global source
}

// newBackoff returns a backoff from lo to hi (hi < lo is taken as lo);
// rng seeds the jitter for tests, nil uses the global source.
func newBackoff(lo, hi time.Duration, rng *rand.Rand) *backoff {
	return &backoff{min: lo, max: max(lo, hi), step: lo, rng: rng}
}

// next returns the wait before the next attempt and doubles the step.
func (b *backoff) next() time.Duration {
	half := b.step / 2
	var j time.Duration
	if n := int64(b.step-half) + 1; n > 0 {
		if b.rng != nil {
			j = time.Duration(b.rng.Int64N(n))
		} else {
			j = time.Duration(rand.Int64N(n))
		}
	}
	if b.step > b.max/2 {
		b.step = b.max // doubling would pass max (or overflow)
	} else {
		b.step *= 2
	}
	return half + j
}

// reset starts again from min, after a successful connect.
func (b *backoff) reset() { b.step = b.min }

func (l *Link) connect(ctx context.Context, n uint64) (*session, error) {
	s := &session{n: n, lost: make(chan struct{})}
	o := paho.NewClientOptions().
		SetClientID(l.opts.DeviceID).
		SetUsername(l.opts.Username).
		SetPassword(l.opts.Password).
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetKeepAlive(l.opts.KeepAlive).
		SetPingTimeout(min(l.opts.KeepAlive, 10*time.Second)).
		SetConnectTimeout(l.opts.ConnectTimeout).
		SetWriteTimeout(l.opts.PublishTimeout).
		SetBinaryWill(api.StateTopic(l.opts.DeviceID), l.stateJSON(false), 1, true).
		SetConnectionLostHandler(func(_ paho.Client, err error) { s.end(err) })
	for _, u := range l.opts.Brokers {
		o.AddBroker(u)
	}
	if l.tls != nil {
		o.SetTLSConfig(l.tls)
	}
	c := paho.NewClient(o)
	s.c = c
	if err := wait(ctx, c.Connect(), l.opts.ConnectTimeout+time.Second); err != nil {
		c.Disconnect(0)
		return nil, fmt.Errorf("link: connect: %w", err)
	}
	subs := map[string]byte{api.AcksTopic(l.opts.DeviceID): 1, api.CommandsTopic(l.opts.DeviceID): 1}
	tok := c.SubscribeMultiple(subs, l.onMessage)
	if err := wait(ctx, tok, l.opts.PublishTimeout); err != nil {
		c.Disconnect(0)
		return nil, fmt.Errorf("link: subscribe: %w", err)
	}
	for topic, code := range tok.(*paho.SubscribeToken).Result() {
		if code >= 0x80 {
			c.Disconnect(0)
			return nil, fmt.Errorf("link: subscribe %s: refused by the broker (code %#x)", topic, code)
		}
	}
	if err := wait(ctx, c.Publish(api.StateTopic(l.opts.DeviceID), 1, true, l.stateJSON(true)), l.opts.PublishTimeout); err != nil {
		c.Disconnect(0)
		return nil, fmt.Errorf("link: publish online state: %w", err)
	}
	return s, nil
}

// shutdown says goodbye: retained offline state, then a clean DISCONNECT
// (which suppresses the will).
func (l *Link) shutdown(s *session) {
	ctx, cancel := context.WithTimeout(context.Background(), min(l.opts.PublishTimeout, 2*time.Second))
	defer cancel()
	if err := wait(ctx, s.c.Publish(api.StateTopic(l.opts.DeviceID), 1, true, l.stateJSON(false)), l.opts.PublishTimeout); err != nil {
		l.log.Warn("publish offline state", "error", err)
	}
	s.c.Disconnect(250)
	l.log.Info("disconnected")
}

// wait waits for a paho token.
func wait(ctx context.Context, tok paho.Token, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return ErrTimeout
	}
}

func (l *Link) onMessage(_ paho.Client, m paho.Message) {
	_, kind, _, err := api.ParseTopic(m.Topic())
	if err != nil {
		l.metrics.decodeErrors.WithLabelValues("topic").Inc()
		l.log.Warn("message on unexpected topic", "topic", m.Topic())
		return
	}
	switch kind {
	case api.KindAcks:
		var a api.Ack
		if err := l.decode(kind, m.Payload(), &a); err != nil {
			return
		}
		if a.DeviceID != l.opts.DeviceID {
			l.metrics.decodeErrors.WithLabelValues(kind).Inc()
			l.log.Warn("ack for another device", "ack_device_id", a.DeviceID)
			return
		}
		select {
		case l.acks <- a:
		default:
			l.metrics.dropped.WithLabelValues(kind).Inc()
		}
	case api.KindCommands:
		var c api.Command
		if err := l.decode(kind, m.Payload(), &c); err != nil {
			return
		}
		select {
		case l.cmds <- c:
		default:
			l.metrics.dropped.WithLabelValues(kind).Inc()
			l.log.Warn("command dropped: queue full", "job_id", c.JobID)
		}
	default:
		l.metrics.decodeErrors.WithLabelValues("topic").Inc()
	}
}

func (l *Link) decode(kind string, payload []byte, v any) error {
	err := api.Decode(payload, v)
	if err != nil {
		l.metrics.decodeErrors.WithLabelValues(kind).Inc()
		l.log.Warn("bad payload from fleet", "kind", kind, "bytes", len(payload), "error", err)
	}
	return err
}

// publish sends one message and, for QoS 1, waits for the PUBACK.
func (l *Link) publish(ctx context.Context, topic string, qos byte, retained bool, payload []byte) error {
	if len(payload) > api.MaxPayload {
		return fmt.Errorf("%w: %d bytes on %s", ErrTooLarge, len(payload), topic)
	}
	s, _, _ := l.current()
	if s == nil {
		return ErrNotConnected
	}
	tok := s.c.Publish(topic, qos, retained, payload)
	if qos == 0 {
		// Returns once written to the connection's queue.
		return wait(ctx, tok, l.opts.PublishTimeout)
	}
	t := time.NewTimer(l.opts.PublishTimeout)
	defer t.Stop()
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			return fmt.Errorf("link: publish %s: %w", topic, err)
		}
		return nil
	case <-s.lost:
		return fmt.Errorf("link: publish %s: %w", topic, ErrNotConnected)
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return fmt.Errorf("link: publish %s: %w", topic, ErrTimeout)
	}
}

// PublishBatch sends a detection batch at QoS 1 and waits for the broker's
// PUBACK (which is not the fleet's Ack: that comes on Acks).
func (l *Link) PublishBatch(ctx context.Context, b *api.DetectionBatch) error {
	payload, err := json.Marshal(b)
	if err != nil {
		return fmt.Errorf("link: encode batch: %w", err)
	}
	return l.publish(ctx, api.DetectionsTopic(l.opts.DeviceID), 1, false, payload)
}

// PublishTelemetry sends telemetry at QoS 0: a lost report is replaced by
// the next one.
func (l *Link) PublishTelemetry(ctx context.Context, t *api.Telemetry) error {
	payload, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("link: encode telemetry: %w", err)
	}
	return l.publish(ctx, api.TelemetryTopic(l.opts.DeviceID), 0, false, payload)
}

// PublishJob reports a job state transition at QoS 1 and waits for the PUBACK.
func (l *Link) PublishJob(ctx context.Context, j *api.JobStatus) error {
	if err := api.ValidateID(j.JobID); err != nil {
		return fmt.Errorf("link: publish job status: job_id: %w", err)
	}
	payload, err := json.Marshal(j)
	if err != nil {
		return fmt.Errorf("link: encode job status: %w", err)
	}
	return l.publish(ctx, api.JobTopic(l.opts.DeviceID, j.JobID), 1, false, payload)
}
