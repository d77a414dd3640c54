package pki

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// deviceCert issues a tls.Certificate for id from ca with lifetime.
func deviceCert(t testing.TB, ca *CA, id string, lifetime time.Duration) tls.Certificate {
	t.Helper()
	key, csr := csrFor(t, "p256", cn(id))
	c, err := ca.Issue(context.Background(), csr, id, lifetime)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{c.Raw}, PrivateKey: key, Leaf: c}
}

func TestVerifyDevice(t *testing.T) {
	ca := newCA(t)
	other := newCA(t)
	rev := &revokedSet{}
	rev.revoke("box-gone")
	past := ca.WithClock(func() time.Time { return time.Now().Add(-48 * time.Hour) })
	future := ca.WithClock(func() time.Time { return time.Now().Add(48 * time.Hour) })
	server, _ := ca.IssueServer([]string{"box-1"}, time.Hour)
	tests := []struct {
		name    string
		certs   []*x509.Certificate
		wantID  string
		wantErr error
	}{
		{"device", []*x509.Certificate{deviceCert(t, ca, "box-1", time.Hour).Leaf}, "box-1", nil},
		{"none", nil, "", ErrNoCertificate},
		{"other CA", []*x509.Certificate{deviceCert(t, other, "box-1", time.Hour).Leaf}, "", ErrUntrusted},
		{"expired", []*x509.Certificate{deviceCert(t, past, "box-1", time.Hour).Leaf}, "", ErrUntrusted},
		{"not yet valid", []*x509.Certificate{deviceCert(t, future, "box-1", time.Hour).Leaf}, "", ErrUntrusted},
		{"server certificate", []*x509.Certificate{server.Leaf}, "", ErrUntrusted},
		{"the CA itself", []*x509.Certificate{ca.Certificate()}, "", ErrUntrusted},
		{"revoked", []*x509.Certificate{deviceCert(t, ca, "box-gone", time.Hour).Leaf}, "", ErrRevoked},
	}
	v := ca.Verifier(rev)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, err := v.VerifyDevice(context.Background(), tc.certs)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) || id != tc.wantID {
				t.Fatalf("got %q, %v; want %q, %v", id, err, tc.wantID, tc.wantErr)
			}
		})
	}
}

// handshake runs one TLS handshake over loopback between a server with cfg
// and a client with ccfg, returning the client's and the server's errors.
func handshake(t testing.TB, cfg, ccfg *tls.Config) (clientErr, serverErr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		sc := tls.Server(c, cfg)
		err = sc.Handshake()
		if err == nil {
			_, err = sc.Write([]byte("x")) // the client sees a refusal of its certificate only on read
		}
		sc.Close()
		done <- err
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), ccfg)
	if err == nil {
		_, err = io.ReadFull(c, make([]byte, 1))
		c.Close()
	}
	return err, <-done
}

func TestServerConfigHandshake(t *testing.T) {
	ca := newCA(t)
	other := newCA(t)
	rev := &revokedSet{}
	rev.revoke("box-gone")
	sc, err := ca.IssueServer([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	client := func(certs ...tls.Certificate) *tls.Config {
		return &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", Certificates: certs}
	}
	expired := deviceCert(t, ca.WithClock(func() time.Time { return time.Now().Add(-48 * time.Hour) }), "box-1", time.Hour)
	tests := []struct {
		name    string
		require bool
		client  *tls.Config
		ok      bool
	}{
		{"device", true, client(deviceCert(t, ca, "box-1", time.Hour)), true},
		{"no certificate, optional", false, client(), true},
		{"no certificate, required", true, client(), false},
		{"other CA", false, client(deviceCert(t, other, "box-1", time.Hour)), false},
		{"expired", false, client(expired), false},
		{"revoked", false, client(deviceCert(t, ca, "box-gone", time.Hour)), false},
		{"TLS 1.1", false, &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", MaxVersion: tls.VersionTLS11}, false},
		{"CBC cipher only", false, &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", MaxVersion: tls.VersionTLS12,
			CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ServerConfig(ServerOptions{Certificate: sc, Devices: ca.Verifier(rev), RequireDevice: tc.require})
			cerr, serr := handshake(t, cfg, tc.client)
			if tc.ok != (cerr == nil && serr == nil) {
				t.Fatalf("client %v, server %v; want ok=%v", cerr, serr, tc.ok)
			}
		})
	}
}

func TestConnDevice(t *testing.T) {
	ca := newCA(t)
	rev := &revokedSet{}
	rev.revoke("box-gone")
	v := ca.Verifier(rev)
	sc, _ := ca.IssueServer([]string{"127.0.0.1"}, time.Hour)
	cfg := ServerConfig(ServerOptions{Certificate: sc, Devices: ca.Verifier(nil)}) // revocation checked by ConnDevice only
	tests := []struct {
		name   string
		certs  []tls.Certificate
		wantID string
		wantOK bool
		err    error
	}{
		{"device", []tls.Certificate{deviceCert(t, ca, "box-1", time.Hour)}, "box-1", true, nil},
		{"no certificate", nil, "", false, nil},
		{"revoked", []tls.Certificate{deviceCert(t, ca, "box-gone", time.Hour)}, "", false, ErrRevoked},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", Certificates: tc.certs})
				if err == nil {
					io.ReadAll(c)
					c.Close()
				}
			}()
			c, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, ok, err := v.ConnDevice(context.Background(), c); ok || err != nil {
				t.Fatalf("plain conn: %v %v", ok, err)
			}
			conn := tls.Server(c, cfg)
			if err := conn.Handshake(); err != nil {
				t.Fatal(err)
			}
			id, ok, err := v.ConnDevice(context.Background(), conn)
			if id != tc.wantID || ok != tc.wantOK || !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("got %q %v %v; want %q %v %v", id, ok, err, tc.wantID, tc.wantOK, tc.err)
			}
		})
	}
}
