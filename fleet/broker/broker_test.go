package broker

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"

	"edgefleet/fleet/api"
	"edgefleet/internal/testutil"
)

const wait = 5 * time.Second

// startBroker runs a broker on 127.0.0.1:0 with devices dev1, dev2 and the
// service user svc.
func startBroker(t *testing.T, mod func(*Options)) (*Broker, *prometheus.Registry) {
	t.Helper()
	auth := NewStaticAuth()
	for id, pw := range map[string]string{"dev1": "pw1", "dev2": "pw2"} {
		if err := auth.SetDevice(id, pw); err != nil {
			t.Fatal(err)
		}
	}
	if err := auth.SetService("svc", "svcpw"); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	opts := Options{Addr: "127.0.0.1:0", Auth: auth, Registerer: reg, Logger: slog.New(slog.DiscardHandler)}
	if mod != nil {
		mod(&opts)
	}
	b, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return b, reg
}

type client struct {
	paho.Client
	lost chan error
	mu   sync.Mutex
	msgs []paho.Message
}

func (c *client) received() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, m := range c.msgs {
		out = append(out, m.Topic()+"="+string(m.Payload()))
	}
	return out
}

// waitFor waits until cond holds, at most wait.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, what, wait, cond)
}

func dial(addr, clientID, user, pass string, mod func(*paho.ClientOptions)) (*client, error) {
	c := &client{lost: make(chan error, 1)}
	o := paho.NewClientOptions().AddBroker("tcp://" + addr).
		SetClientID(clientID).SetUsername(user).SetPassword(pass).
		SetAutoReconnect(false).SetConnectTimeout(wait).SetProtocolVersion(4).
		SetConnectionLostHandler(func(_ paho.Client, err error) { c.lost <- err }).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
			c.mu.Lock()
			c.msgs = append(c.msgs, m)
			c.mu.Unlock()
		})
	if mod != nil {
		mod(o)
	}
	c.Client = paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(wait) {
		return nil, errors.New("connect timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	return c, nil
}

func mustDial(t *testing.T, b *Broker, clientID, user, pass string) *client {
	t.Helper()
	c, err := dial(b.Addr(), clientID, user, pass, nil)
	if err != nil {
		t.Fatalf("connect %s: %v", clientID, err)
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

func subscribe(t *testing.T, c *client, filter string) byte {
	t.Helper()
	tok := c.Subscribe(filter, 1, nil)
	if !tok.WaitTimeout(wait) {
		t.Fatalf("subscribe %s timed out", filter)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("subscribe %s: %v", filter, err)
	}
	// paho keys the result by the filter without any $share/<group>/ prefix.
	for _, code := range tok.(*paho.SubscribeToken).Result() {
		return code
	}
	t.Fatalf("subscribe %s: no result", filter)
	return 0
}

func publish(t *testing.T, c *client, topic string, qos byte, payload string) {
	t.Helper()
	tok := c.Publish(topic, qos, false, payload)
	if !tok.WaitTimeout(wait) {
		t.Fatalf("publish %s timed out", topic)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("publish %s: %v", topic, err)
	}
}

func TestLogin(t *testing.T) {
	b, reg := startBroker(t, nil)
	_ = reg
	tests := []struct {
		name, clientID, user, pass string
		will                       string // will topic, if any
		ok                         bool
		reason                     string // metric label counted on refusal
	}{
		{"device", "dev1", "dev1", "pw1", "", true, ""},
		{"device with own will", "dev2", "dev2", "pw2", api.StateTopic("dev2"), true, ""},
		{"service", "fleetd-ingest", "svc", "svcpw", "", true, ""},
		{"wrong password", "dev1", "dev1", "pw2", "", false, "credentials"},
		{"unknown user", "dev9", "dev9", "pw1", "", false, "credentials"},
		{"no credentials", "dev1", "", "", "", false, "credentials"},
		{"other device's password", "dev2", "dev2", "pw1", "", false, "credentials"},
		{"client id not the device id", "dev2", "dev1", "pw1", "", false, "client_id"},
		{"will on another device's state", "dev1", "dev1", "pw1", api.StateTopic("dev2"), false, "will"},
		{"will on own acks", "dev1", "dev1", "pw1", api.AcksTopic("dev1"), false, "will"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := refusals(reg, tt.reason)
			c, err := dial(b.Addr(), tt.clientID, tt.user, tt.pass, func(o *paho.ClientOptions) {
				if tt.will != "" {
					o.SetWill(tt.will, `{"device_id":"x","online":false,"time_ms":0}`, 1, true)
				}
			})
			if tt.ok {
				if err != nil {
					t.Fatalf("connect refused: %v", err)
				}
				c.Disconnect(0)
				return
			}
			if err == nil {
				c.Disconnect(0)
				t.Fatal("connect accepted, want refused")
			}
			if got := refusals(reg, tt.reason); got != before+1 {
				t.Errorf("refusals{%s} = %v, want %v", tt.reason, got, before+1)
			}
		})
	}
}

func refusals(reg *prometheus.Registry, reason string) float64 {
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == reason && (mf.GetName() == "edgefleet_broker_auth_refused_total" || mf.GetName() == "edgefleet_broker_acl_refused_total") {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestForeignTopicsRefused is issue 5 point 2: a device using another
// device's topics is refused, with real clients over loopback.
func TestForeignTopicsRefused(t *testing.T) {
	b, _ := startBroker(t, nil)
	svc := mustDial(t, b, "fleetd", "svc", "svcpw")
	if code := subscribe(t, svc, api.Prefix+"/#"); code != 1 {
		t.Fatalf("service subscribe to everything: code %#x", code)
	}
	dev1 := mustDial(t, b, "dev1", "dev1", "pw1")
	dev2 := mustDial(t, b, "dev2", "dev2", "pw2")

	// Subscriptions: only its own acks and commands, exactly.
	subs := []struct {
		filter string
		ok     bool
	}{
		{api.AcksTopic("dev1"), true},
		{api.CommandsTopic("dev1"), true},
		{api.AcksTopic("dev2"), false},
		{api.CommandsTopic("dev2"), false},
		{api.DetectionsTopic("dev2"), false},
		{api.DetectionsTopic("dev1"), false},
		{api.Prefix + "/#", false},
		{api.Prefix + "/+/acks", false},
		{api.Prefix + "/dev1/+", false},
		{"#", false},
		{"$share/g/" + api.AcksTopic("dev1"), false},
	}
	for _, s := range subs {
		code := subscribe(t, dev1, s.filter)
		if got := code < 0x80; got != s.ok {
			t.Errorf("dev1 subscribe %s: code %#x, want allowed=%v", s.filter, code, s.ok)
		}
	}

	// QoS 0 publishes to foreign topics are dropped; the marker on dev1's own
	// topic, sent after them on the same connection, proves they would have
	// arrived by now.
	foreign := []string{
		api.DetectionsTopic("dev2"), api.StateTopic("dev2"), api.TelemetryTopic("dev2"),
		api.JobTopic("dev2", "j1"), api.AcksTopic("dev1"), api.CommandsTopic("dev1"),
		api.AcksTopic("dev2"), api.Prefix + "/dev1/other", "elsewhere/dev1",
	}
	for _, topic := range foreign {
		publish(t, dev1, topic, 0, "spoof")
	}
	own := []string{api.StateTopic("dev1"), api.TelemetryTopic("dev1"), api.DetectionsTopic("dev1"), api.JobTopic("dev1", "j1")}
	for _, topic := range own {
		publish(t, dev1, topic, 1, "ok")
	}
	waitFor(t, "service to see dev1's own messages", func() bool { return len(svc.received()) >= len(own) })
	var want []string
	for _, topic := range own {
		want = append(want, topic+"=ok")
	}
	if got := svc.received(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("service received %q, want %q", got, want)
	}

	// Service publishes to both devices' acks: each sees only its own.
	publish(t, svc, api.AcksTopic("dev2"), 1, "for-dev2")
	publish(t, svc, api.AcksTopic("dev1"), 1, "for-dev1")
	if code := subscribe(t, dev2, api.AcksTopic("dev2")); code >= 0x80 {
		t.Fatalf("dev2 subscribe own acks: %#x", code)
	}
	publish(t, svc, api.AcksTopic("dev2"), 1, "for-dev2-again")
	// Markers last: anything misrouted before them has arrived with them.
	publish(t, svc, api.AcksTopic("dev1"), 1, "marker")
	publish(t, svc, api.AcksTopic("dev2"), 1, "marker")
	waitFor(t, "markers", func() bool {
		return strings.HasSuffix(strings.Join(dev1.received(), " "), "=marker") && strings.HasSuffix(strings.Join(dev2.received(), " "), "=marker")
	})
	if got, want := dev1.received(), []string{api.AcksTopic("dev1") + "=for-dev1", api.AcksTopic("dev1") + "=marker"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("dev1 received %q, want %q", got, want)
	}
	if got, want := dev2.received(), []string{api.AcksTopic("dev2") + "=for-dev2-again", api.AcksTopic("dev2") + "=marker"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("dev2 received %q, want %q", got, want)
	}

	// A QoS 1 publish to a foreign topic costs an MQTT 3.1.1 client its connection.
	dev1.Publish(api.DetectionsTopic("dev2"), 1, false, "spoof")
	select {
	case <-dev1.lost:
	case <-time.After(wait):
		t.Fatal("dev1 still connected after a QoS 1 publish to dev2's topic")
	}
	publish(t, svc, api.TelemetryTopic("dev2"), 1, "marker")
	waitFor(t, "marker", func() bool { return strings.HasSuffix(strings.Join(svc.received(), " "), "=marker") })
	for _, m := range svc.received() {
		if strings.HasSuffix(m, "=spoof") {
			t.Errorf("service received a spoofed message: %s", m)
		}
	}
}

func TestInline(t *testing.T) {
	b, _ := startBroker(t, nil)
	got := make(chan Message, 10)
	cancel, err := b.Subscribe(api.Filter(api.KindDetections), func(m Message) { got <- m })
	if err != nil {
		t.Fatal(err)
	}
	dev1 := mustDial(t, b, "dev1", "dev1", "pw1")
	publish(t, dev1, api.DetectionsTopic("dev1"), 1, "batch")
	select {
	case m := <-got:
		if m.Topic != api.DetectionsTopic("dev1") || string(m.Payload) != "batch" || m.ClientID != "dev1" {
			t.Errorf("inline subscriber got %+v", m)
		}
	case <-time.After(wait):
		t.Fatal("inline subscriber got nothing")
	}
	cancel()
	cancel()
	publish(t, dev1, api.DetectionsTopic("dev1"), 1, "after-cancel")

	// Publish from fleetd reaches the device, bypassing the ACL.
	subscribe(t, dev1, api.AcksTopic("dev1"))
	if err := b.Publish(api.AcksTopic("dev1"), []byte("ack"), false, 1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "ack from fleetd", func() bool { return len(dev1.received()) == 1 })
	select {
	case m := <-got:
		t.Errorf("cancelled subscription still delivered %+v", m)
	default:
	}

	// Retained state is replayed to new inline subscribers.
	publishRetained(t, dev1, api.StateTopic("dev1"), `{"online":true}`)
	states := make(chan Message, 1)
	if _, err := b.Subscribe(api.Filter(api.KindState), func(m Message) { states <- m }); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-states:
		if !m.Retain || string(m.Payload) != `{"online":true}` {
			t.Errorf("retained state: %+v", m)
		}
	case <-time.After(wait):
		t.Fatal("no retained state")
	}

	if !b.Disconnect("dev1") {
		t.Error("Disconnect(dev1) = false")
	}
	select {
	case <-dev1.lost:
	case <-time.After(wait):
		t.Fatal("dev1 not disconnected")
	}
	if b.Disconnect("nobody") {
		t.Error("Disconnect(nobody) = true")
	}
}

func publishRetained(t *testing.T, c *client, topic, payload string) {
	t.Helper()
	tok := c.Publish(topic, 1, true, payload)
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("publish retained %s: %v", topic, tok.Error())
	}
}

func TestMaxPacketSize(t *testing.T) {
	b, reg := startBroker(t, func(o *Options) { o.MaxPacketSize = 4096 })
	got := make(chan Message, 10)
	if _, err := b.Subscribe(api.Filter(api.KindTelemetry), func(m Message) { got <- m }); err != nil {
		t.Fatal(err)
	}
	dev1 := mustDial(t, b, "dev1", "dev1", "pw1")
	dev2 := mustDial(t, b, "dev2", "dev2", "pw2")
	publish(t, dev1, api.TelemetryTopic("dev1"), 1, "small")
	dev1.Publish(api.TelemetryTopic("dev1"), 1, false, bytes.Repeat([]byte("x"), 8192))
	select {
	case <-dev1.lost:
	case <-time.After(wait):
		t.Fatal("oversized packet did not cost the connection")
	}
	waitFor(t, "too-large counter", func() bool {
		return gauge(t, reg, "edgefleet_broker_packets_too_large_total") == 1
	})
	// Other devices are not disturbed.
	publish(t, dev2, api.TelemetryTopic("dev2"), 1, "still-here")
	var topics []string
	for len(topics) < 2 {
		select {
		case m := <-got:
			topics = append(topics, string(m.Payload))
		case <-time.After(wait):
			t.Fatalf("fleet got only %q", topics)
		}
	}
	if strings.Join(topics, " ") != "small still-here" {
		t.Errorf("fleet got %q, want the small message and dev2's", topics)
	}
	if got := gauge(t, reg, "edgefleet_broker_messages_received_total"); got < 1 {
		t.Errorf("messages received = %v, want >= 1", got)
	}
}

func TestMetricsClientsConnected(t *testing.T) {
	b, reg := startBroker(t, nil)
	if got := gauge(t, reg, "edgefleet_broker_clients_connected"); got != 0 {
		t.Fatalf("clients connected = %v before any client", got)
	}
	c := mustDial(t, b, "dev1", "dev1", "pw1")
	waitFor(t, "clients_connected 1", func() bool { return gauge(t, reg, "edgefleet_broker_clients_connected") == 1 })
	c.Disconnect(0)
	waitFor(t, "clients_connected 0", func() bool { return gauge(t, reg, "edgefleet_broker_clients_connected") == 0 })
	for _, name := range []string{"edgefleet_broker_messages_received_total", "edgefleet_broker_messages_sent_total",
		"edgefleet_broker_auth_refused_total", "edgefleet_broker_acl_refused_total", "edgefleet_broker_packets_too_large_total"} {
		gauge(t, reg, name)
	}
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if m.Gauge != nil {
				return m.GetGauge().GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

func TestNewErrors(t *testing.T) {
	auth := NewStaticAuth()
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"no auth", Options{Addr: "127.0.0.1:0"}, "Auth is required"},
		{"no listener", Options{Auth: auth}, "set Options.Addr"},
		{"tls without config", Options{Auth: auth, TLSAddr: "127.0.0.1:0"}, "needs Options.TLS"},
		{"bad address", Options{Auth: auth, Addr: "127.0.0.1:99999"}, "listen 127.0.0.1:99999"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want error containing %q", err, tt.want)
			}
		})
	}
}

