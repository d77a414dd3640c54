package link

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"

	"edgefleet/fleet/api"
	"edgefleet/fleet/broker"
	"edgefleet/fleet/broker/brokertest"
	"edgefleet/internal/testutil"
)

func fastOptions(url, device, pass string) Options {
	return Options{
		Brokers:        []string{url},
		DeviceID:       device,
		Password:       pass,
		KeepAlive:      5 * time.Second,
		ConnectTimeout: 2 * time.Second,
		BackoffMin:     20 * time.Millisecond,
		BackoffMax:     200 * time.Millisecond,
		PublishTimeout: 2 * time.Second,
		State:          api.State{AgentVersion: "test", Cameras: []string{"cam-a", "cam-b"}},
		Logger:         quiet,
	}
}

var fastSender = SenderOptions{BatchSize: 50, AckTimeout: 500 * time.Millisecond, Poll: 10 * time.Millisecond}

// deliver produces events before, during and after an outage and checks the
// receiver stores each exactly once, and in order if ordered.
func deliver(t *testing.T, l *Link, out *MemOutbox, r *receiver, ordered bool, down, up func()) {
	t.Helper()
	n := 0
	produce := func(k int) {
		for range k {
			n++
			if seq := out.Add(testEvent(uint64(n))); seq != uint64(n) {
				t.Fatalf("outbox gave seq %d, want %d", seq, n)
			}
			if n%10 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}
	testutil.Eventually(t, "link connected", l.Connected)
	produce(500)
	testutil.Eventually(t, "first events stored", func() bool { return r.count() >= 100 })
	failures := counterValue(l.metrics.connectFailures)
	down()
	testutil.Eventually(t, "link to notice the outage", func() bool { return !l.Connected() })
	produce(1000) // all while the broker is unreachable
	waitReconnectFailures(t, l, failures, 2)
	if l.Connected() {
		t.Fatal("link connected during the outage")
	}
	up()
	produce(500)
	testutil.Eventually(t, "all events stored", func() bool { return r.count() >= n })
	testutil.Eventually(t, "outbox emptied by acks", func() bool { return out.Len() == 0 })
	r.check(t, n, ordered)
}

// TestDeliveryAcrossBrokerRestart is issue 4 point 1 with the embedded
// broker: it is closed for a while (losing every session and subscription)
// and a new one takes its port.
func TestDeliveryAcrossBrokerRestart(t *testing.T) {
	// With a window of several batches, a batch the receiver missed (it
	// resubscribes after the device reconnects) is resent after later ones
	// arrived: exactly once, but not in order. The default window of 1 keeps
	// the order.
	for _, window := range []int{1, 4} {
		t.Run(fmt.Sprintf("window=%d", window), func(t *testing.T) {
			b1 := startBroker(t, "127.0.0.1:0")
			addr := b1.Addr()
			r := newReceiver(devID)
			r.attachPaho(t, "tcp://"+addr, svcUser, svcPass)
			out := NewMemOutbox()
			so := fastSender
			so.Window = window
			l := runLink(t, fastOptions("tcp://"+addr, devID, devPass), out, so)
			deliver(t, l, out, r, window == 1, func() { b1.Close() }, func() { startBroker(t, addr) })
		})
	}
}

// TestDeliveryInlineReceiver runs the receiver inside the broker, as fleetd
// does with the embedded broker, and cuts the device's connection.
func TestDeliveryInlineReceiver(t *testing.T) {
	b := startBroker(t, "127.0.0.1:0")
	r := newReceiver(devID)
	r.attachInline(t, b)
	p := startProxy(t, b.Addr())
	out := NewMemOutbox()
	l := runLink(t, fastOptions("tcp://"+p.addr(), devID, devPass), out, fastSender)
	deliver(t, l, out, r, true, func() { p.setDown(true) }, func() { p.setDown(false) })
}

// TestInteropMosquitto runs the same delivery test against a real mosquitto
// (started by .ci/run), with the outage made by a proxy in front of it.
func TestInteropMosquitto(t *testing.T) {
	addr := os.Getenv("EDGEFLEET_MOSQUITTO")
	if addr == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("EDGEFLEET_MOSQUITTO is not set under CI; .ci/run starts mosquitto and sets it")
		}
		t.Skip("EDGEFLEET_MOSQUITTO not set (host:port of a mosquitto allowing anonymous clients)")
	}
	device := "interop-" + randomHex(t)
	r := newReceiver(device)
	r.attachPaho(t, "tcp://"+addr, "", "")
	p := startProxy(t, addr)
	out := NewMemOutbox()
	l := runLink(t, fastOptions("tcp://"+p.addr(), device, ""), out, fastSender)
	deliver(t, l, out, r, true, func() { p.setDown(true) }, func() { p.setDown(false) })
}

