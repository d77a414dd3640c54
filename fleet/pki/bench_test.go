package pki

import (
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"
)

// BenchmarkMTLSHandshake measures full mutual-TLS handshakes over loopback
// (no session resumption): the client presents a P-256 device certificate
// from the CA, the server verifies it with ServerConfig's checks, including
// the revocation lookup, and answers one byte once it has.
func BenchmarkMTLSHandshake(b *testing.B) {
	ca := newCA(b)
	sc, err := ca.IssueServer([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	cfg := ServerConfig(ServerOptions{Certificate: sc, Devices: ca.Verifier(&revokedSet{}), RequireDevice: true})
	ccfg := &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", Certificates: []tls.Certificate{deviceCert(b, ca, "box-1", time.Hour)}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				sc := tls.Server(c, cfg)
				if sc.Handshake() == nil {
					sc.Write([]byte{1}) // tells the client its certificate passed
				}
				sc.Close()
			}()
		}
	}()
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		c, err := tls.Dial("tcp", ln.Addr().String(), ccfg)
		if err != nil {
			b.Fatal(err)
		}
		_, err = io.ReadFull(c, make([]byte, 1))
		c.Close()
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "handshakes/s")
}
