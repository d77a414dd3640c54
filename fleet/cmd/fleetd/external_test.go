package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
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
	"edgefleet/fleet/api/rest"
	"edgefleet/fleet/controller/controllertest"
	"edgefleet/internal/testutil"
	"edgefleet/models/modeltest"
)

// mosquittoAddr is $EDGEFLEET_MOSQUITTO, or a mosquitto started for the
// test, or a skip (a failure under CI=true).
func mosquittoAddr(t *testing.T) string {
	t.Helper()
	if os.Getenv("EDGEFLEET_MOSQUITTO") != "" {
		return testutil.Mosquitto(t)
	}
	bin := ""
	for _, p := range []string{"mosquitto", "/usr/sbin/mosquitto"} {
		if b, err := exec.LookPath(p); err == nil {
			bin = b
			break
		}
	}
	if bin == "" {
		testutil.Need(t, "mosquitto not installed and EDGEFLEET_MOSQUITTO unset")
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
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

// TestExternalBroker runs fleetd against mosquitto (broker.url): a device
// on mosquitto registers and gets its detections acknowledged; a rollout
// reaches it through mosquitto, it downloads the model with the
// credentials of fleetd's devices list, and its report completes the rollout.
func TestExternalBroker(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs fleetd")
	}
	mq := mosquittoAddr(t)
	dir := t.TempDir()
	bin := buildFleetd(t, dir)
	p := startFleetdWith(t, bin, dir, fmt.Sprintf("broker: {url: \"tcp://%s\", client_id: fleetd-test}\ndevices: [{id: %s, password: %s}]\n", mq, testDevice, testPass))
	if p.mqtt != "" {
		t.Fatalf("embedded broker started (%s) although broker.url is set", p.mqtt)
	}
	ag := connectAgent(t, mq, map[uint64]bool{})
	defer ag.cl.Disconnect(0)
	st, _ := json.Marshal(api.State{DeviceID: testDevice, Online: true, Labels: map[string]string{"site": "ext"}})
	ag.cl.Publish(api.StateTopic(testDevice), 1, true, st).WaitTimeout(5 * time.Second)
	for i := uint64(0); i < 5; i++ {
		if tok := ag.send(i*10+1, i*10+10); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	testutil.WaitFor(t, "50 acks through mosquitto", 10*time.Second, func() bool { return len(ag.ackedCopy()) >= 50 })
	req, _ := http.NewRequest("GET", "http://"+p.http+"/api/v1/devices/"+testDevice, nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"site": "ext"`) || !strings.Contains(string(body), `"detections": 50`) {
		t.Fatalf("device over REST: %d %s", resp.StatusCode, body)
	}

	// OTA through mosquitto.
	cmds := make(chan api.Command, 1)
	if tok := ag.cl.Subscribe(api.CommandsTopic(testDevice), 1, func(_ paho.Client, m paho.Message) {
		var c api.Command
		if api.Decode(m.Payload(), &c) == nil {
			cmds <- c
		}
	}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	model, err := os.ReadFile(modeltest.Path(t, "models", "yolov5n-int8.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	c := controllertest.Client(t, p.http)
	controllertest.PushModel(t, c, "m", "2", model)
	sum := controllertest.CreateRollout(t, c, rest.CreateRollout{Model: "m@2", Selector: "site=ext"})
	var cmd api.Command
	select {
	case cmd = <-cmds:
	case <-time.After(10 * time.Second):
		t.Fatal("no command through mosquitto")
	}
	if want := "http://" + p.http + "/artifacts/"; !strings.HasPrefix(cmd.Artifact.URL, want) {
		t.Fatalf("artifact url %q, want it under %s", cmd.Artifact.URL, want)
	}
	get := func(pass string) (int, []byte) {
		req, _ := http.NewRequest("GET", cmd.Artifact.URL, nil)
		req.SetBasicAuth(testDevice, pass)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if code, b := get(testPass); code != http.StatusOK || !bytes.Equal(b, model) {
		t.Fatalf("download: %d, %d bytes", code, len(b))
	}
	if code, _ := get("wrong"); code != http.StatusUnauthorized {
		t.Fatalf("download with a wrong password: %d", code)
	}
	js, _ := json.Marshal(api.JobStatus{DeviceID: testDevice, JobID: cmd.JobID, State: api.JobSucceeded, Time: time.Now().UnixMilli()})
	ag.cl.Publish(api.JobTopic(testDevice, cmd.JobID), 1, false, js).WaitTimeout(5 * time.Second)
	controllertest.WaitRollout(t, c, sum.ID, 10*time.Second, func(v rest.Rollout) bool { return v.State == rest.StateCompleted && v.Succeeded == 1 })
}
