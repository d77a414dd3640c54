package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/jpeg"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"edgefleet/agent/spool"
	"edgefleet/fleet/api"
	"edgefleet/fleet/broker"
	"edgefleet/internal/testutil"
	"edgefleet/models/modeltest"
)

// agentYAML is a config with two synthetic cameras; %s are the model path,
// the sprite folder, the spool path and the fleet block.
const agentYAML = `device_id: box-e2e
labels: {site: test}
model:
  path: %s
  version: "1"
cameras:
  - id: belt-a
    source: synth
    path: %s
    seed: 1
    fps: 3
  - id: belt-b
    source: synth
    path: %[2]s
    seed: 2
    fps: 3
spool:
  path: %s
telemetry_interval: 1s
http:
  listen: 127.0.0.1:0
log_level: debug
%s`

func writeConfig(t *testing.T, dir, body string) string {
	t.Helper()
	p := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRunConfigErrors(t *testing.T) {
	dir := t.TempDir()
	base := fmt.Sprintf(agentYAML, filepath.Join(dir, "model.tflite"), dir, filepath.Join(dir, "spool.db"), "")
	tests := []struct {
		name     string
		old, new string
		want     []string // all must appear in stderr
	}{
		{"unknown key", "    seed: 2\n", "    seed: 2\n    exposure: 3\n", []string{"cameras[1].exposure: unknown key"}},
		{"unknown top key", "log_level: debug\n", "log_level: debug\nmqtt: {}\n", []string{"mqtt: unknown key"}},
		{"bad value", "    fps: 3\n", "    fps: -2\n    width: 4\n", []string{"cameras[0].fps: must be > 0", "cameras[0].width: must be 16..8192"}},
		{"bad type", "telemetry_interval: 1s", "telemetry_interval: often", []string{"often"}},
		{"missing device", "    source: synth\n    path: " + dir + "\n    seed: 2\n", "    source: v4l2\n    device: /dev/video-edgefleet-missing\n", []string{"cameras[1].device", "/dev/video-edgefleet-missing"}},
		{"bad device id", "device_id: box-e2e", "device_id: box e2e", []string{"device_id:"}},
		{"native library missing", filepath.Join(dir, "model.tflite"), modeltest.Path(t, "models", "yolov8n_int8.tflite") +
			"\n  backend: native\n  library: " + filepath.Join(dir, "libtensorflowlite_c.so"), []string{"model.path", filepath.Join(dir, "libtensorflowlite_c.so"), "TFLite C library not found"}},
		{"unknown class", filepath.Join(dir, "model.tflite") + "\n  version: \"1\"\ncameras:\n  - id: belt-a\n    source: synth\n",
			modeltest.Path(t, "models", "yolov8n_int8.tflite") + "\n  version: \"1\"\ncameras:\n  - id: belt-a\n    source: synth\n    classes: [person, persn]\n",
			[]string{`cameras[0].classes: "persn" is not a label of model`, "labels: person, bicycle"}},
		{"unknown line class", filepath.Join(dir, "model.tflite") + "\n  version: \"1\"\ncameras:\n  - id: belt-a\n    source: synth\n",
			modeltest.Path(t, "models", "yolov8n_int8.tflite") + "\n  version: \"1\"\ncameras:\n  - id: belt-a\n    source: synth\n    lines: [{id: exit, points: [[0.5, 1], [0.5, 0]], classes: [cup, cupp]}]\n",
			[]string{`cameras[0].lines[0].classes: "cupp" is not a label of model`}},
		{"zero fps", "    fps: 3\n", "    fps: 0\n", []string{"cameras[0].fps: must be > 0"}},
		{"library for the go backend", filepath.Join(dir, "model.tflite"), filepath.Join(dir, "model.tflite") +
			"\n  backend: go\n  library: /usr/lib/libtensorflowlite_c.so", []string{"model.library: is for the native backend"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(base, tt.old) {
				t.Fatalf("test broken: %q not in config", tt.old)
			}
			p := writeConfig(t, t.TempDir(), strings.Replace(base, tt.old, tt.new, 1))
			_, stderr, code := run(t, "run", "--config", p)
			if code != 1 {
				t.Errorf("exit code %d, want 1; stderr:\n%s", code, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr does not name %q:\n%s", w, stderr)
				}
			}
		})
	}
	t.Run("no config flag", func(t *testing.T) {
		_, stderr, code := run(t, "run")
		if code != 2 || !strings.Contains(stderr, "--config is required") || !strings.Contains(stderr, "usage: edge-agent run --config PATH") {
			t.Errorf("code %d, stderr %s", code, stderr)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		_, stderr, code := run(t, "run", "--config", filepath.Join(dir, "nope.yaml"))
		if code != 1 || !strings.Contains(stderr, "nope.yaml") {
			t.Errorf("code %d, stderr %s", code, stderr)
		}
	})
}

// store is the stand-in for fleetd's ingest: it keeps each event once by
// seq, then acknowledges the batch, as fleetd does after its durable write.
type store struct {
	mu       sync.Mutex
	events   map[uint64]api.Event
	order    []uint64 // seqs in the order first stored
	dups     int      // events delivered again (at least once on the wire)
	mismatch []string // a seq delivered twice with different content

	telemetry []api.Telemetry

	// drop, while set, makes the store lose the batches it receives (no
	// store, no ack), recording their seqs in dropped.
	drop    atomic.Bool
	dropped map[uint64]bool
	// storedAt is when each seq was first stored.
	storedAt map[uint64]time.Time
}

func (s *store) lastTelemetry() (api.Telemetry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.telemetry) == 0 {
		return api.Telemetry{}, false
	}
	return s.telemetry[len(s.telemetry)-1], true
}

// telemetryMsg keeps a telemetry message.
func (s *store) telemetryMsg(payload []byte) {
	var tm api.Telemetry
	if api.Decode(payload, &tm) == nil {
		s.mu.Lock()
		s.telemetry = append(s.telemetry, tm)
		s.mu.Unlock()
	}
}

// handle stores a detection batch and publishes the ack.
func (s *store) handle(publish func(topic string, payload []byte), payload []byte) {
	var batch api.DetectionBatch
	if err := api.Decode(payload, &batch); err != nil {
		return
	}
	ack := api.Ack{DeviceID: batch.DeviceID}
	if s.drop.Load() {
		s.mu.Lock()
		if s.dropped == nil {
			s.dropped = map[uint64]bool{}
		}
		for _, e := range batch.Events {
			s.dropped[e.Seq] = true
		}
		s.mu.Unlock()
		return
	}
	s.mu.Lock()
	for _, e := range batch.Events {
		if old, ok := s.events[e.Seq]; ok {
			s.dups++
			if old != e {
				s.mismatch = append(s.mismatch, fmt.Sprintf("seq %d: %+v then %+v", e.Seq, old, e))
			}
		} else {
			s.events[e.Seq] = e
			s.order = append(s.order, e.Seq)
			if s.storedAt == nil {
				s.storedAt = map[uint64]time.Time{}
			}
			s.storedAt[e.Seq] = time.Now()
		}
		ack.Ranges = append(ack.Ranges, api.SeqRange{From: e.Seq, To: e.Seq})
	}
	s.mu.Unlock()
	p, _ := json.Marshal(ack)
	publish(api.AcksTopic(batch.DeviceID), p)
}

// newest returns how many events are stored and the latest capture time among them.
func (s *store) newest() (int, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var t int64
	for _, e := range s.events {
		t = max(t, e.Time)
	}
	return len(s.events), time.UnixMicro(t)
}

func (s *store) capturedBetween(from, to time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, e := range s.events {
		if e.Time >= from.UnixMicro() && e.Time <= to.UnixMicro() {
			n++
		}
	}
	return n
}

// fleetSide is the broker the agent talks to, with the store subscribed to
// it, and a way to make the broker unreachable for a while.
type fleetSide interface {
	url() string
	down()
	up()
}

// embeddedFleet is the embedded broker on a fixed port, stopped and started
// again for an outage.
type embeddedFleet struct {
	t      *testing.T
	addr   string
	device string
	store  *store
	b      *broker.Broker
}

func (f *embeddedFleet) url() string { return "tcp://" + f.addr }
func (f *embeddedFleet) down()       { f.b.Close() }

func (f *embeddedFleet) up() {
	auth := broker.NewStaticAuth()
	if err := auth.SetDevice(f.device, "pw"); err != nil {
		f.t.Fatal(err)
	}
	// The old broker's port may take a moment to be free again.
	var b *broker.Broker
	var err error
	testutil.WaitFor(f.t, "a broker on "+f.addr+" (the port free again)", 10*time.Second, func() bool {
		b, err = broker.New(broker.Options{Addr: f.addr, Auth: auth, Logger: slog.New(slog.DiscardHandler)})
		return err == nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	f.t.Cleanup(func() { cancel(); b.Close(); <-done })
	publish := func(topic string, p []byte) { _ = b.Publish(topic, p, false, 1) }
	if _, err := b.Subscribe(api.DetectionsTopic(f.device), func(m broker.Message) { f.store.handle(publish, m.Payload) }); err != nil {
		f.t.Fatal(err)
	}
	if _, err := b.Subscribe(api.TelemetryTopic(f.device), func(m broker.Message) { f.store.telemetryMsg(m.Payload) }); err != nil {
		f.t.Fatal(err)
	}
	f.b = b
}

// mosquittoFleet is a real mosquitto with the store as an MQTT client of
// it; the agent reaches it through a proxy that cuts it off for an outage.
type mosquittoFleet struct {
	proxy *proxy
}

func newMosquittoFleet(t *testing.T, addr, device string, s *store) *mosquittoFleet {
	var publish func(topic string, p []byte)
	o := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("store-" + device).
		SetProtocolVersion(4).SetAutoReconnect(true).SetConnectRetry(true).
		SetOnConnectHandler(func(c paho.Client) {
			c.Subscribe(api.DetectionsTopic(device), 1, func(_ paho.Client, m paho.Message) { s.handle(publish, m.Payload()) })
			c.Subscribe(api.TelemetryTopic(device), 0, func(_ paho.Client, m paho.Message) { s.telemetryMsg(m.Payload()) })
		})
	c := paho.NewClient(o)
	// Not waited for: this runs on paho's delivery goroutine.
	publish = func(topic string, p []byte) { c.Publish(topic, 1, false, p) }
	if tok := c.Connect(); !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
		t.Fatalf("store connect to mosquitto %s: %v", addr, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return &mosquittoFleet{proxy: startProxy(t, addr)}
}

func (f *mosquittoFleet) url() string { return "tcp://" + f.proxy.ln.Addr().String() }
func (f *mosquittoFleet) down()       { f.proxy.setDown(true) }
func (f *mosquittoFleet) up()         { f.proxy.setDown(false) }

// proxy forwards TCP to a target; while down it cuts every connection and
// refuses new ones.
type proxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	isDown bool
	conns  map[net.Conn]bool
}

func startProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.setDown(true) })
	return p
}

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.isDown
		p.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		u, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[u] = true, true
		p.mu.Unlock()
		go func() { io.Copy(u, c); u.Close(); c.Close() }()
		go func() { io.Copy(c, u); u.Close(); c.Close() }()
	}
}

