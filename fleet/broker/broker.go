// Package broker is fleetd's embedded MQTT broker: github.com/mochi-mqtt/server/v2
// with device authentication, per-device topic ACLs, a packet size limit and
// Prometheus metrics.
//
// Devices log in either with a client certificate from the fleet CA on the
// TLS listener (Options.Devices: the certificate's subject is the device,
// and a username that differs is refused), or with username = device id
// and their password or token, which an Authenticator checks (StaticAuth in
// memory; fleetd's device list in production). A device may use only its own subtree of topics (see Allow).
// Service users (fleetd tools, or fleetd replicas when the broker is shared)
// may use every topic.
//
// fleetd itself talks to the embedded broker in process, through Publish and
// Subscribe (mochi's inline client): no loopback TCP hop, no second encode,
// and no credential to configure. The same broker also accepts service
// clients over TCP/TLS, which is how fleetd talks to an external broker
// (mosquitto, EMQX) and how tests act as a service.
package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"

	"edgefleet/fleet/api"
)

// DefaultMaxPacketSize is the packet size limit when Options.MaxPacketSize
// is zero: the largest api payload plus room for the topic and headers.
const DefaultMaxPacketSize = api.MaxPayload + 64<<10

// DefaultAuthTimeout bounds one Authenticator call when Options.AuthTimeout is zero.
const DefaultAuthTimeout = 5 * time.Second

// ErrClosed is returned by Run and Publish after Close.
var ErrClosed = errors.New("broker: closed")

// Options configures a Broker. The zero value is not usable: Auth and at
// least one of Addr and TLSAddr are required.
type Options struct {
	// Addr is the plain TCP listen address, e.g. ":1883"; "127.0.0.1:0" picks a
	// free port (see Broker.Addr). Empty means no plain listener.
	Addr string
	// TLSAddr is the TLS listen address, e.g. ":8883". Empty means no TLS
	// listener; when set, TLS is required (LoadTLS builds one from files).
	TLSAddr string
	TLS     *tls.Config
	// Devices, if set, identifies devices by the client certificate of a
	// TLS connection (pki.Verifier, with pki.ServerConfig on TLS): such a
	// device logs in without a password, and a username other than the
	// certificate's device id is refused. Clients without a certificate
	// log in through Auth.
	Devices CertVerifier
	// Auth checks every connecting client. Required.
	Auth Authenticator
	// MaxPacketSize is the largest MQTT packet accepted, in bytes; a client
	// sending a bigger one is disconnected and counted. Zero means
	// DefaultMaxPacketSize.
	MaxPacketSize uint32
	// AuthTimeout bounds one Auth call. Zero means DefaultAuthTimeout.
	AuthTimeout time.Duration
	// Registerer receives the broker's metrics (edgefleet_broker_*). Nil
	// means the metrics are not registered anywhere.
	Registerer prometheus.Registerer
	// Logger receives the broker's logs; nil means slog.Default(). The mochi
	// server underneath logs only its errors to it (it logs every dropped
	// connection as a warning).
	Logger *slog.Logger
}

// Message is one publish as seen by an in-process subscriber.
type Message struct {
	Topic    string
	Payload  []byte // shared with other subscribers: read, do not modify
	Retain   bool
	ClientID string // the publishing client's MQTT client id
}

// Broker is an embedded MQTT broker. Its methods are safe for concurrent use.
type Broker struct {
	srv         *mqtt.Server
	log         *slog.Logger
	auth        Authenticator
	devices     CertVerifier
	authTimeout time.Duration
	metrics     *metrics
	tcp, tls    *listeners.TCP
	subID       atomic.Int64

	mu      sync.Mutex
	started bool
	closed  bool
	done    chan struct{}

	// ids maps each authenticated *mqtt.Client to its Identity.
	ids sync.Map
}

// New builds a broker and binds its listeners, so Addr and TLSAddr are known
// when it returns; Run starts serving.
func New(opts Options) (*Broker, error) {
	if opts.Auth == nil {
		return nil, errors.New("broker: new: Options.Auth is required")
	}
	if opts.Addr == "" && opts.TLSAddr == "" {
		return nil, errors.New("broker: new: set Options.Addr or Options.TLSAddr")
	}
	if opts.TLSAddr != "" && opts.TLS == nil {
		return nil, errors.New("broker: new: Options.TLSAddr needs Options.TLS")
	}
	if opts.MaxPacketSize == 0 {
		opts.MaxPacketSize = DefaultMaxPacketSize
	}
	if opts.AuthTimeout <= 0 {
		opts.AuthTimeout = DefaultAuthTimeout
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "broker")

	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = opts.MaxPacketSize
	srv := mqtt.New(&mqtt.Options{
		Capabilities: caps,
		InlineClient: true,
		Logger:       slog.New(minLevel{log.Handler(), slog.LevelError}),
	})
	b := &Broker{
		srv:         srv,
		log:         log,
		auth:        opts.Auth,
		devices:     opts.Devices,
		authTimeout: opts.AuthTimeout,
		done:        make(chan struct{}),
	}
	b.metrics = newMetrics(srv)
	if opts.Registerer != nil {
		if err := b.metrics.register(opts.Registerer); err != nil {
			return nil, fmt.Errorf("broker: new: register metrics: %w", err)
		}
	}
	if err := srv.AddHook(&hook{b: b}, nil); err != nil {
		return nil, fmt.Errorf("broker: new: add hook: %w", err)
	}
	if opts.Addr != "" {
		b.tcp = listeners.NewTCP(listeners.Config{ID: "tcp", Address: opts.Addr})
		if err := srv.AddListener(listener{b.tcp, srv}); err != nil {
			return nil, fmt.Errorf("broker: new: listen %s: %w", opts.Addr, err)
		}
	}
	if opts.TLSAddr != "" {
		b.tls = listeners.NewTCP(listeners.Config{ID: "tls", Address: opts.TLSAddr, TLSConfig: opts.TLS})
		if err := srv.AddListener(listener{b.tls, srv}); err != nil {
			b.closeListeners()
			return nil, fmt.Errorf("broker: new: listen tls %s: %w", opts.TLSAddr, err)
		}
	}
	return b, nil
}