func randomHex(t *testing.T) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// watcher is a service client recording what arrives on one topic.
type watcher struct {
	mu   sync.Mutex
	msgs [][]byte
}

func watch(t *testing.T, addr, topic string) *watcher {
	t.Helper()
	w := &watcher{}
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("watcher-" + randomHex(t)).
		SetUsername(svcUser).SetPassword(svcPass).SetProtocolVersion(4))
	if tok := c.Connect(); !tok.WaitTimeout(patience) || tok.Error() != nil {
		t.Fatalf("watcher connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	tok := c.Subscribe(topic, 1, func(_ paho.Client, m paho.Message) {
		w.mu.Lock()
		w.msgs = append(w.msgs, m.Payload())
		w.mu.Unlock()
	})
	if !tok.WaitTimeout(patience) || tok.Error() != nil {
		t.Fatalf("watcher subscribe: %v", tok.Error())
	}
	return w
}

// states returns the Online flags seen so far, with repeats collapsed: a
// slow machine may make the link reconnect (and say online again) before
// the test looks, which is not a transition.
func (w *watcher) states(t *testing.T) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var s []string
	for _, m := range w.msgs {
		var st api.State
		if err := api.Decode(m, &st); err != nil {
			t.Fatalf("bad state payload %q: %v", m, err)
		}
		if st.DeviceID != devID || st.AgentVersion != "test" {
			t.Fatalf("state %+v", st)
		}
		v := "offline"
		if st.Online {
			v = "online"
		}
		if len(s) == 0 || s[len(s)-1] != v {
			s = append(s, v)
		}
	}
	return strings.Join(s, " ")
}

// lastModel is the Model of the last state seen.
func (w *watcher) lastModel(t *testing.T) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.msgs) == 0 {
		return ""
	}
	var st api.State
	if err := api.Decode(w.msgs[len(w.msgs)-1], &st); err != nil {
		t.Fatalf("bad state payload: %v", err)
	}
	return st.Model
}

func TestStateAndLastWill(t *testing.T) {
	b := startBroker(t, "127.0.0.1:0")
	p := startProxy(t, b.Addr())
	w := watch(t, b.Addr(), api.StateTopic(devID))
	l, err := New(fastOptions("tcp://"+p.addr(), devID, devPass))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()

	testutil.Eventually(t, "online state", func() bool { return w.states(t) == "online" })
	p.setDown(true) // the broker sees the connection die: the will says offline
	testutil.Eventually(t, "last will", func() bool { return w.states(t) == "online offline" })
	p.setDown(false)
	testutil.Eventually(t, "online again", func() bool { return w.states(t) == "online offline online" })
	st := api.State{AgentVersion: "test", Model: "yolo11n"}
	if err := l.SetState(ctx, st); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "new state", func() bool { return w.lastModel(t) == "yolo11n" && w.states(t) == "online offline online" })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(patience):
		t.Fatal("Run did not return after cancel")
	}
	testutil.Eventually(t, "offline on shutdown", func() bool { return w.states(t) == "online offline online offline" })

	// The retained state a newcomer sees is the last one: offline.
	w2 := watch(t, b.Addr(), api.StateTopic(devID))
	testutil.Eventually(t, "retained offline", func() bool { return w2.states(t) == "offline" })
}

