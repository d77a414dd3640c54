package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"

	"edgefleet/fleet/api"
	"edgefleet/fleet/broker"
	"edgefleet/fleet/broker/brokertest"
	"edgefleet/fleet/registry"
	"edgefleet/fleet/store"
	"edgefleet/internal/testutil"
)

// fakeConn records publishes.
type fakeConn struct {
	mu  sync.Mutex
	pub map[string][][]byte
}

func (f *fakeConn) Subscribe(ctx context.Context, filter string, h func(string, []byte)) error {
	return nil
}

func (f *fakeConn) Publish(ctx context.Context, topic string, retain bool, payload []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pub == nil {
		f.pub = map[string][][]byte{}
	}
	f.pub[topic] = append(f.pub[topic], payload)
	return nil
}

func newIngest(t testing.TB, conn Conn) (*Ingest, store.Store, *registry.Registry) {
	t.Helper()
	st := store.NewMem(store.Retention{})
	reg, err := registry.Open(filepath.Join(t.TempDir(), "reg.db"), registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	in, err := New(conn, Options{Store: st, Devices: reg, Registerer: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if _, fake := conn.(*fakeConn); fake { // run the ack workers
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- in.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	return in, st, reg
}

func batch(dev string, seqs ...uint64) []byte {
	b := api.DetectionBatch{DeviceID: dev}
	for _, s := range seqs {
		b.Events = append(b.Events, api.Event{Seq: s, CameraID: "cam0", Time: time.Now().UnixMicro(), Label: "person", Score: 0.9})
	}
	p, _ := json.Marshal(&b)
	return p
}

func TestMalformed(t *testing.T) {
	huge := `{"device_id":"d1","events":[],"pad":"` + strings.Repeat("x", api.MaxPayload) + `"}`
	tests := []struct {
		name, topic, payload, reason string
	}{
		{"bad json", api.DetectionsTopic("d1"), `{"device_id":`, ReasonBadJSON},
		{"not json", api.TelemetryTopic("d1"), `hello`, ReasonBadJSON},
		{"trailing data", api.StateTopic("d1"), `{"device_id":"d1"} {}`, ReasonBadJSON},
		{"huge", api.DetectionsTopic("d1"), huge, ReasonTooLarge},
		{"wrong type", api.DetectionsTopic("d1"), `{"device_id":"d1","events":[{"seq":"one","camera_id":"c"}]}`, ReasonWrongType},
		{"wrong type telemetry", api.TelemetryTopic("d1"), `{"device_id":"d1","spool_depth":-1}`, ReasonWrongType},
		{"unknown field", api.StateTopic("d1"), `{"device_id":"d1","evil":1}`, ReasonUnknownField},
		{"invalid seq order", api.DetectionsTopic("d1"), `{"device_id":"d1","events":[{"seq":2,"camera_id":"c"},{"seq":1,"camera_id":"c"}]}`, ReasonInvalid},
		{"invalid camera", api.DetectionsTopic("d1"), `{"device_id":"d1","events":[{"seq":2,"camera_id":"../c"}]}`, ReasonInvalid},
		{"device mismatch", api.DetectionsTopic("d1"), string(batch("d2", 1)), ReasonDeviceMismatch},
		{"bad topic", "edgefleet/v1/d1/detections/x", string(batch("d1", 1)), ReasonBadTopic},
		{"bad device in topic", "edgefleet/v1/d$1/detections", string(batch("d1", 1)), ReasonBadTopic},
		{"ack from device", api.AcksTopic("d1"), `{}`, ReasonUnexpected},
		{"job id mismatch", api.JobTopic("d1", "j1"), `{"device_id":"d1","job_id":"j2","state":"queued"}`, ReasonJobMismatch},
		{"bad job state", api.JobTopic("d1", "j1"), `{"device_id":"d1","job_id":"j1","state":"dancing"}`, ReasonInvalid},
		{"unknown event type", api.DetectionsTopic("d1"), `{"device_id":"d1","events":[{"seq":1,"camera_id":"c","type":"teleport","v":1}]}`, ReasonInvalid},
		{"analytics version too new", api.DetectionsTopic("d1"), `{"device_id":"d1","events":[{"seq":1,"camera_id":"c","type":"track_end","v":99,"track":{"id":1,"first_us":1,"last_us":2,"frames":2}}]}`, ReasonInvalid},
		{"line cross without line", api.DetectionsTopic("d1"), `{"device_id":"d1","events":[{"seq":1,"camera_id":"c","type":"line_cross","v":1}]}`, ReasonInvalid},
		{"unknown analytics field", api.DetectionsTopic("d1"), `{"device_id":"d1","events":[{"seq":1,"camera_id":"c","type":"zone_enter","v":1,"zone":{"zone":"z","evil":1}}]}`, ReasonUnknownField},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fc := &fakeConn{}
			in, st, reg := newIngest(t, fc)
			in.Handle(tt.topic, []byte(tt.payload))
			in.wg.Wait()
			if got := in.Dropped(tt.reason); got != 1 {
				t.Errorf("dropped[%s] = %v, want 1", tt.reason, got)
			}
			if p, _ := st.Query(context.Background(), store.Query{}); len(p.Records) != 0 {
				t.Errorf("stored %d records", len(p.Records))
			}
			if len(fc.pub) != 0 {
				t.Errorf("published %v", fc.pub)
			}
			if len(reg.List(registry.Filter{})) != 0 {
				t.Errorf("registry changed")
			}
		})
	}
}

// seqEvents are events with these seqs and nothing else.
func seqEvents(seqs ...uint64) []api.Event {
	var out []api.Event
	for _, x := range seqs {
		out = append(out, api.Event{Seq: x})
	}
	return out
}

func TestRanges(t *testing.T) {
	ev := seqEvents
	got := Ranges(ev(1, 2, 3, 5, 7, 8))
	want := []api.SeqRange{{From: 1, To: 3}, {From: 5, To: 5}, {From: 7, To: 8}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Ranges = %v, want %v", got, want)
	}
}

func FuzzHandle(f *testing.F) {
	f.Add("edgefleet/v1/d1/detections", string(batch("d1", 1, 2)))
	f.Add("edgefleet/v1/d1/telemetry", `{"device_id":"d1","cameras":[{"id":"c","up":true,"fps":3}]}`)
	f.Add("edgefleet/v1/d1/state", `{"device_id":"d1","online":true,"labels":{"site":"a"}}`)
	f.Add("edgefleet/v1/d1/jobs/j1", `{"device_id":"d1","job_id":"j1","state":"queued"}`)
	f.Add("edgefleet/v1/d1/detections", `{"device_id":"d1","events":[{"seq":3,"camera_id":"c","type":"line_cross","v":1,`+
		`"line":{"line":"door","direction":"in"},"track":{"id":1,"first_us":1,"last_us":2,"frames":2,"path":[[0.1,0.2]]},"snapshot":{"crop":"/9g=","time_us":2}}]}`)
	fc := &fakeConn{}
	in, _, _ := newIngest(f, fc)
	f.Fuzz(func(t *testing.T, topic, payload string) {
		in.Handle(topic, []byte(payload))
		in.wg.Wait()
	})
}

// startBroker runs the embedded broker with devices good and bad and a service user.
func startBroker(t testing.TB) (*broker.Broker, string) {
	t.Helper()
	auth := broker.NewStaticAuth()
	for _, d := range []string{"good", "bad"} {
		auth.SetDevice(d, "pw-"+d)
	}
	auth.SetService("fleetd", "pw-fleetd")
	b := brokertest.Start(t, broker.Options{Addr: "127.0.0.1:0", Auth: auth, Logger: slog.New(slog.DiscardHandler)})
	return b, "tcp://" + b.Addr()
}

func device(t testing.TB, url, id string) (paho.Client, chan api.Ack) {
	t.Helper()
	acks := make(chan api.Ack, 100)
	cl := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(id).SetUsername(id).SetPassword("pw-" + id).SetConnectTimeout(5 * time.Second))
	if tok := cl.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	t.Cleanup(func() { cl.Disconnect(0) })
	tok := cl.Subscribe(api.AcksTopic(id), 1, func(_ paho.Client, m paho.Message) {
		var a api.Ack
		if err := api.Decode(m.Payload(), &a); err != nil {
			t.Errorf("bad ack: %v", err)
		}
		acks <- a
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	return cl, acks
}

func publish(t testing.TB, cl paho.Client, topic string, payload []byte) {
	t.Helper()
	if tok := cl.Publish(topic, 1, false, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// TestOverMQTT runs ingest on a real broker: a good device gets its acks
// while another floods malformed messages.
func TestOverMQTT(t *testing.T) {
	for _, mode := range []string{"embedded", "paho"} {
		t.Run(mode, func(t *testing.T) {
			srv, url := startBroker(t)
			var conn Conn = Embedded(srv)
			if mode == "paho" {
				p, err := Dial(context.Background(), DialOptions{URL: url, ClientID: "fleetd", Username: "fleetd", Password: "pw-fleetd"})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { p.Close() })
				conn = p
			}
			in, st, reg := newIngest(t, conn)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error)
			go func() { done <- in.Run(ctx) }()
			defer func() { cancel(); <-done }()
			<-in.Ready() // subscribed

			good, acks := device(t, url, "good")
			bad, _ := device(t, url, "bad")
			stj, _ := json.Marshal(api.State{DeviceID: "good", Online: true, Labels: map[string]string{"site": "s1"}})
			publish(t, good, api.StateTopic("good"), stj)
			for i := range uint64(20) {
				publish(t, bad, api.DetectionsTopic("bad"), []byte(`{"device_id":"bad","events":[{"seq":"x"}]}`))
				publish(t, bad, api.DetectionsTopic("bad"), []byte(`{{{`))
				publish(t, good, api.DetectionsTopic("good"), batch("good", 2*i+1, 2*i+2))
			}
			got := map[uint64]bool{}
			timeout := time.After(10 * time.Second)
			for len(got) < 40 {
				select {
				case a := <-acks:
					for _, r := range a.Ranges {
						for s := r.From; s <= r.To; s++ {
							got[s] = true
						}
					}
				case <-timeout:
					t.Fatalf("acked %d of 40", len(got))
				}
			}
			p, err := st.Query(context.Background(), store.Query{Device: "good", Limit: 100})
			if err != nil || len(p.Records) != 40 {
				t.Fatalf("stored %d, %v", len(p.Records), err)
			}
			if d, ok := reg.Get("good"); !ok || d.Labels["site"] != "s1" || d.Detections != 40 {
				t.Errorf("registry: %+v", d)
			}
			testutil.Eventually(t, "20 drops of each kind", func() bool { return in.Dropped(ReasonWrongType) == 20 && in.Dropped(ReasonBadJSON) == 20 })
		})
	}
}

func TestJobAndTelemetry(t *testing.T) {
	fc := &fakeConn{}
	in, st, reg := newIngest(t, fc)
	var jobs []api.JobStatus
	in.opt.OnJob = func(j api.JobStatus) { jobs = append(jobs, j) }
	in.Handle(api.StateTopic("d1"), []byte(`{"device_id":"d1","online":true}`))
	in.Handle(api.JobTopic("d1", "j1"), []byte(`{"device_id":"d1","job_id":"j1","state":"downloading","progress":0.5}`))
	in.Handle(api.TelemetryTopic("d1"), []byte(`{"device_id":"d1","cameras":[{"id":"c","up":false,"fps":0}],"spool_depth":3}`))
	in.Handle(api.DetectionsTopic("d1"), batch("d1", 4, 5, 7))
	in.Handle(api.DetectionsTopic("d1"), batch("d1", 4, 5)) // resent: acked again, stored once
	in.wg.Wait()
	if len(jobs) != 1 || jobs[0].Progress != 0.5 {
		t.Fatalf("OnJob got %+v", jobs)
	}
	d, ok := reg.Get("d1")
	if !ok || d.LastJob == nil || d.LastJob.State != api.JobDownloading || d.Telemetry == nil || d.Telemetry.SpoolDepth != 3 || d.Detections != 3 {
		t.Fatalf("registry: %+v", d)
	}
	if !slices.Contains(d.Health, registry.FlagCameraDown) {
		t.Errorf("health %v lacks camera_down", d.Health)
	}
	fc.mu.Lock()
	acks := fc.pub[api.AcksTopic("d1")]
	fc.mu.Unlock()
	// The two batches are stored concurrently (group commit), so their acks
	// may go out in either order.
	var got []string
	for _, a := range acks {
		got = append(got, string(a))
	}
	slices.Sort(got)
	want := []string{`{"device_id":"d1","ranges":[{"from":4,"to":5}]}`, `{"device_id":"d1","ranges":[{"from":4,"to":5},{"from":7,"to":7}]}`}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("acks %q, want %q in any order", acks, want)
	}
	if p, _ := st.Query(context.Background(), store.Query{}); len(p.Records) != 3 {
		t.Fatalf("stored %d records, want 3", len(p.Records))
	}
}

// slowConn's publishes wait until release is closed (a broker slow to
// send its PUBACKs).
type slowConn struct {
	fakeConn
	release chan struct{}
	waiting atomic.Int64
}

func (c *slowConn) Publish(ctx context.Context, topic string, retain bool, payload []byte) error {
	c.waiting.Add(1)
	<-c.release
	return c.fakeConn.Publish(ctx, topic, retain, payload)
}

// TestAcksWaitConcurrently: acks waiting for the broker do not hold the
// ack workers: many more than AckWorkers are sent at once.
func TestAcksWaitConcurrently(t *testing.T) {
	conn := &slowConn{release: make(chan struct{})}
	in, _, _ := newIngest(t, conn)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- in.Run(ctx) }()
	const devices = 40 // ten times AckWorkers
	for d := range devices {
		id := fmt.Sprintf("cam-%d", d)
		in.Handle(api.DetectionsTopic(id), batch(id, 1))
	}
	testutil.WaitFor(t, "every ack sent while none is acknowledged", 10*time.Second, func() bool { return conn.waiting.Load() == devices })
	close(conn.release)
	testutil.WaitFor(t, "every ack published", 10*time.Second, func() bool {
		conn.mu.Lock()
		defer conn.mu.Unlock()
		return len(conn.pub) == devices
	})
	cancel()
	<-done
}

// TestAppendAck: AppendAck writes what json.Marshal writes.
func TestAppendAck(t *testing.T) {
	ev := seqEvents
	tests := []struct {
		name   string
		device string
		events []api.Event
	}{
		{"one range", "cam-01", ev(1, 2, 3)},
		{"gaps", "a.b_c-D9", ev(1, 3, 4, 18446744073709551615)},
		{"no events", "cam-01", nil},
		{"id to escape", `bad"<id>`, ev(5)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, err := json.Marshal(&api.Ack{DeviceID: tt.device, Ranges: Ranges(tt.events)})
			if err != nil {
				t.Fatal(err)
			}
			if got := AppendAck([]byte("x"), tt.device, tt.events); string(got) != "x"+string(want) {
				t.Errorf("AppendAck = %s, want x%s", got, want)
			}
		})
	}
}
