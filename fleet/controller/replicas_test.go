package controller_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"edgefleet/fleet/api"
	"edgefleet/fleet/controller"
	"edgefleet/fleet/controller/controllertest"
	"edgefleet/fleet/store"
	"edgefleet/internal/testutil"
)

// anonMosquitto is $EDGEFLEET_MOSQUITTO, or a mosquitto started for the
// test, or a skip (a failure under CI=true).
func anonMosquitto(t *testing.T) string {
	t.Helper()
	if os.Getenv("EDGEFLEET_MOSQUITTO") != "" {
		return testutil.Mosquitto(t)
	}
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		bin = "/usr/sbin/mosquitto"
	}
	if _, err := os.Stat(bin); err != nil {
		testutil.Need(t, "mosquitto not installed and EDGEFLEET_MOSQUITTO unset")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	os.WriteFile(conf, []byte("listener "+port+" 127.0.0.1\nallow_anonymous true\n"), 0o600)
	cmd := exec.Command(bin, "-c", conf)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	testutil.WaitFor(t, "mosquitto listening", 5*time.Second, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return addr
}

// startReplica runs a fleetd in process on the database and the broker.
func startReplica(t *testing.T, dsn, mq, group string) *controller.Controller {
	t.Helper()
	var b [4]byte
	rand.Read(b[:])
	cfg, err := controller.ParseConfig(strings.NewReader(fmt.Sprintf(`
data_dir: %s
http: {listen: "127.0.0.1:0"}
database: {url: %q}
broker: {url: "tcp://%s", client_id: fleetd-%s, share_group: %s}
operators: [{name: test, token: %s}]
`, filepath.Join(t.TempDir(), "data"), dsn, mq, hex.EncodeToString(b[:]), group, controllertest.Token)))
	if err != nil {
		t.Fatal(err)
	}
	c, err := controller.New(context.Background(), cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	testutil.Serve(t, "fleetd", c.Run, c.Ready())
	return c
}

// liveFeed opens the SSE live feed of the fleetd at addr; it is subscribed when liveFeed returns.
func liveFeed(t *testing.T, addr string) <-chan store.Record {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/api/v1/detections/stream", nil)
	req.Header.Set("Authorization", "Bearer "+controllertest.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("live feed: %v %v", resp, err)
	}
	sc := bufio.NewScanner(resp.Body)
	if !sc.Scan() {
		t.Fatal("live feed: nothing")
	}
	ch := make(chan store.Record, 1000)
	go func() {
		defer resp.Body.Close()
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var r store.Record
				if json.Unmarshal([]byte(data), &r) == nil {
					ch <- r
				}
			}
		}
	}()
	return ch
}

// TestLiveFeedAcrossReplicas: two fleetd replicas on one database and an
// external broker split a device's batches between them (shared
// subscription), and the console's live feed on each shows every one.
func TestLiveFeedAcrossReplicas(t *testing.T) {
	dsn := testutil.Postgres(t)
	mq := anonMosquitto(t)
	var b [4]byte
	rand.Read(b[:])
	suffix := hex.EncodeToString(b[:])
	group, device := "fleetd"+suffix, "feed-"+suffix
	replicas := []*controller.Controller{startReplica(t, dsn, mq, group), startReplica(t, dsn, mq, group)}
	var feeds []<-chan store.Record
	for _, r := range replicas {
		feeds = append(feeds, liveFeed(t, r.HTTPAddr()))
	}

	cl := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + mq).SetClientID(device))
	if tok := cl.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("device connect: %v", tok.Error())
	}
	defer cl.Disconnect(0)
	const n = 40
	for seq := range uint64(n) {
		p, _ := json.Marshal(api.DetectionBatch{DeviceID: device, Events: []api.Event{{Seq: seq + 1, CameraID: "cam0", Time: time.Now().UnixMicro(), Label: "car", Score: 0.7}}})
		if tok := cl.Publish(api.DetectionsTopic(device), 1, false, p); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	for i, ch := range feeds {
		seen := map[uint64]bool{}
		timeout := time.After(20 * time.Second)
		for len(seen) < n {
			select {
			case r := <-ch:
				if r.Device == device {
					seen[r.Seq] = true
				}
			case <-timeout:
				t.Fatalf("replica %d's live feed showed %d of the %d detections", i, len(seen), n)
			}
		}
	}
}
