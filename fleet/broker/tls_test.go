package broker_test

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"edgefleet/fleet/broker"
	"edgefleet/fleet/broker/brokertest"
)

func TestTLSListener(t *testing.T) {
	certs := brokertest.NewCerts(t)
	srvTLS, err := broker.LoadTLS(certs.ServerCert, certs.ServerKey, certs.CA)
	if err != nil {
		t.Fatal(err)
	}
	auth := broker.NewStaticAuth()
	if err := auth.SetDevice("dev1", "pw1"); err != nil {
		t.Fatal(err)
	}
	b := brokertest.Start(t, broker.Options{TLSAddr: "127.0.0.1:0", TLS: srvTLS, Auth: auth})
	if b.Addr() != "" || b.TLSAddr() == "" {
		t.Fatalf("Addr %q TLSAddr %q", b.Addr(), b.TLSAddr())
	}
	caPEM, err := os.ReadFile(certs.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	clientCert, err := tls.LoadX509KeyPair(certs.ClientCert, certs.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  *tls.Config
		ok   bool
	}{
		{"client certificate", &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{clientCert}}, true},
		{"no client certificate", &tls.Config{RootCAs: pool}, false},
		{"unknown server CA", &tls.Config{Certificates: []tls.Certificate{clientCert}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := paho.NewClient(paho.NewClientOptions().AddBroker("ssl://" + b.TLSAddr()).
				SetClientID("dev1").SetUsername("dev1").SetPassword("pw1").SetProtocolVersion(4).
				SetTLSConfig(tt.cfg).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second))
			tok := c.Connect()
			if !tok.WaitTimeout(10 * time.Second) {
				t.Fatal("connect timed out")
			}
			if (tok.Error() == nil) != tt.ok {
				t.Fatalf("connect: %v, want ok=%v", tok.Error(), tt.ok)
			}
			c.Disconnect(0)
		})
	}
	for _, bad := range [][3]string{{"/nonexistent", certs.ServerKey, ""}, {certs.ServerCert, certs.ServerKey, "/nonexistent"}, {certs.ServerCert, certs.ServerKey, certs.ServerKey}} {
		if _, err := broker.LoadTLS(bad[0], bad[1], bad[2]); err == nil {
			t.Errorf("LoadTLS(%q) accepted", bad)
		}
	}
}