func (p *proxy) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.isDown = down
	if down {
		for c := range p.conns {
			c.Close()
		}
		clear(p.conns)
	}
}

// agentProc is a running edge-agent.
type agentProc struct {
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan error
}

// addr waits for the agent's http address in its log.
func (a *agentProc) addr(t *testing.T) string {
	t.Helper()
	var addr string
	testutil.WaitFor(t, "the agent's http address in its log", 30*time.Second, func() bool {
		for _, line := range strings.Split(a.stderr.String(), "\n") {
			if _, rest, ok := strings.Cut(line, "msg=\"http listening\" addr="); ok {
				addr = strings.Fields(rest)[0]
				return true
			}
		}
		return false
	})
	return addr
}

// metric reads one unlabelled sample from the agent's /metrics (0 when
// absent or unreachable).
func (a *agentProc) metric(t *testing.T, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + a.addr(t) + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return 0
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func startAgent(t *testing.T, config string) *agentProc {
	t.Helper()
	cmd := exec.Command(agentBinary(t), "run", "--config", config)
	p := &agentProc{cmd: cmd, stderr: &lockedBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("agent log (last 4000 bytes):\n%s", tail(p.stderr.String(), 4000))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestRunDeliversExactlyOnce is issue 4 point 1: edge-agent runs as a real
// process with two synthetic cameras and a real model; the broker goes
// down for a while, and the agent is killed with SIGKILL and restarted.
// Every event the spool ever accepted must reach the store exactly once
// (or still be in the spool, for the next run), in order per camera, with
// no seq reused.
func TestRunDeliversExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run with a real model")
	}
	s := &store{events: map[uint64]api.Event{}}
	f := &embeddedFleet{t: t, addr: freeAddr(t), device: "box-e2e", store: s}
	f.up()
	deliverThrough(t, f, s, "box-e2e")
}

// TestRunInteropMosquitto is the same run against a real mosquitto
// (started by .ci/run, address in EDGEFLEET_MOSQUITTO).
func TestRunInteropMosquitto(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run with a real model")
	}
	addr := os.Getenv("EDGEFLEET_MOSQUITTO")
	if addr == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("EDGEFLEET_MOSQUITTO is not set under CI; .ci/run starts mosquitto and sets it")
		}
		t.Skip("EDGEFLEET_MOSQUITTO not set (host:port of a mosquitto allowing anonymous clients)")
	}
	device := fmt.Sprintf("e2e-%d-%d", os.Getpid(), time.Now().UnixNano()%1e9)
	s := &store{events: map[uint64]api.Event{}}
	deliverThrough(t, newMosquittoFleet(t, addr, device, s), s, device)
}