func TestCloseTwiceAndRunAfterClose(t *testing.T) {
	b, err := New(Options{Addr: "127.0.0.1:0", Auth: NewStaticAuth()})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := b.Run(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Run after Close: %v, want ErrClosed", err)
	}
	if err := b.Publish("a", nil, false, 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("Publish after Close: %v, want ErrClosed", err)
	}
}

// TestWillOnAbruptClose: a device's own will is published when its
// connection dies; a will on another device's topic is refused at CONNECT.
func TestWillOnAbruptClose(t *testing.T) {
	b, _ := startBroker(t, nil)
	svc := mustDial(t, b, "fleetd", "svc", "svcpw")
	subscribe(t, svc, api.Prefix+"/#")
	if rc, err := rawConnectWithWill(b.Addr(), "dev2", "dev2", "pw2", api.StateTopic("dev2"), "own-will"); err != nil || rc != 0 {
		t.Fatalf("CONNECT with own will: code %d, %v", rc, err)
	}
	waitFor(t, "own will", func() bool { return strings.Contains(strings.Join(svc.received(), " "), "own-will") })
	rc, err := rawConnectWithWill(b.Addr(), "dev2", "dev2", "pw2", api.StateTopic("dev1"), "spoofed-will")
	if err != nil {
		t.Fatal(err)
	}
	if rc == 0 {
		t.Fatal("CONNECT with a will on dev1's state accepted")
	}
	publish(t, svc, api.TelemetryTopic("dev2"), 1, "marker")
	waitFor(t, "marker", func() bool { return strings.Contains(strings.Join(svc.received(), " "), "marker") })
	if strings.Contains(strings.Join(svc.received(), " "), "spoofed-will") {
		t.Error("foreign will published")
	}
}