func metricValue(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label != "" && (len(m.GetLabel()) == 0 || m.GetLabel()[0].GetValue() != label) {
				continue
			}
			if m.Counter != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

// TestIncoming: the fleet's acks and commands are decoded and delivered;
// bad payloads are counted and dropped without hurting the session.
func TestIncoming(t *testing.T) {
	b := startBroker(t, "127.0.0.1:0")
	reg := prometheus.NewRegistry()
	opts := fastOptions("tcp://"+b.Addr(), devID, devPass)
	opts.Registerer = reg
	l, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go l.Run(ctx)
	if _, err := l.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	goodCmd := api.Command{JobID: "job-1", Kind: api.CommandRollback}
	goodAck := api.Ack{DeviceID: devID, Ranges: []api.SeqRange{{From: 1, To: 5}}}
	tests := []struct {
		name    string
		topic   string
		payload any // string: raw bytes
		kind    string
	}{
		{"not json", api.AcksTopic(devID), "{nope", api.KindAcks},
		{"unknown field", api.AcksTopic(devID), `{"device_id":"cam-box-1","ranges":[],"extra":1}`, api.KindAcks},
		{"wrong type", api.AcksTopic(devID), `{"device_id":"cam-box-1","ranges":"all"}`, api.KindAcks},
		{"inverted range", api.AcksTopic(devID), `{"device_id":"cam-box-1","ranges":[{"from":5,"to":1}]}`, api.KindAcks},
		{"ack for another device", api.AcksTopic(devID), api.Ack{DeviceID: otherDev}, api.KindAcks},
		{"trailing data", api.AcksTopic(devID), `{"device_id":"cam-box-1","ranges":[]} {}`, api.KindAcks},
		{"empty", api.CommandsTopic(devID), "", api.KindCommands},
		{"unknown command", api.CommandsTopic(devID), api.Command{JobID: "j", Kind: "format_disk"}, api.KindCommands},
		{"update without artifact", api.CommandsTopic(devID), api.Command{JobID: "j", Kind: api.CommandModelUpdate}, api.KindCommands},
		{"huge", api.CommandsTopic(devID), `"` + strings.Repeat("x", api.MaxPayload) + `"`, api.KindCommands},
	}
	for i, tt := range tests {
		var payload []byte
		if s, ok := tt.payload.(string); ok {
			payload = []byte(s)
		} else {
			payload, _ = json.Marshal(tt.payload)
		}
		if err := b.Publish(tt.topic, payload, false, 1); err != nil {
			t.Fatal(err)
		}
		want := 0
		for _, u := range tests[:i+1] {
			if u.kind == tt.kind {
				want++
			}
		}
		testutil.Eventually(t, tt.name+" counted", func() bool {
			return metricValue(t, reg, "edgefleet_link_decode_errors_total", tt.kind) == float64(want)
		})
	}
	for _, m := range []struct {
		topic string
		v     any
	}{{api.CommandsTopic(devID), goodCmd}, {api.AcksTopic(devID), goodAck}} {
		payload, _ := json.Marshal(m.v)
		if err := b.Publish(m.topic, payload, false, 1); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case c := <-l.Commands():
		if c.JobID != goodCmd.JobID || c.Kind != goodCmd.Kind {
			t.Errorf("command %+v, want %+v", c, goodCmd)
		}
	case <-time.After(patience):
		t.Fatal("no command delivered")
	}
	select {
	case a := <-l.Acks():
		if a.DeviceID != devID || len(a.Ranges) != 1 || a.Ranges[0] != goodAck.Ranges[0] {
			t.Errorf("ack %+v, want %+v", a, goodAck)
		}
	case <-time.After(patience):
		t.Fatal("no ack delivered")
	}
	if !l.Connected() || metricValue(t, reg, "edgefleet_link_connects_total", "") != 1 {
		t.Error("bad payloads cost the session")
	}

	checkOutgoing(ctx, t, b, l)
}

// checkOutgoing: telemetry and job reports reach the fleet.
func checkOutgoing(ctx context.Context, t *testing.T, b *broker.Broker, l *Link) {
	t.Helper()
	got := make(chan broker.Message, 2)
	if _, err := b.Subscribe(api.Prefix+"/"+devID+"/#", func(m broker.Message) { got <- m }); err != nil {
		t.Fatal(err)
	}
	if err := l.PublishTelemetry(ctx, &api.Telemetry{DeviceID: devID, UptimeS: 3}); err != nil {
		t.Fatal(err)
	}
	if err := l.PublishJob(ctx, &api.JobStatus{DeviceID: devID, JobID: "job-1", State: api.JobSucceeded}); err != nil {
		t.Fatal(err)
	}
	if err := l.PublishJob(ctx, &api.JobStatus{DeviceID: devID, JobID: "bad/id", State: api.JobSucceeded}); err == nil {
		t.Error("PublishJob accepted a job id with a slash")
	}
	var topics []string
	for range 2 {
		select {
		case m := <-got:
			if m.Topic == api.StateTopic(devID) {
				continue // retained, replayed on subscribe
			}
			topics = append(topics, m.Topic)
		case <-time.After(patience):
			t.Fatalf("only %v arrived", topics)
		}
	}
	for len(topics) < 2 {
		select {
		case m := <-got:
			topics = append(topics, m.Topic)
		case <-time.After(patience):
			t.Fatalf("only %v arrived", topics)
		}
	}
	if strings.Join(topics, " ") != api.TelemetryTopic(devID)+" "+api.JobTopic(devID, "job-1") {
		t.Errorf("fleet got %v", topics)
	}
}

func TestConnectFailures(t *testing.T) {
	b := startBroker(t, "127.0.0.1:0")
	dead := startBroker(t, "127.0.0.1:0")
	deadAddr := dead.Addr()
	dead.Close()
	tests := []struct {
		name string
		opts Options
	}{
		{"wrong password", fastOptions("tcp://"+b.Addr(), devID, "wrong")},
		{"other device's id", fastOptions("tcp://"+b.Addr(), otherDev, devPass)},
		{"nothing listening", fastOptions("tcp://"+deadAddr, devID, devPass)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			tt.opts.Registerer = reg
			tt.opts.BackoffMin, tt.opts.BackoffMax = 10*time.Millisecond, 40*time.Millisecond
			l, err := New(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- l.Run(ctx) }()
			testutil.Eventually(t, "3 failed attempts", func() bool {
				return metricValue(t, reg, "edgefleet_link_connect_failures_total", "") >= 3
			})
			if l.Connected() {
				t.Error("connected")
			}
			if err := l.PublishTelemetry(ctx, &api.Telemetry{DeviceID: devID}); err != ErrNotConnected {
				t.Errorf("publish while down: %v, want ErrNotConnected", err)
			}
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("Run: %v", err)
				}
			case <-time.After(patience):
				t.Fatal("Run did not return after cancel")
			}
		})
	}
}

