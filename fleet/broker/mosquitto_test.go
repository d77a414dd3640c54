package broker

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"edgefleet/fleet/api"
)

// mosquittoAddr starts a private mosquitto configured as
// mosquitto.acl.example documents, with users dev1, dev2 and svc, and
// returns its address.
func mosquittoAddr(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("mosquitto not installed under CI (.ci/run installs it)")
		}
		t.Skip("mosquitto not installed")
	}
	passwdBin, err := exec.LookPath("mosquitto_passwd")
	if err != nil {
		t.Skip("mosquitto_passwd not installed")
	}
	dir := t.TempDir()
	passwd := filepath.Join(dir, "passwd")
	for i, up := range [][2]string{{"dev1", "pw1"}, {"dev2", "pw2"}, {"fleetd", "svcpw"}} {
		args := []string{"-b", passwd, up[0], up[1]}
		if i == 0 {
			args = append([]string{"-c"}, args...)
		}
		if out, err := exec.Command(passwdBin, args...).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd: %v: %s", err, out)
		}
	}
	acl, err := filepath.Abs("mosquitto.acl.example")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "mosquitto.conf")
	// `user` keeps mosquitto from dropping to an account that cannot read
	// the test's temporary directory.
	text := fmt.Sprintf("user %s\nlistener %s 127.0.0.1\nallow_anonymous false\nuse_username_as_clientid true\npassword_file %s\nacl_file %s\n",
		u.Username, port, passwd, acl)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-c", conf)
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("mosquitto log:\n%s", log.String())
		}
	})
	waitFor(t, "mosquitto listening", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return addr
}

