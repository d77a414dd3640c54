package broker_test

import (
	"context"
	"crypto/tls"
	"log/slog"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"edgefleet/fleet/api"
	"edgefleet/fleet/broker"
	"edgefleet/fleet/broker/brokertest"
	"edgefleet/fleet/enroll"
	"edgefleet/fleet/pki"
	"edgefleet/fleet/pki/pkitest"
	"edgefleet/internal/testutil"
)

// mtlsBroker runs a broker whose TLS listener requires fleet device
// certificates (revocations from store), with a plain listener for
// password devices (pw-dev, password "pw").
func mtlsBroker(t *testing.T, ca *pki.CA, store enroll.Store) *broker.Broker {
	t.Helper()
	auth := broker.NewStaticAuth()
	if err := auth.SetDevice("pw-dev", "pw"); err != nil {
		t.Fatal(err)
	}
	return brokertest.Start(t, broker.Options{Addr: "127.0.0.1:0", TLSAddr: "127.0.0.1:0",
		TLS: pkitest.Server(t, ca, store, true), Devices: ca.Verifier(store), Auth: auth,
		Logger: slog.New(slog.DiscardHandler)})
}

type mtlsClient struct {
	paho.Client
	lost chan error
}

func dialTLS(addr, clientID, user, pass string, cfg *tls.Config) (*mtlsClient, error) {
	c := &mtlsClient{lost: make(chan error, 1)}
	o := paho.NewClientOptions().AddBroker("ssl://" + addr).SetClientID(clientID).SetUsername(user).SetPassword(pass).
		SetTLSConfig(cfg).SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(5 * time.Second).SetProtocolVersion(4).
		SetConnectionLostHandler(func(_ paho.Client, err error) { c.lost <- err })
	c.Client = paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, context.DeadlineExceeded
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	return c, nil
}

func TestMTLSLogin(t *testing.T) {
	ca := pkitest.NewCA(t)
	other := pkitest.NewCA(t)
	store := enroll.NewMem(enroll.Options{})
	b := mtlsBroker(t, ca, store)
	boxA := pkitest.Device(t, ca, "box-a", 0)
	past := ca.WithClock(func() time.Time { return time.Now().Add(-48 * time.Hour) })
	tests := []struct {
		name, clientID, user, pass string
		cfg                        *tls.Config
		ok                         bool
	}{
		{"own certificate and username", "box-a", "box-a", "", pkitest.Client(ca, boxA), true},
		{"own certificate, no username", "box-a", "", "", pkitest.Client(ca, boxA), true},
		{"A's certificate with B's username", "box-b", "box-b", "", pkitest.Client(ca, boxA), false},
		{"A's certificate with a password device's login", "pw-dev", "pw-dev", "pw", pkitest.Client(ca, boxA), false},
		{"A's certificate with B's client id", "box-b", "box-a", "", pkitest.Client(ca, boxA), false},
		{"certificate from another CA", "box-a", "box-a", "", pkitest.Client(ca, pkitest.Device(t, other, "box-a", 0)), false},
		{"expired certificate", "box-a", "box-a", "", pkitest.Client(ca, pkitest.Device(t, past, "box-a", time.Hour)), false},
		{"no certificate, with a password", "pw-dev", "pw-dev", "pw", &tls.Config{RootCAs: ca.Pool()}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := dialTLS(b.TLSAddr(), tt.clientID, tt.user, tt.pass, tt.cfg)
			if (err == nil) != tt.ok {
				t.Fatalf("connect: %v, want ok=%v", err, tt.ok)
			}
			if c != nil {
				c.Disconnect(0)
			}
		})
	}
	// The plain listener still takes password devices.
	pw, err := dial(b.Addr(), "pw-dev", "pw-dev", "pw")
	if err != nil {
		t.Fatalf("password device on the plain listener: %v", err)
	}
	pw.Disconnect(0)
}

// dial connects to a plain listener.
func dial(addr, clientID, user, pass string) (paho.Client, error) {
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(clientID).SetUsername(user).
		SetPassword(pass).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).SetProtocolVersion(4))
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, context.DeadlineExceeded
	}
	return c, tok.Error()
}

func TestMTLSForeignTopicsRefused(t *testing.T) {
	ca := pkitest.NewCA(t)
	b := mtlsBroker(t, ca, nil)
	a, err := dialTLS(b.TLSAddr(), "box-a", "box-a", "", pkitest.Client(ca, pkitest.Device(t, ca, "box-a", 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Disconnect(0)
	got := make(chan string, 4)
	cancel, err := b.Subscribe("edgefleet/v1/+/detections", func(m broker.Message) { got <- m.Topic })
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	// QoS 0 to B's topic is dropped; A's own, after it on the same
	// connection, proves it would have arrived first.
	for i, id := range []string{"box-b", "box-a"} {
		tok := a.Publish(api.DetectionsTopic(id), byte(i), false, "{}")
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish to %s: %v", id, tok.Error())
		}
	}
	select {
	case topic := <-got:
		if topic != api.DetectionsTopic("box-a") {
			t.Fatalf("broker passed on %s", topic)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("A's publish to its own topic did not arrive")
	}
	tok := a.Subscribe(api.CommandsTopic("box-b"), 1, nil)
	if !tok.WaitTimeout(5 * time.Second) {
		t.Fatal("subscribe timed out")
	}
	for _, code := range tok.(*paho.SubscribeToken).Result() {
		if code != 0x80 {
			t.Fatalf("subscribe to B's commands: code %#x, want 0x80", code)
		}
	}
}

func TestMTLSRevokedDeviceDropped(t *testing.T) {
	ca := pkitest.NewCA(t)
	store := enroll.NewMem(enroll.Options{})
	b := mtlsBroker(t, ca, store)
	certA, certC := pkitest.Device(t, ca, "box-a", 0), pkitest.Device(t, ca, "box-c", 0)
	a, err := dialTLS(b.TLSAddr(), "box-a", "box-a", "", pkitest.Client(ca, certA))
	if err != nil {
		t.Fatal(err)
	}
	c, err := dialTLS(b.TLSAddr(), "box-c", "box-c", "", pkitest.Client(ca, certC))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(0)
	if err := store.Revoke(context.Background(), "box-a"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if !b.Disconnect("box-a") {
		t.Fatal("Disconnect: box-a was not connected")
	}
	select {
	case <-a.lost:
		if d := time.Since(start); d > time.Second {
			t.Errorf("session dropped after %v, want within 1s", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("revoked device's session not dropped")
	}
	if _, err := dialTLS(b.TLSAddr(), "box-a", "box-a", "", pkitest.Client(ca, certA)); err == nil {
		t.Fatal("revoked device reconnected")
	}
	testutil.WaitFor(t, "box-c still connected", 5*time.Second, func() bool { return c.IsConnectionOpen() })
	select {
	case err := <-c.lost:
		t.Fatalf("other device lost its session: %v", err)
	default:
	}
}
