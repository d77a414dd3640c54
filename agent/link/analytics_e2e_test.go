package link

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"edgefleet/agent/spool"
	"edgefleet/fleet/api"
	"edgefleet/fleet/api/rest"
	"edgefleet/fleet/controller/controllertest"
	"edgefleet/internal/testutil"
)

// The producer process of TestAnalyticsExactlyOnceIntoFleetd: this test
// binary run again with producerEnv set. It is the agent's delivery path
// (bbolt spool, link, sender) with a fake producer in place of the
// tracker: line crossings and track ends with crop and thumbnail
// snapshots, and detections between them. It prints "seq N" after each
// append; with drain set it appends nothing and exits once the spool is
// empty.
const producerEnv = "EDGEFLEET_TEST_ANALYTICS_PRODUCER"

// snapJPEG is the snapshot part of a track: a JPEG header and the track id
// repeated, 1..12 KB; the test checks what fleetd serves against it.
func snapJPEG(id uint64, part byte) []byte {
	n := 1000 + int(id%11000)
	b := append(make([]byte, 0, n+8), 0xFF, 0xD8, 0xFF, part)
	for len(b) < n {
		b = binary.BigEndian.AppendUint64(b, id)
	}
	return b
}

func producerEvent(i int) api.Event {
	now := time.Now().UnixMicro()
	e := api.Event{CameraID: "belt-a", Time: now, Model: "fake", ModelVersion: "1", Label: "box", Score: 0.7, Box: [4]float32{0.1, 0.2, 0.3, 0.4}}
	if i%3 == 0 {
		return e // a detection
	}
	var idb [8]byte
	rand.Read(idb[:])
	id := binary.BigEndian.Uint64(idb[:]) >> 1
	e.V = api.EventVersion
	e.Track = &api.TrackInfo{ID: id, FirstUs: now - 1e6, LastUs: now, Frames: 25, Path: [][2]float32{{0.1, 0.9}, {0.5, 0.5}}}
	e.Snapshot = &api.EventSnapshot{TimeUs: now - 5e5, Crop: snapJPEG(id, 'c'), Thumb: snapJPEG(id, 't')}
	if i%3 == 1 {
		e.Type, e.Line = api.TypeLineCross, &api.LineCross{Line: "door", Direction: api.DirectionIn}
	} else {
		e.Type = api.TypeTrackEnd
	}
	return e
}

// TestAnalyticsProducerProcess is the producer process; it does nothing
// in a normal test run.
func TestAnalyticsProducerProcess(t *testing.T) {
	cfg := os.Getenv(producerEnv)
	if cfg == "" {
		t.Skip("the producer process of TestAnalyticsExactlyOnceIntoFleetd")
	}
	f := strings.Split(cfg, "|") // spool path | broker URL | device | drain
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	sp, err := spool.Open(f[0], spool.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	opts := fastOptions(f[1], f[2], "pw")
	opts.Logger = log
	l, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	go l.Run(ctx)
	go NewSender(l, sp, SenderOptions{AckTimeout: 10 * time.Second, Poll: 10 * time.Millisecond}).Run(ctx)
	if f[3] == "drain" {
		testutil.WaitFor(t, "spool drained", time.Minute, func() bool { return sp.Stats().Depth == 0 })
		fmt.Println("drained")
		return
	}
	for i := 0; ; i++ {
		_, last, err := sp.Append(ctx, producerEvent(i))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Println("seq", last)
		time.Sleep(15 * time.Millisecond) // the producer's pace, about 60 events/s
	}
}

// producer is one run of the producer process.
type producer struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	last uint64
	done chan struct{}
}

func startProducer(t *testing.T, spoolPath, url, device, mode string) *producer {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestAnalyticsProducerProcess$", "-test.v=false")
	cmd.Env = append(os.Environ(), producerEnv+"="+strings.Join([]string{spoolPath, url, device, mode}, "|"))
	p := &producer{cmd: cmd, done: make(chan struct{})}
	logf, err := os.CreateTemp(t.TempDir(), "producer-*.log")
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close() // the process has its own descriptor
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if s, ok := strings.CutPrefix(sc.Text(), "seq "); ok {
				n, _ := strconv.ParseUint(s, 10, 64)
				p.mu.Lock()
				p.last = n
				p.mu.Unlock()
			}
		}
		cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
		if b, _ := os.ReadFile(logf.Name()); t.Failed() {
			t.Logf("producer log:\n%s", tail(string(b), 3000))
		}
	})
	return p
}

func tail(s string, n int) string { return s[max(0, len(s)-n):] }

func (p *producer) appended() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}

func (p *producer) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
}

// storedSeqs pages through fleetd's analytics events and detections of device.
func storedSeqs(t *testing.T, f *controllertest.Fleetd, device string) (events []rest.EventRecord, detections map[uint64]bool) {
	t.Helper()
	ctx := context.Background()
	q := rest.EventQuery{Device: device, Limit: 1000}
	for {
		p, err := f.API.Events(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, p.Events...)
		if q.Cursor = p.Next; q.Cursor == "" {
			break
		}
	}
	detections = map[uint64]bool{}
	dq := rest.DetectionQuery{Device: device, Limit: 1000}
	for {
		p, err := f.API.Detections(ctx, dq)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range p.Records {
			detections[r.Seq] = true
		}
		if dq.Cursor = p.Next; dq.Cursor == "" {
			break
		}
	}
	return events, detections
}

