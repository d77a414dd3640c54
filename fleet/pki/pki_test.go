package pki

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// newCA opens a fresh CA in a temporary directory.
func newCA(t testing.TB) *CA {
	t.Helper()
	ca, err := OpenCA(filepath.Join(t.TempDir(), "ca"))
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// csrFor makes a key of the given kind and a PEM CSR from tmpl signed by it.
func csrFor(t testing.TB, kind string, tmpl *x509.CertificateRequest) (crypto.Signer, []byte) {
	t.Helper()
	var key crypto.Signer
	var err error
	switch kind {
	case "p256":
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "p384":
		key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "p521":
		key, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "ed25519":
		_, key, err = ed25519.GenerateKey(rand.Reader)
	case "rsa":
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		t.Fatalf("key kind %q", kind)
	}
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func cn(name string) *x509.CertificateRequest {
	return &x509.CertificateRequest{Subject: pkix.Name{CommonName: name}}
}

// revokedSet is an in-memory Revocations for tests.
type revokedSet struct {
	mu  sync.Mutex
	ids map[string]bool
}

func (r *revokedSet) IsRevoked(_ context.Context, id string) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ids[id], nil
}

func (r *revokedSet) revoke(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ids == nil {
		r.ids = map[string]bool{}
	}
	r.ids[id] = true
}

func TestOpenCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	ca, err := OpenCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v; want mode 0600", st.Mode(), err)
	}
	if _, ok := ca.Certificate().PublicKey.(*ecdsa.PublicKey); !ok || !ca.Certificate().IsCA {
		t.Fatalf("CA certificate: key %T, IsCA %v", ca.Certificate().PublicKey, ca.Certificate().IsCA)
	}
	again, err := OpenCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Certificate().Equal(ca.Certificate()) {
		t.Fatal("second OpenCA made another CA")
	}

	// A crash between writing the key and the certificate: the key stays.
	os.Remove(filepath.Join(dir, CertFile))
	re, err := OpenCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !publicKeyEqual(re.Certificate().PublicKey, ca.key.Public()) {
		t.Fatal("recreated certificate has another key")
	}

	os.Chmod(filepath.Join(dir, KeyFile), 0o640)
	if _, err := OpenCA(dir); err == nil || !strings.Contains(err.Error(), "too open") {
		t.Fatalf("group-readable key: %v", err)
	}
	os.Remove(filepath.Join(dir, KeyFile))
	if _, err := OpenCA(dir); err == nil || !strings.Contains(err.Error(), "does not") {
		t.Fatalf("certificate without key: %v", err)
	}
}