func deliverThrough(t *testing.T, f fleetSide, s *store, device string) {
	model := modeltest.Path(t, "models", "yolov8n_full_integer_quant.tflite")
	images := modeltest.Path(t, "images")
	dir := t.TempDir()
	spoolPath := filepath.Join(dir, "spool.db")
	cfg := writeConfig(t, dir, strings.Replace(fmt.Sprintf(agentYAML, model, images, spoolPath,
		"fleet:\n  broker: "+f.url()+"\n  password: pw\n"), "box-e2e", device, 1))

	const patience = 60 * time.Second
	a := startAgent(t, cfg)
	testutil.WaitFor(t, "first detections stored", patience, func() bool { n, _ := s.newest(); return n >= 4 })
	checkEndpoints(t, a)
	testutil.WaitFor(t, "telemetry with both cameras up", patience, func() bool {
		tm, ok := s.lastTelemetry()
		return ok && len(tm.Cameras) == 2 && tm.Cameras[0].Up && tm.Cameras[1].Up && tm.Cameras[0].FPS > 0
	})
	if tm, _ := s.lastTelemetry(); tm.Model != "yolov8n_full_integer_quant" || tm.Engine == "" || tm.DiskFreeBytes == 0 || tm.InferP50Ms <= 0 || tm.InferP99Ms < tm.InferP50Ms {
		t.Errorf("telemetry %+v", tm)
	}

	// Broker outage: detections keep being made and spooled.
	f.down()
	down := time.Now()
	appended := a.metric(t, "edgefleet_spool_appended_events_total")
	testutil.WaitFor(t, "detections spooled during the outage", patience, func() bool {
		return a.metric(t, "edgefleet_spool_appended_events_total") >= appended+8
	})
	up := time.Now()
	f.up()
	testutil.WaitFor(t, "detections made during the outage", patience, func() bool {
		_, newest := s.newest()
		return s.capturedBetween(down, up) > 0 && newest.After(up)
	})

	// kill -9 at arbitrary moments, each time starting again on the same spool.
	for i := range 3 {
		time.Sleep(time.Duration(rand.IntN(800)) * time.Millisecond)
		if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-a.done
		a.done <- nil // for the cleanup
		restart := time.Now()
		a = startAgent(t, cfg)
		testutil.WaitFor(t, fmt.Sprintf("detections after restart %d", i+1), patience, func() bool {
			_, newest := s.newest()
			return newest.After(restart)
		})
	}
	// Let the sender deliver something more, then stop cleanly.
	mark := time.Now()
	testutil.WaitFor(t, "detections delivered after the last restart", patience, func() bool {
		_, newest := s.newest()
		return newest.After(mark)
	})
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-a.done:
		a.done <- nil
		if err != nil {
			t.Fatalf("agent exit after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("agent did not stop within 30s of SIGTERM")
	}

	checkExactlyOnce(t, s, spoolPath, down, up)
}

// checkExactlyOnce: what the spool still holds was not acknowledged yet;
// with what the store has, it must make up every seq ever assigned,
// exactly once, in order per camera.
func checkExactlyOnce(t *testing.T, s *store, spoolPath string, down, up time.Time) {
	t.Helper()
	sp, err := spool.Open(spoolPath, spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	st := sp.Stats()
	left, err := sp.Next(context.Background(), 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if st.Dropped() != 0 {
		t.Errorf("spool dropped %d events", st.Dropped())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	all := map[uint64]api.Event{}
	for k, v := range s.events {
		all[k] = v
	}
	for _, e := range left {
		if old, ok := all[e.Seq]; ok && old != e {
			t.Errorf("seq %d differs between store and spool: %+v vs %+v", e.Seq, old, e)
		}
		all[e.Seq] = e
	}
	last := st.NextSeq - 1
	for seq := uint64(1); seq <= last; seq++ {
		if _, ok := all[seq]; !ok {
			t.Errorf("seq %d of %d is neither in the store nor in the spool: lost", seq, last)
		}
	}
	if uint64(len(all)) != last {
		t.Errorf("%d distinct events for seqs 1..%d", len(all), last)
	}
	for _, m := range s.mismatch {
		t.Errorf("seq reused: %s", m)
	}
	// In order per camera: seqs arrive increasing, capture times with them.
	lastSeq := map[string]uint64{}
	lastTime := map[string]int64{}
	perCam := map[string]int{}
	for _, seq := range s.order {
		e := s.events[seq]
		perCam[e.CameraID]++
		if seq < lastSeq[e.CameraID] {
			t.Errorf("camera %s: seq %d stored after seq %d", e.CameraID, seq, lastSeq[e.CameraID])
		}
		if e.Time < lastTime[e.CameraID] {
			t.Errorf("camera %s: seq %d captured before the event stored ahead of it", e.CameraID, seq)
		}
		lastSeq[e.CameraID], lastTime[e.CameraID] = seq, e.Time
		if e.Model != "yolov8n_full_integer_quant" || e.ModelVersion != "1" || e.Label == "" || e.Score <= 0.25 {
			t.Errorf("event %+v", e)
		}
	}
	if perCam["belt-a"] == 0 || perCam["belt-b"] == 0 {
		t.Errorf("events per camera: %v", perCam)
	}
	t.Logf("%d events stored once each (%d still spooled, %d duplicate deliveries ignored), per camera %v; %d made during a %v outage",
		len(s.events), len(left), s.dups, perCam, s.capturedBetweenLocked(down, up), up.Sub(down).Round(time.Millisecond))
}

// checkEndpoints reads the agent's local endpoints at the address it logged.
func checkEndpoints(t *testing.T, a *agentProc) {
	t.Helper()
	addr := a.addr(t)
	get := func(path string) (int, string, []byte) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), b
	}
	if code, _, body := get("/healthz"); code != 200 || !strings.Contains(string(body), `"status":"ok"`) {
		t.Errorf("/healthz: %d %s", code, body)
	}
	_, _, metrics := get("/metrics")
	for _, want := range []string{`edgefleet_agent_frames_total{camera="belt-a"}`, "edgefleet_agent_inference_seconds_count", "edgefleet_spool_appended_events_total", "edgefleet_link_connected 1", "go_goroutines"} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	code, ct, body := get("/snapshot/belt-a.jpg")
	if code != 200 || ct != "image/jpeg" {
		t.Fatalf("/snapshot/belt-a.jpg: %d %s", code, ct)
	}
	img, err := jpeg.Decode(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 640 || b.Dy() != 480 {
		t.Errorf("snapshot is %v, want 640x480", b)
	}
}

func (s *store) capturedBetweenLocked(from, to time.Time) int {
	n := 0
	for _, e := range s.events {
		if e.Time >= from.UnixMicro() && e.Time <= to.UnixMicro() {
			n++
		}
	}
	return n
}

// BenchmarkAgentMemory runs edge-agent with one and with two synthetic
// cameras and yolov8n int8 for a few seconds and reports its peak resident
// memory, its CPU time and its garbage collections (GODEBUG=gctrace=1);
// the memory_limit=off rows run the same agent without the soft memory limit.
func BenchmarkAgentMemory(b *testing.B) {
	model := modeltest.Path(b, "models", "yolov8n_full_integer_quant.tflite")
	images := modeltest.Path(b, "images")
	bin := filepath.Join(b.TempDir(), "edge-agent")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	for _, limit := range []string{"", "off"} {
		for _, cameras := range []int{1, 2} {
			name := fmt.Sprintf("cameras=%d", cameras)
			extra := ""
			if limit != "" {
				name += ",memory_limit=" + limit
				extra = "memory_limit: " + limit + "\n"
			}
			b.Run(name, func(b *testing.B) {
				for b.Loop() {
					dir := b.TempDir()
					cfg := fmt.Sprintf(agentYAML, model, images, filepath.Join(dir, "spool.db"), extra)
					if cameras == 1 {
						cfg = oneCamera(b, cfg)
					}
					measureAgent(b, bin, filepath.Join(dir, "agent.yaml"), cfg)
				}
			})
		}
	}
}

// measureAgent runs bin with config cfg (written to path) for 8 s and
// reports its peak and last RSS, CPU time and garbage collections.
func measureAgent(b *testing.B, bin, path, cfg string) {
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", path)
	cmd.Env = append(os.Environ(), "GODEBUG=gctrace=1")
	var gcs lineCounter
	cmd.Stderr = &gcs
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	time.Sleep(8 * time.Second)
	hwm, rss := procMemKiB(cmd.Process.Pid)
	cpu := procCPUSeconds(cmd.Process.Pid)
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	if hwm == 0 {
		b.Fatal("could not read the agent's memory")
	}
	b.ReportMetric(float64(hwm)/1024, "MiB-peak-RSS")
	b.ReportMetric(float64(rss)/1024, "MiB-RSS")
	b.ReportMetric(cpu, "CPU-s")
	b.ReportMetric(float64(gcs.count()), "GCs")
}

// lineCounter counts the gctrace lines ("gc N @...") written to it.
type lineCounter struct {
	mu   sync.Mutex
	part []byte
	n    int
}

func (c *lineCounter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.part = append(c.part, p...)
	for {
		i := bytes.IndexByte(c.part, '\n')
		if i < 0 {
			return len(p), nil
		}
		if bytes.HasPrefix(c.part[:i], []byte("gc ")) {
			c.n++
		}
		c.part = c.part[i+1:]
	}
}

func (c *lineCounter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// procCPUSeconds reads a process's user and system CPU time.
func procCPUSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.Atoi(f[11])
	st, _ := strconv.Atoi(f[12])
	return float64(ut+st) / 100 // USER_HZ
}

// oneCamera drops belt-b from agentYAML's two cameras.
func oneCamera(b *testing.B, cfg string) string {
	i, j := strings.Index(cfg, "  - id: belt-b\n"), strings.Index(cfg, "spool:\n")
	if i < 0 || j < i {
		b.Fatal("agentYAML has no belt-b camera before spool:")
	}
	return cfg[:i] + cfg[j:]
}

// procMemKiB reads VmHWM and VmRSS of a process.
func procMemKiB(pid int) (hwm, rss int) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		switch k {
		case "VmHWM":
			hwm = n
		case "VmRSS":
			rss = n
		}
	}
	return hwm, rss
}