// Addr is the address the plain TCP listener is bound to ("" if none).
func (b *Broker) Addr() string {
	if b.tcp == nil {
		return ""
	}
	return b.tcp.Address()
}

// TLSAddr is the address the TLS listener is bound to ("" if none).
func (b *Broker) TLSAddr() string {
	if b.tls == nil {
		return ""
	}
	return b.tls.Address()
}

// Run serves clients until ctx is done or Close is called, then shuts the
// broker down. It returns nil on such a shutdown and ErrClosed if the broker
// was closed before Run.
func (b *Broker) Run(ctx context.Context) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	if b.started {
		b.mu.Unlock()
		return errors.New("broker: run: already running")
	}
	b.started = true
	b.mu.Unlock()
	if err := b.srv.Serve(); err != nil {
		b.Close()
		return fmt.Errorf("broker: serve: %w", err)
	}
	b.log.Info("broker serving", "addr", b.Addr(), "tls_addr", b.TLSAddr())
	select {
	case <-ctx.Done():
	case <-b.done:
	}
	b.Close()
	return nil
}

// Close disconnects every client and closes the listeners. It is safe to
// call more than once.
func (b *Broker) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	close(b.done)
	if err := b.srv.Close(); err != nil {
		return fmt.Errorf("broker: close: %w", err)
	}
	return nil
}

// listener is mochi's TCP listener with a Close that disconnects the
// listener's clients itself. mochi v2.7.9 passes Close a function that
// lists them with Clients.GetByListener, which takes the clients' read lock
// and, inside it, takes it again (Clients.Len): a client leaving between
// the two (its Clients.Delete queues for the write lock, and a queued
// writer holds back new readers) deadlocks the broker's shutdown for good.
// It happened in CI under load: fleetd's Run never returned.
type listener struct {
	*listeners.TCP
	srv *mqtt.Server
}

// Close closes the listener and disconnects its clients from one snapshot
// of the client list (Clients.GetAll takes the lock once), as mochi's own
// closeListenerClients would.
func (l listener) Close(listeners.CloseFn) {
	l.TCP.Close(func(id string) {
		for _, cl := range l.srv.Clients.GetAll() {
			if cl.Net.Listener == id && !cl.Closed() {
				_ = l.srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
			}
		}
	})
}

func (b *Broker) closeListeners() {
	b.srv.Listeners.CloseAll(func(string) {})
}

func (b *Broker) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// Publish sends a message from fleetd itself, bypassing the ACL. qos caps
// the QoS subscribers receive it with (the in-process hop itself cannot fail).
func (b *Broker) Publish(topic string, payload []byte, retain bool, qos byte) error {
	if b.isClosed() {
		return ErrClosed
	}
	if err := b.srv.Publish(topic, payload, retain, qos); err != nil {
		return fmt.Errorf("broker: publish %s: %w", topic, err)
	}
	return nil
}

// Subscribe calls fn for every message matching filter (MQTT wildcards
// allowed), starting with matching retained messages. fn runs on the
// publishing client's goroutine, concurrently for different clients, and
// after the broker has acknowledged the publish: it must be safe for
// concurrent use and should not block for long, since a slow fn slows that
// client down. The returned function cancels the subscription.
func (b *Broker) Subscribe(filter string, fn func(Message)) (cancel func(), err error) {
	if fn == nil {
		return nil, errors.New("broker: subscribe: nil handler")
	}
	if b.isClosed() {
		return nil, ErrClosed
	}
	id := int(b.subID.Add(1))
	err = b.srv.Subscribe(filter, id, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		fn(Message{Topic: pk.TopicName, Payload: pk.Payload, Retain: pk.FixedHeader.Retain, ClientID: pk.Origin})
	})
	if err != nil {
		return nil, fmt.Errorf("broker: subscribe %s: %w", filter, err)
	}
	var once sync.Once
	return func() { once.Do(func() { _ = b.srv.Unsubscribe(filter, id) }) }, nil
}

// Disconnect closes the session of the client with the given MQTT client id
// (for devices: the device id), e.g. after its credentials were revoked.
// It reports whether such a client was connected.
func (b *Broker) Disconnect(clientID string) bool {
	cl, ok := b.srv.Clients.Get(clientID)
	if !ok || cl.Net.Inline || cl.Closed() {
		return false
	}
	_ = b.srv.DisconnectClient(cl, packets.ErrNotAuthorized)
	return true
}

// minLevel drops records below level.
type minLevel struct {
	slog.Handler
	level slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.level && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(a []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(a), h.level}
}

func (h minLevel) WithGroup(n string) slog.Handler {
	return minLevel{h.Handler.WithGroup(n), h.level}
}
