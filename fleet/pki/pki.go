// Package pki is the fleet's certificate authority: it issues each device a
// short-lived client certificate whose subject is the device id, issues
// fleetd's own TLS server certificates, and verifies device certificates
// presented on fleetd's TLS listeners (chain, lifetime, key usage,
// revocation), giving the device id they prove.
//
// The CA key is ECDSA P-256 (created by OpenCA) or, when given as files to
// LoadCA, ECDSA or ed25519. Only the standard library's crypto is used.
package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"edgefleet/internal/atomicfile"
)

// Errors returned by the CA and the Verifier. Each is wrapped with detail.
var (
	// ErrBadCSR: the certificate request is malformed, too large, not
	// self-signed correctly, or uses a key type the fleet does not accept.
	ErrBadCSR = errors.New("pki: bad certificate request")
	// ErrIdentity: the request asks for a name other than the device id
	// (another common name, or subject alternative names).
	ErrIdentity = errors.New("pki: identity not allowed")
	// ErrNoCertificate: the peer presented no client certificate.
	ErrNoCertificate = errors.New("pki: no client certificate")
	// ErrUntrusted: the certificate does not chain to the fleet CA, has
	// expired, is not yet valid, or is not a device certificate.
	ErrUntrusted = errors.New("pki: certificate not trusted")
	// ErrRevoked: the device the certificate names is revoked.
	ErrRevoked = errors.New("pki: device revoked")
)

// File names OpenCA uses inside its directory.
const (
	CertFile = "ca.pem"
	KeyFile  = "ca-key.pem"
)

// caLifetime is how long a CA created by OpenCA is valid.
const caLifetime = 10 * 365 * 24 * time.Hour

// CA is the fleet certificate authority. It is safe for concurrent use.
type CA struct {
	cert   *x509.Certificate
	key    crypto.Signer
	bundle []byte // PEM of the CA certificate(s), what devices trust
	pool   *x509.CertPool
	now    func() time.Time
}

// OpenCA opens the CA kept in dir (CertFile and KeyFile), creating dir and
// a new P-256 CA on first start. The key file is written 0600 before the
// certificate; a key without a certificate (a crash between the two writes)
// gets a new self-signed certificate. A key file readable by group or others
// is refused.
func OpenCA(dir string) (*CA, error) {
	certPath, keyPath := filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile)
	_, kerr := os.Stat(keyPath)
	_, cerr := os.Stat(certPath)
	switch {
	case errors.Is(kerr, fs.ErrNotExist) && errors.Is(cerr, fs.ErrNotExist):
		if err := createCA(dir, certPath, keyPath); err != nil {
			return nil, err
		}
	case errors.Is(kerr, fs.ErrNotExist):
		return nil, fmt.Errorf("pki: open ca: %s exists but its key %s does not", certPath, keyPath)
	case errors.Is(cerr, fs.ErrNotExist):
		if err := recreateCert(certPath, keyPath); err != nil {
			return nil, err
		}
	case kerr != nil:
		return nil, fmt.Errorf("pki: open ca: %w", kerr)
	case cerr != nil:
		return nil, fmt.Errorf("pki: open ca: %w", cerr)
	}
	return loadCA(certPath, keyPath, 0o077)
}

// LoadCA loads a CA given as files: a PEM certificate file (the signing CA
// certificate first; any further certificates are added to the bundle
// devices trust) and its PEM private key (PKCS#8 or SEC 1, ECDSA or
// ed25519). A key file that others can read or write is refused.
func LoadCA(certFile, keyFile string) (*CA, error) {
	return loadCA(certFile, keyFile, 0o007)
}

func createCA(dir, certPath, keyPath string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("pki: create ca: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("pki: create ca: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("pki: create ca: %w", err)
	}
	if err := atomicfile.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return fmt.Errorf("pki: create ca: %w", err)
	}
	return writeSelfSigned(certPath, key)
}

