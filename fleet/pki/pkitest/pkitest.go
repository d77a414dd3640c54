// Package pkitest makes fleet CAs and device certificates for tests: a CA
// in a temporary directory, and a device's key and certificate issued the
// way enrollment issues them, ready for a tls.Config.
package pkitest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"testing"
	"time"

	"edgefleet/fleet/pki"
)

// NewCA opens a new fleet CA in a temporary directory.
func NewCA(t testing.TB) *pki.CA {
	t.Helper()
	ca, err := pki.OpenCA(t.TempDir())
	if err != nil {
		t.Fatalf("pkitest: %v", err)
	}
	return ca
}

// Device issues a certificate for device id from ca, valid for lifetime
// (0: pki.DefaultDeviceLifetime) from ca's clock, with a new P-256 key.
func Device(t testing.TB, ca *pki.CA, id string, lifetime time.Duration) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("pkitest: %v", err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: id}}, key)
	if err != nil {
		t.Fatalf("pkitest: %v", err)
	}
	csr := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	cert, err := ca.Issue(context.Background(), csr, id, lifetime)
	if err != nil {
		t.Fatalf("pkitest: issue %s: %v", id, err)
	}
	return tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
}

// Client is a client TLS configuration trusting ca and presenting cert.
func Client(ca *pki.CA, cert tls.Certificate) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: ca.Pool(), Certificates: []tls.Certificate{cert}}
}

// Server is a server TLS configuration for 127.0.0.1 and localhost, issued
// by ca, that verifies device certificates against ca with revocations
// (nil: none), requiring one if requireDevice.
func Server(t testing.TB, ca *pki.CA, revoked pki.Revocations, requireDevice bool) *tls.Config {
	t.Helper()
	cert, err := ca.IssueServer([]string{"127.0.0.1", "localhost"}, 0)
	if err != nil {
		t.Fatalf("pkitest: %v", err)
	}
	return pki.ServerConfig(pki.ServerOptions{Certificate: cert, Devices: ca.Verifier(revoked), RequireDevice: requireDevice})
}
