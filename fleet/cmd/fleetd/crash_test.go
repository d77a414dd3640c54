package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"edgefleet/fleet/api"
	"edgefleet/fleet/store"
	"edgefleet/internal/testutil"
)

const (
	testToken  = "operator-token-0123456789"
	testDevice = "dev-1"
	testPass   = "device-password"
)

// buildFleetd compiles this command into dir.
func buildFleetd(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "fleetd")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

type fleetdProc struct {
	cmd            *exec.Cmd
	dir            string
	mqtt, http     string
	exited, logged chan struct{}
}

// startFleetd runs fleetd and waits until it reports its addresses.
func startFleetd(t *testing.T, bin, dir string) *fleetdProc {
	t.Helper()
	return startFleetdWith(t, bin, dir, fmt.Sprintf(`
broker: {listen: "127.0.0.1:0"}
devices: [{id: %s, password: %s}]
`, testDevice, testPass))
}

// startFleetdWith runs fleetd with a config of the common keys plus extra.
func startFleetdWith(t *testing.T, bin, dir, extra string) *fleetdProc {
	t.Helper()
	cfg := filepath.Join(dir, "fleetd.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
data_dir: %s
log: {format: json}
http: {listen: "127.0.0.1:0"}
operators: [{name: test, token: %s}]
`, filepath.Join(dir, "data"), testToken)+extra), 0o600)
	cmd := exec.Command(bin, "--config", cfg)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &fleetdProc{cmd: cmd, dir: dir, exited: make(chan struct{}), logged: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var l struct {
				Msg      string `json:"msg"`
				MQTTAddr string `json:"mqtt_addr"`
				HTTPAddr string `json:"http_addr"`
			}
			json.Unmarshal(sc.Bytes(), &l)
			switch l.Msg {
			case "broker listening":
				p.mqtt = l.MQTTAddr
			case "http listening":
				p.http = l.HTTPAddr
			case "fleetd ready":
				close(ready)
			}
			if testing.Verbose() {
				t.Logf("fleetd: %s", sc.Bytes())
			}
		}
		close(p.logged)
	}()
	go func() { cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-p.exited })
	select {
	case <-ready:
	case <-p.exited:
		t.Fatal("fleetd exited before it was ready")
	case <-time.After(20 * time.Second):
		t.Fatal("fleetd not ready in 20s")
	}
	return p
}

// agent is a minimal device: it publishes batches and collects acks.
type agent struct {
	cl    paho.Client
	mu    sync.Mutex
	acked map[uint64]bool
}

func connectAgent(t *testing.T, addr string, acked map[uint64]bool) *agent {
	t.Helper()
	a := &agent{acked: acked}
	a.cl = paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(testDevice).
		SetUsername(testDevice).SetPassword(testPass).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second))
	if tok := a.cl.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("agent connect: %v", tok.Error())
	}
	tok := a.cl.Subscribe(api.AcksTopic(testDevice), 1, func(_ paho.Client, m paho.Message) {
		var ack api.Ack
		if api.Decode(m.Payload(), &ack) != nil {
			return
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		for _, r := range ack.Ranges {
			for s := r.From; s <= r.To; s++ {
				a.acked[s] = true
			}
		}
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("agent subscribe: %v", tok.Error())
	}
	return a
}

func (a *agent) send(from, to uint64) paho.Token {
	b := api.DetectionBatch{DeviceID: testDevice}
	for s := from; s <= to; s++ {
		b.Events = append(b.Events, api.Event{Seq: s, CameraID: "cam0", Time: time.Now().UnixMicro(), Label: "person", Score: 0.8})
	}
	p, _ := json.Marshal(&b)
	return a.cl.Publish(api.DetectionsTopic(testDevice), 1, false, p)
}

func (a *agent) ackedCopy() map[uint64]bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[uint64]bool, len(a.acked))
	for k := range a.acked {
		out[k] = true
	}
	return out
}

// storedSeqs pages through the device's detections over the REST API.
func storedSeqs(t *testing.T, httpAddr string) map[uint64]int {
	t.Helper()
	seqs := map[uint64]int{}
	cursor := ""
	for {
		req, _ := http.NewRequest("GET", fmt.Sprintf("http://%s/api/v1/detections?device=%s&limit=10000&cursor=%s", httpAddr, testDevice, cursor), nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("query: %d %s", resp.StatusCode, body)
		}
		var p store.Page
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatal(err)
		}
		for _, r := range p.Records {
			seqs[r.Seq]++
		}
		if p.Next == "" {
			return seqs
		}
		cursor = p.Next
	}
}

// TestKill9 kills fleetd during ingest and restarts it: every detection
// acknowledged before the kill is still stored, and resending everything
// stores nothing twice.
func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs fleetd")
	}
	dir := t.TempDir()
	bin := buildFleetd(t, dir)
	p := startFleetd(t, bin, dir)

	ag := connectAgent(t, p.mqtt, map[uint64]bool{})
	const batch = 10
	var sent uint64
	ctx, cancel := context.WithCancel(context.Background())
	pubDone := make(chan struct{})
	go func() { // publish as fast as the broker takes it, never waiting for acks
		defer close(pubDone)
		for ctx.Err() == nil {
			tok := ag.send(sent+1, sent+batch)
			sent += batch // it may have arrived even if the puback did not
			if !tok.WaitTimeout(2*time.Second) || tok.Error() != nil {
				return
			}
		}
	}()
	// Kill once a good number of acks came back, mid-stream.
	testutil.WaitFor(t, "2000 acks", 20*time.Second, func() bool { return len(ag.ackedCopy()) >= 2000 })
	if err := p.cmd.Process.Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	<-p.exited
	cancel()
	<-pubDone
	acked := ag.ackedCopy() // nothing can be acked after the kill
	ag.cl.Disconnect(0)
	t.Logf("killed fleetd after %d events sent, %d acked", sent, len(acked))
	if uint64(len(acked)) == sent {
		t.Log("warning: every sent event was acked before the kill")
	}

	p2 := startFleetd(t, bin, dir)
	stored := storedSeqs(t, p2.http)
	for s := range acked {
		if stored[s] != 1 {
			t.Fatalf("acknowledged seq %d stored %d times after restart", s, stored[s])
		}
	}

	// The device resends everything it has not seen acked, and (as a
	// device that lost its ack state would) the acked ones too.
	ag2 := connectAgent(t, p2.mqtt, map[uint64]bool{})
	for s := uint64(1); s <= sent; s += 100 {
		if tok := ag2.send(s, min(s+99, sent)); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("resend: %v", tok.Error())
		}
	}
	testutil.WaitFor(t, "every resent event acked", 20*time.Second, func() bool { return uint64(len(ag2.ackedCopy())) >= sent })
	stored = storedSeqs(t, p2.http)
	if uint64(len(stored)) != sent {
		t.Fatalf("stored %d distinct seqs, want %d", len(stored), sent)
	}
	for s, n := range stored {
		if n != 1 || s < 1 || s > sent {
			t.Fatalf("seq %d stored %d times", s, n)
		}
	}
	// Graceful stop works too.
	p2.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p2.exited:
		if code := p2.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("fleetd exit code %d after SIGINT", code)
		}
	case <-time.After(15 * time.Second):
		t.Error("fleetd did not stop on SIGINT")
	}
}