func recreateCert(certPath, keyPath string) error {
	key, err := readKey(keyPath, 0o077)
	if err != nil {
		return err
	}
	return writeSelfSigned(certPath, key)
}

func writeSelfSigned(certPath string, key crypto.Signer) error {
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: "edgefleet fleet CA", Organization: []string{"edgefleet"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caLifetime),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return fmt.Errorf("pki: create ca certificate: %w", err)
	}
	if err := atomicfile.WriteFile(certPath, CertPEM(&x509.Certificate{Raw: der}), 0o644); err != nil {
		return fmt.Errorf("pki: create ca: %w", err)
	}
	return nil
}

func loadCA(certFile, keyFile string, permMask fs.FileMode) (*CA, error) {
	key, err := readKey(keyFile, permMask)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("pki: load ca: %w", err)
	}
	certs, err := parseCertsPEM(data)
	if err != nil {
		return nil, fmt.Errorf("pki: load ca %s: %w", certFile, err)
	}
	ca := &CA{cert: certs[0], key: key, pool: x509.NewCertPool(), now: time.Now}
	if !ca.cert.IsCA || !ca.cert.BasicConstraintsValid {
		return nil, fmt.Errorf("pki: load ca %s: the first certificate is not a CA", certFile)
	}
	if !publicKeyEqual(ca.cert.PublicKey, key.Public()) {
		return nil, fmt.Errorf("pki: load ca: key %s does not match certificate %s", keyFile, certFile)
	}
	var bundle bytes.Buffer
	for _, c := range certs {
		ca.pool.AddCert(c)
		bundle.Write(CertPEM(c))
	}
	ca.bundle = bundle.Bytes()
	return ca, nil
}

func readKey(path string, permMask fs.FileMode) (crypto.Signer, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("pki: load ca key: %w", err)
	}
	if p := st.Mode().Perm(); p&permMask != 0 {
		return nil, fmt.Errorf("pki: load ca key %s: mode %#o is too open (chmod 600)", path, p)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pki: load ca key: %w", err)
	}
	key, err := ParseKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("pki: load ca key %s: %w", path, err)
	}
	return key, nil
}

// ParseKeyPEM parses a PEM private key: PKCS#8 ("PRIVATE KEY", ECDSA or
// ed25519) or SEC 1 ("EC PRIVATE KEY").
func ParseKeyPEM(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM private key")
	}
	switch block.Type {
	case "EC PRIVATE KEY":
		return x509.ParseECPrivateKey(block.Bytes)
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, err
		}
		switch k := k.(type) {
		case *ecdsa.PrivateKey:
			return k, nil
		case ed25519.PrivateKey:
			return k, nil
		}
		return nil, fmt.Errorf("key type %T not supported (ECDSA or ed25519)", k)
	}
	return nil, fmt.Errorf("PEM block %q is not a private key", block.Type)
}

func parseCertsPEM(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificates")
	}
	return certs, nil
}

// CertPEM encodes a certificate as PEM.
func CertPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// Certificate returns the CA certificate that signs.
func (c *CA) Certificate() *x509.Certificate { return c.cert }

// Bundle returns the PEM CA bundle that devices and clients trust.
func (c *CA) Bundle() []byte { return bytes.Clone(c.bundle) }

// Pool returns a certificate pool holding the CA bundle, for ClientCAs or
// RootCAs. The pool is shared: do not add to it.
func (c *CA) Pool() *x509.CertPool { return c.pool }

// WithClock returns a CA that issues and verifies as if now() were the
// time, for tests that need certificates from the past or the future.
func (c *CA) WithClock(now func() time.Time) *CA {
	cp := *c
	cp.now = now
	return &cp
}

func randomSerial() *big.Int {
	// 128 random bits, positive: RFC 5280 allows at most 20 octets.
	b := make([]byte, 16)
	rand.Read(b)
	b[0] &= 0x7f
	b[0] |= 0x40
	return new(big.Int).SetBytes(b)
}

func publicKeyEqual(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}