func TestTLS(t *testing.T) {
	certs := brokertest.NewCerts(t)
	srvTLS, err := broker.LoadTLS(certs.ServerCert, certs.ServerKey, certs.CA)
	if err != nil {
		t.Fatal(err)
	}
	b := brokertest.Start(t, broker.Options{TLSAddr: "127.0.0.1:0", TLS: srvTLS, Auth: testAuth(t), Logger: quiet})
	opts := fastOptions("ssl://"+b.TLSAddr(), devID, devPass)
	opts.CAFile, opts.CertFile, opts.KeyFile = certs.CA, certs.ClientCert, certs.ClientKey
	r := newReceiver(devID)
	r.attachInline(t, b)
	out := NewMemOutbox()
	l := runLink(t, opts, out, fastSender)
	testutil.Eventually(t, "TLS session", l.Connected)
	for i := range 10 {
		out.Add(testEvent(uint64(i + 1)))
	}
	testutil.Eventually(t, "delivery over TLS", func() bool { return r.count() == 10 && out.Len() == 0 })
	r.check(t, 10, true)
}

func TestNewErrors(t *testing.T) {
	certs := brokertest.NewCerts(t)
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"no broker", Options{DeviceID: "d"}, "no broker URL"},
		{"bad device id", Options{Brokers: []string{"tcp://h:1"}, DeviceID: "a/b"}, "device id"},
		{"no scheme", Options{Brokers: []string{"h:1"}, DeviceID: "d"}, "want scheme://host:port"},
		{"bad scheme", Options{Brokers: []string{"http://h:1"}, DeviceID: "d"}, "unsupported scheme"},
		{"one bad of two", Options{Brokers: []string{"ws://h:1/mqtt", "udp://h:1"}, DeviceID: "d"}, "unsupported scheme"},
		{"missing CA file", Options{Brokers: []string{"ssl://h:1"}, DeviceID: "d", CAFile: "/nonexistent"}, "tls ca"},
		{"CA file without PEM", Options{Brokers: []string{"ssl://h:1"}, DeviceID: "d", CAFile: certs.ClientKey}, "no PEM certificates"},
		{"cert without key", Options{Brokers: []string{"ssl://h:1"}, DeviceID: "d", CertFile: certs.ClientCert}, "both cert_file and key_file"},
		{"mismatched key", Options{Brokers: []string{"ssl://h:1"}, DeviceID: "d", CertFile: certs.ClientCert, KeyFile: certs.ServerKey}, "client certificate"},
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