// writeCA writes a self-signed CA with key to dir as cert.pem and key.pem.
func writeCA(t *testing.T, dir string, key crypto.Signer, isCA bool) (string, string) {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(), Subject: pkix.Name{CommonName: "given"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: isCA, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cf, kf := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(cf, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(kf, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	return cf, kf
}

func TestLoadCA(t *testing.T) {
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)

	t.Run("ed25519", func(t *testing.T) {
		ca, err := LoadCA(writeCA(t, t.TempDir(), edKey, true))
		if err != nil {
			t.Fatal(err)
		}
		_, csr := csrFor(t, "p256", cn("box-1"))
		c, err := ca.Issue(context.Background(), csr, "box-1", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if id, err := ca.Verifier(nil).VerifyDevice(context.Background(), []*x509.Certificate{c}); err != nil || id != "box-1" {
			t.Fatalf("verify: %q, %v", id, err)
		}
		if !c.NotAfter.Equal(ca.Certificate().NotAfter) {
			t.Fatalf("lifetime not capped at the CA's: %v, CA %v", c.NotAfter, ca.Certificate().NotAfter)
		}
	})
	t.Run("key mismatch", func(t *testing.T) {
		dir := t.TempDir()
		cf, _ := writeCA(t, dir, ecKey, true)
		_, kf := writeCA(t, t.TempDir(), otherKey, true)
		if _, err := LoadCA(cf, kf); err == nil || !strings.Contains(err.Error(), "does not match") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("not a CA", func(t *testing.T) {
		if _, err := LoadCA(writeCA(t, t.TempDir(), ecKey, false)); err == nil || !strings.Contains(err.Error(), "not a CA") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("world-readable key", func(t *testing.T) {
		cf, kf := writeCA(t, t.TempDir(), ecKey, true)
		os.Chmod(kf, 0o644)
		if _, err := LoadCA(cf, kf); err == nil || !strings.Contains(err.Error(), "too open") {
			t.Fatalf("got %v", err)
		}
	})
}

func TestIssue(t *testing.T) {
	ca := newCA(t)
	u, _ := url.Parse("spiffe://x/y")
	tests := []struct {
		name    string
		kind    string
		tmpl    *x509.CertificateRequest
		mangle  func([]byte) []byte
		wantErr error
	}{
		{"p256", "p256", cn("box-17"), nil, nil},
		{"p384", "p384", cn("box-17"), nil, nil},
		{"ed25519", "ed25519", cn("box-17"), nil, nil},
		{"empty common name", "p256", cn(""), nil, nil},
		{"own name as DNS name", "p256", &x509.CertificateRequest{Subject: pkix.Name{CommonName: "box-17"}, DNSNames: []string{"box-17"}}, nil, nil},
		{"DER", "p256", cn("box-17"), func(b []byte) []byte { p, _ := pem.Decode(b); return p.Bytes }, nil},
		{"other common name", "p256", cn("box-18"), nil, ErrIdentity},
		{"extra DNS name", "p256", &x509.CertificateRequest{Subject: pkix.Name{CommonName: "box-17"}, DNSNames: []string{"fleet.example"}}, nil, ErrIdentity},
		{"IP name", "p256", &x509.CertificateRequest{Subject: pkix.Name{CommonName: "box-17"}, IPAddresses: []net.IP{net.IPv4(10, 0, 0, 1)}}, nil, ErrIdentity},
		{"URI name", "p256", &x509.CertificateRequest{Subject: pkix.Name{CommonName: "box-17"}, URIs: []*url.URL{u}}, nil, ErrIdentity},
		{"RSA key", "rsa", cn("box-17"), nil, ErrBadCSR},
		{"P-521 key", "p521", cn("box-17"), nil, ErrBadCSR},
		{"bad signature", "p256", cn("box-17"), func(b []byte) []byte {
			p, _ := pem.Decode(b)
			p.Bytes[len(p.Bytes)-3] ^= 0xff
			return pem.EncodeToMemory(p)
		}, ErrBadCSR},
		{"truncated", "p256", cn("box-17"), func(b []byte) []byte { p, _ := pem.Decode(b); return p.Bytes[:40] }, ErrBadCSR},
		{"certificate instead", "p256", cn("box-17"), func(b []byte) []byte {
			return CertPEM(ca.Certificate())
		}, ErrBadCSR},
		{"trailing data", "p256", cn("box-17"), func(b []byte) []byte { return append(b, "more"...) }, ErrBadCSR},
		{"too large", "p256", cn("box-17"), func(b []byte) []byte { return append(b, bytes.Repeat([]byte("\n"), MaxCSRSize)...) }, ErrBadCSR},
		{"garbage", "p256", cn("box-17"), func([]byte) []byte { return []byte("hello") }, ErrBadCSR},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key, csr := csrFor(t, tc.kind, tc.tmpl)
			if tc.mangle != nil {
				csr = tc.mangle(csr)
			}
			c, err := ca.Issue(context.Background(), csr, "box-17", 2*time.Hour)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if c.Subject.CommonName != "box-17" || len(c.DNSNames) != 0 || c.IsCA {
				t.Fatalf("subject %v, names %v, IsCA %v", c.Subject, c.DNSNames, c.IsCA)
			}
			if len(c.ExtKeyUsage) != 1 || c.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
				t.Fatalf("ext key usage %v", c.ExtKeyUsage)
			}
			if !publicKeyEqual(c.PublicKey, key.Public()) {
				t.Fatal("certificate for another key")
			}
			if d := c.NotAfter.Sub(c.NotBefore); d < 2*time.Hour || d > 2*time.Hour+6*time.Minute {
				t.Fatalf("validity %v", d)
			}
			if err := c.CheckSignatureFrom(ca.Certificate()); err != nil {
				t.Fatal(err)
			}
		})
	}
	_, csr := csrFor(t, "p256", cn("bad id"))
	if _, err := ca.Issue(context.Background(), csr, "bad id", 0); err == nil {
		t.Fatal("issued for an invalid device id")
	}
}

func TestIssueShortLifetime(t *testing.T) {
	// NotBefore is backdated by at most a tenth of the lifetime, so a
	// certificate of seconds still has two thirds of it ahead.
	ca := newCA(t)
	_, csr := csrFor(t, "p256", cn("box-1"))
	c, err := ca.Issue(context.Background(), csr, "box-1", 6*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if d := c.NotAfter.Sub(c.NotBefore); d > 8*time.Second {
		t.Fatalf("validity %v for a lifetime of 6s", d)
	}
}

func TestIssueServer(t *testing.T) {
	ca := newCA(t)
	sc, err := ca.IssueServer([]string{"fleet.example", "127.0.0.1"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "fleet.example"}); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.IssueServer(nil, 0); err == nil {
		t.Fatal("issued a server certificate without names")
	}
}

func TestServerCertificate(t *testing.T) {
	ca := newCA(t)
	var mu sync.Mutex
	now := time.Now()
	clocked := ca.WithClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	sc, err := clocked.ServerCertificate([]string{"fleet.example"}, 90*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := sc.GetCertificate(nil)
	advance(30 * time.Minute)
	if c, _ := sc.GetCertificate(nil); c != first {
		t.Fatal("reissued before two thirds of the lifetime")
	}
	advance(31 * time.Minute)
	second, err := sc.GetCertificate(nil)
	if err != nil || second == first || !second.Leaf.NotAfter.After(first.Leaf.NotAfter) {
		t.Fatalf("not reissued at two thirds: %v", err)
	}
	if second.Leaf.DNSNames[0] != "fleet.example" {
		t.Fatalf("reissued for %v", second.Leaf.DNSNames)
	}
}