func maxStoredSeq(t *testing.T, f *controllertest.Fleetd, device string) uint64 {
	p, err := f.API.Events(context.Background(), rest.EventQuery{Device: device, Limit: 1})
	if err != nil || len(p.Events) == 0 {
		return 0
	}
	return p.Events[0].Seq
}

// TestAnalyticsExactlyOnceIntoFleetd is issue 13's must-show 3 at the fleet
// level: a device process sends analytics events with snapshots through
// fleetd's embedded broker into its store while the broker connection
// drops and the process is killed with SIGKILL three times; at the end
// (the last run drains the spool) every event and every snapshot is stored
// in fleetd exactly once, byte for byte: with fleetd's bbolt store, and on
// PostgreSQL.
func TestAnalyticsExactlyOnceIntoFleetd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run with fleetd and a device process")
	}
	t.Run("bolt", func(t *testing.T) { analyticsIntoFleetd(t, "") })
	t.Run("postgres", func(t *testing.T) {
		analyticsIntoFleetd(t, fmt.Sprintf("database: {url: %q}\n", testutil.Postgres(t)))
	})
}

func analyticsIntoFleetd(t *testing.T, extra string) {
	const device = "box-ana"
	f := controllertest.Start(t, "devices: [{id: "+device+", password: pw}]\n"+extra)
	px := startProxy(t, f.MQTT)
	url := "tcp://" + px.addr()
	spoolPath := filepath.Join(t.TempDir(), "spool.db")
	const patience = 60 * time.Second
	p := startProducer(t, spoolPath, url, device, "run")
	testutil.WaitFor(t, "first analytics events stored", patience, func() bool { return maxStoredSeq(t, f, device) >= 20 })

	// The broker connection drops; the producer keeps spooling.
	px.setDown(true)
	mark := p.appended()
	testutil.WaitFor(t, "events spooled during the outage", patience, func() bool { return p.appended() >= mark+40 })
	px.setDown(false)
	outage := p.appended()
	testutil.WaitFor(t, "events of the outage stored", patience, func() bool { return maxStoredSeq(t, f, device) > outage })

	// kill -9 three times, each a while after events of the new run were stored.
	for i := range 3 {
		p.kill(t)
		p = startProducer(t, spoolPath, url, device, "run")
		testutil.WaitFor(t, fmt.Sprintf("appends after restart %d", i+1), patience, func() bool { return p.appended() > 0 })
		first := p.appended()
		testutil.WaitFor(t, fmt.Sprintf("events stored after restart %d", i+1), patience, func() bool {
			return maxStoredSeq(t, f, device) > first+20
		})
	}
	p.kill(t)
	last := p.appended()
	// A last run that only drains what is left.
	d := startProducer(t, spoolPath, url, device, "drain")
	select {
	case <-d.done:
	case <-time.After(patience):
		t.Fatal("the spool was not drained")
	}
	checkStoredOnce(t, f, device, spoolPath, last)
}

func checkStoredOnce(t *testing.T, f *controllertest.Fleetd, device, spoolPath string, last uint64) {
	t.Helper()
	sp, err := spool.Open(spoolPath, spool.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	st := sp.Stats()
	sp.Close()
	if st.Depth != 0 || st.Dropped() != 0 || st.NextSeq-1 < last {
		t.Fatalf("spool after draining: %+v (last appended seq seen %d)", st, last)
	}
	total := st.NextSeq - 1
	events, dets := storedSeqs(t, f, device)
	seen := map[uint64]bool{}
	ctx := context.Background()
	for _, e := range events {
		if seen[e.Seq] || dets[e.Seq] {
			t.Fatalf("seq %d stored twice", e.Seq)
		}
		seen[e.Seq] = true
		if e.Track == nil || !e.Crop || !e.Thumb || (e.Type == api.TypeLineCross) != (e.Line != nil) {
			t.Fatalf("event %d stored as %+v", e.Seq, e)
		}
		for part, b := range map[string]byte{rest.PartCrop: 'c', rest.PartThumb: 't'} {
			jpeg, err := f.API.EventSnapshot(ctx, device, e.Seq, part)
			if err != nil || !bytes.Equal(jpeg, snapJPEG(e.Track.ID, b)) {
				t.Fatalf("snapshot %s of seq %d: %d bytes, %v", part, e.Seq, len(jpeg), err)
			}
		}
	}
	for seq := uint64(1); seq <= total; seq++ {
		if !seen[seq] && !dets[seq] {
			t.Fatalf("seq %d of %d is not stored: lost", seq, total)
		}
	}
	if uint64(len(events)+len(dets)) != total || len(events) < int(total/2) {
		t.Fatalf("%d events and %d detections stored for %d seqs", len(events), len(dets), total)
	}
	t.Logf("%d analytics events (with %d snapshots) and %d detections stored once each over an outage and 3 kill -9",
		len(events), 2*len(events), len(dets))
}
