package link

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"edgefleet/fleet/api"
	"edgefleet/fleet/broker"
	"edgefleet/fleet/broker/brokertest"
	"edgefleet/internal/testutil"
)

const patience = 20 * time.Second

// quiet drops logs; tests check behaviour through results and metrics.
var quiet = slog.New(slog.DiscardHandler)

// Credentials used with the embedded broker.
const (
	devID    = "cam-box-1"
	devPass  = "dev-secret"
	svcUser  = "fleetd"
	svcPass  = "svc-secret"
	otherDev = "cam-box-2"
)

func testAuth(t testing.TB) *broker.StaticAuth {
	t.Helper()
	a := broker.NewStaticAuth()
	for _, err := range []error{a.SetDevice(devID, devPass), a.SetDevice(otherDev, "x"), a.SetService(svcUser, svcPass)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return a
}

// startBroker runs the embedded broker on addr ("127.0.0.1:0" for any port).
func startBroker(t testing.TB, addr string) *broker.Broker {
	t.Helper()
	return brokertest.Start(t, broker.Options{Addr: addr, Auth: testAuth(t), Logger: quiet})
}

// receiver is the stand-in for fleetd's ingest: it stores each event once
// (deduplicating by seq), then acknowledges the batch.
type receiver struct {
	device string

	mu         sync.Mutex
	stored     map[uint64]api.Event
	order      []uint64 // seqs in the order they were stored
	dups       int
	badBatches int
	batches    int
	maxPayload int
}

func newReceiver(device string) *receiver {
	return &receiver{device: device, stored: make(map[uint64]api.Event)}
}

// handle stores a batch and returns the Ack to send back, or nil.
func (r *receiver) handle(payload []byte) []byte {
	var b api.DetectionBatch
	if err := api.Decode(payload, &b); err != nil || b.DeviceID != r.device {
		r.mu.Lock()
		r.badBatches++
		r.mu.Unlock()
		return nil
	}
	ack := api.Ack{DeviceID: b.DeviceID}
	r.mu.Lock()
	r.batches++
	r.maxPayload = max(r.maxPayload, len(payload))
	for _, e := range b.Events {
		if _, ok := r.stored[e.Seq]; ok {
			r.dups++
		} else {
			r.stored[e.Seq] = e
			r.order = append(r.order, e.Seq)
		}
		if n := len(ack.Ranges); n > 0 && ack.Ranges[n-1].To+1 == e.Seq {
			ack.Ranges[n-1].To = e.Seq
		} else {
			ack.Ranges = append(ack.Ranges, api.SeqRange{From: e.Seq, To: e.Seq})
		}
	}
	r.mu.Unlock()
	out, _ := json.Marshal(ack)
	return out
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.order)
}

// check verifies that seqs 1..n are stored exactly once each, and in
// order if ordered.
func (r *receiver) check(t *testing.T, n int, ordered bool) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.order) != n {
		t.Fatalf("receiver stored %d events, want %d", len(r.order), n)
	}
	order := r.order
	if !ordered {
		order = slices.Sorted(slices.Values(order))
	}
	for i, seq := range order {
		if seq != uint64(i+1) {
			t.Fatalf("store[%d] = seq %d, want %d (out of order or missing)", i, seq, i+1)
		}
		if e := r.stored[seq]; e.CameraID != cameraFor(seq) || e.Label != "person" {
			t.Fatalf("seq %d stored as %+v", seq, e)
		}
	}
	if r.badBatches > 0 {
		t.Errorf("receiver got %d bad batches", r.badBatches)
	}
	t.Logf("receiver: %d events stored once each (in order: %v); %d duplicate deliveries dropped", len(r.order), ordered, r.dups)
}

func cameraFor(seq uint64) string {
	if seq%2 == 0 {
		return "cam-a"
	}
	return "cam-b"
}

func testEvent(seq uint64) api.Event {
	return api.Event{CameraID: cameraFor(seq), Time: time.Now().UnixMicro(), Model: "yolov8n", ClassID: 0, Label: "person", Score: 0.9, Box: [4]float32{1, 2, 3, 4}}
}

// attachPaho runs the receiver as an MQTT service client at url, which
// reconnects and resubscribes on its own.
func (r *receiver) attachPaho(t testing.TB, url, user, pass string) {
	t.Helper()
	var handler paho.MessageHandler = func(c paho.Client, m paho.Message) {
		if ack := r.handle(m.Payload()); ack != nil {
			c.Publish(api.AcksTopic(r.device), 1, false, ack) // not waited for: this is paho's delivery goroutine
		}
	}
	o := paho.NewClientOptions().AddBroker(url).SetClientID("receiver-" + r.device).
		SetUsername(user).SetPassword(pass).SetProtocolVersion(4).
		SetAutoReconnect(true).SetConnectRetry(true).
		SetConnectRetryInterval(50 * time.Millisecond).SetMaxReconnectInterval(100 * time.Millisecond).
		SetOnConnectHandler(func(c paho.Client) {
			c.Subscribe(api.DetectionsTopic(r.device), 1, handler)
		})
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(patience) || tok.Error() != nil {
		t.Fatalf("receiver connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
}

// attachInline runs the receiver inside the embedded broker, as fleetd does.
func (r *receiver) attachInline(t testing.TB, b *broker.Broker) {
	t.Helper()
	cancel, err := b.Subscribe(api.DetectionsTopic(r.device), func(m broker.Message) {
		if ack := r.handle(m.Payload); ack != nil {
			_ = b.Publish(api.AcksTopic(r.device), ack, false, 1)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cancel)
}

// proxy forwards loopback TCP to target and can cut every connection and
// refuse new ones for a while, to simulate a broker outage.
type proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]bool
}

func startProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, conns: make(map[net.Conn]bool)}
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.setDown(true)
	})
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		if !down {
			p.conns[c] = true
		}
		p.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		go p.pipe(c)
	}
}

func (p *proxy) pipe(c net.Conn) {
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.down {
		p.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	p.conns[up] = true
	p.mu.Unlock()
	go func() { _, _ = io.Copy(up, c); up.Close(); c.Close() }()
	_, _ = io.Copy(c, up)
	up.Close()
	c.Close()
}

// setDown cuts all connections and refuses new ones (true), or lets them
// through again (false).
func (p *proxy) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for c := range p.conns {
			c.Close()
			delete(p.conns, c)
		}
	}
}

// runLink starts a Link and a Sender over out until the test ends.
func runLink(t testing.TB, opts Options, out Outbox, sopts SenderOptions) *Link {
	t.Helper()
	l, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); check(t, "link run", l.Run(ctx)) }()
	go func() { defer wg.Done(); check(t, "sender run", NewSender(l, out, sopts).Run(ctx)) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return l
}

func check(t testing.TB, what string, err error) {
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("%s: %v", what, err)
	}
}

// counterValue reads a counter of the link's own metrics.
func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return 0
	}
	return m.GetCounter().GetValue()
}

// waitReconnectFailures waits until the link has failed to connect n more
// times than before: the outage has been tried, not only waited out.
func waitReconnectFailures(t testing.TB, l *Link, before float64, n int) {
	t.Helper()
	testutil.Eventually(t, fmt.Sprintf("%d failed reconnects", n), func() bool {
		return counterValue(l.metrics.connectFailures) >= before+float64(n)
	})
}