// TestMosquittoACLExample checks that mosquitto.acl.example gives an
// external mosquitto the embedded broker's rules.
func TestMosquittoACLExample(t *testing.T) {
	addr := mosquittoAddr(t)
	must := func(c *client, err error) *client {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Disconnect(0) })
		return c
	}
	svc := must(dial(addr, "fleetd-svc", "fleetd", "svcpw", nil))
	subscribe(t, svc, api.Prefix+"/#")
	dev1 := must(dial(addr, "dev1", "dev1", "pw1", func(o *paho.ClientOptions) {
		o.SetWill(api.StateTopic("dev1"), "offline", 1, true)
	}))

	if _, err := dial(addr, "dev1", "dev1", "wrong", nil); err == nil {
		t.Error("wrong password accepted")
	}

	// Foreign topics: QoS 0 publishes dropped, the marker after them arrives.
	for _, topic := range []string{api.DetectionsTopic("dev2"), api.StateTopic("dev2"), api.AcksTopic("dev1"), api.CommandsTopic("dev2")} {
		publish(t, dev1, topic, 0, "spoof")
	}
	own := []string{api.StateTopic("dev1"), api.TelemetryTopic("dev1"), api.DetectionsTopic("dev1"), api.JobTopic("dev1", "j1")}
	for _, topic := range own {
		publish(t, dev1, topic, 1, "ok")
	}
	waitFor(t, "own messages", func() bool { return len(svc.received()) >= len(own) })
	for _, m := range svc.received() {
		if strings.HasSuffix(m, "=spoof") {
			t.Errorf("mosquitto let a spoofed message through: %s", m)
		}
	}

	// Reads: only its own acks and commands reach dev1.
	for _, f := range []string{api.AcksTopic("dev1"), api.AcksTopic("dev2"), api.Prefix + "/#"} {
		code := subscribe(t, dev1, f)
		t.Logf("mosquitto SUBACK for dev1 subscribing %s: %#x", f, code)
	}
	publish(t, svc, api.AcksTopic("dev2"), 1, "for-dev2")
	publish(t, svc, api.TelemetryTopic("dev2"), 1, "dev2-telemetry")
	publish(t, svc, api.AcksTopic("dev1"), 1, "for-dev1")
	// for-dev1 went last: anything misrouted to dev1 arrived before it.
	waitFor(t, "dev1's ack", func() bool { return strings.Contains(strings.Join(dev1.received(), " "), "for-dev1") })
	for _, m := range dev1.received() {
		if !strings.HasPrefix(m, api.AcksTopic("dev1")+"=") && !strings.HasPrefix(m, api.Prefix+"/dev1/") {
			t.Errorf("dev1 received %s", m)
		}
	}

	// A client id naming the service's session does not take it over:
	// use_username_as_clientid makes it "dev2".
	dev2 := must(dial(addr, "fleetd-svc", "dev2", "pw2", nil))
	_ = dev2
	// A takeover would have closed the service's connection before dev2's
	// CONNACK: a QoS 1 round trip on it tells.
	if tok := svc.Publish(api.TelemetryTopic("dev2"), 1, false, "still-here"); !tok.WaitTimeout(wait) || tok.Error() != nil || !svc.IsConnectionOpen() {
		t.Error("a device took over the service's session by client id")
	}

	// A last will on another device's topic.
	c, err := dial(addr, "dev2", "dev2", "pw2", func(o *paho.ClientOptions) {
		o.SetWill(api.StateTopic("dev1"), "spoofed-will", 1, true)
	})
	if err == nil {
		c.Disconnect(0) // clean: no will
		t.Log("mosquitto accepts the connection with a foreign will (refused by the embedded broker)")
	} else {
		t.Logf("mosquitto refuses a foreign will at connect: %v", err)
	}
	// Whatever it does at connect, the foreign will must never be published
	// when the connection dies.
	// First a control: a will on its own state is published.
	if rc, err := rawConnectWithWill(addr, "dev2", "dev2", "pw2", api.StateTopic("dev2"), "own-will"); err != nil || rc != 0 {
		t.Fatalf("raw CONNECT with own will: code %d, %v", rc, err)
	}
	waitFor(t, "dev2's own will", func() bool { return strings.Contains(strings.Join(svc.received(), " "), "own-will") })
	rc, err := rawConnectWithWill(addr, "dev2", "dev2", "pw2", api.StateTopic("dev1"), "spoofed-will")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("raw CONNECT with a foreign will: CONNACK return code %d", rc)
	// A second own will, from a connection opened after the foreign one
	// closed, is published after the foreign one would have been.
	if rc, err := rawConnectWithWill(addr, "dev2", "dev2", "pw2", api.StateTopic("dev2"), "own-will-after"); err != nil || rc != 0 {
		t.Fatalf("raw CONNECT with own will: code %d, %v", rc, err)
	}
	waitFor(t, "the will after the foreign one", func() bool { return strings.Contains(strings.Join(svc.received(), " "), "own-will-after") })
	for _, m := range svc.received() {
		if strings.Contains(m, "spoofed-will") {
			t.Errorf("mosquitto published a foreign will: %s", m)
		}
	}
}

// rawConnectWithWill sends an MQTT 3.1.1 CONNECT with a retained QoS 1 will,
// reads the CONNACK, and drops the TCP connection without DISCONNECT, so
// that a broker that accepted the will publishes it. It returns the
// CONNACK return code.
func rawConnectWithWill(addr, clientID, user, pass, willTopic, will string) (byte, error) {
	str := func(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }
	body := append(str("MQTT"), 4, 0x80|0x40|0x20|0x08|0x04|0x02, 0, 60)
	for _, f := range []string{clientID, willTopic, will, user, pass} {
		body = append(body, str(f)...)
	}
	if len(body) > 127 {
		return 0, fmt.Errorf("connect packet of %d bytes needs a longer length encoding", len(body))
	}
	c, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(wait))
	if _, err := c.Write(append([]byte{0x10, byte(len(body))}, body...)); err != nil {
		return 0, err
	}
	ack := make([]byte, 4)
	if _, err := io.ReadFull(c, ack); err != nil {
		return 0, fmt.Errorf("read connack: %w", err)
	}
	if ack[0] != 0x20 {
		return 0, fmt.Errorf("got packet %#x, want CONNACK", ack[0])
	}
	return ack[3], nil
}
