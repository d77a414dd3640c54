package pki

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"edgefleet/fleet/api"
)

// Limits and defaults of issued certificates.
const (
	// MaxCSRSize caps a certificate request, PEM or DER, in bytes.
	MaxCSRSize = 16 << 10
	// DefaultDeviceLifetime is a device certificate's lifetime when Issue
	// is given zero.
	DefaultDeviceLifetime = 90 * 24 * time.Hour
	// DefaultServerLifetime is a server certificate's lifetime when
	// IssueServer is given zero.
	DefaultServerLifetime = 365 * 24 * time.Hour
	// maxBackdate bounds how far NotBefore is set before the issue time,
	// for clocks a little behind; it is at most a tenth of the lifetime so
	// that a certificate of seconds still renews at two thirds of it.
	maxBackdate = 5 * time.Minute
)

// ParseCSR parses a certificate request, PEM ("CERTIFICATE REQUEST") or
// DER, of at most MaxCSRSize bytes, checks its signature and that its key
// is ECDSA P-256 or P-384 or ed25519. Errors wrap ErrBadCSR.
func ParseCSR(data []byte) (*x509.CertificateRequest, error) {
	if len(data) > MaxCSRSize {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrBadCSR, len(data), MaxCSRSize)
	}
	der := data
	if block, rest := pem.Decode(data); block != nil {
		if block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST" {
			return nil, fmt.Errorf("%w: PEM block %q", ErrBadCSR, block.Type)
		}
		if len(bytes.TrimSpace(rest)) != 0 {
			return nil, fmt.Errorf("%w: data after the PEM block", ErrBadCSR)
		}
		der = block.Bytes
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCSR, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: signature: %v", ErrBadCSR, err)
	}
	switch k := csr.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return nil, fmt.Errorf("%w: ECDSA curve %s (P-256 or P-384)", ErrBadCSR, k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	default:
		return nil, fmt.Errorf("%w: key type %T (ECDSA P-256 or ed25519)", ErrBadCSR, k)
	}
	return csr, nil
}

// CheckIdentity checks that a request asks for deviceID and nothing else:
// its common name is deviceID (or empty: the CA sets the subject anyway) and
// it has no subject alternative names other than deviceID as a DNS name.
// Errors wrap ErrIdentity.
func CheckIdentity(csr *x509.CertificateRequest, deviceID string) error {
	if cn := csr.Subject.CommonName; cn != "" && cn != deviceID {
		return fmt.Errorf("%w: common name %q, device is %q", ErrIdentity, cn, deviceID)
	}
	for _, n := range csr.DNSNames {
		if n != deviceID {
			return fmt.Errorf("%w: DNS name %q", ErrIdentity, n)
		}
	}
	if len(csr.IPAddresses)+len(csr.EmailAddresses)+len(csr.URIs) > 0 {
		return fmt.Errorf("%w: IP, email or URI names", ErrIdentity)
	}
	return nil
}

// Issue signs a device certificate for deviceID from a request (PEM or DER;
// see ParseCSR and CheckIdentity). The certificate's subject common name is
// deviceID, it is valid for client authentication only, for lifetime (0
// means DefaultDeviceLifetime; never past the CA's own expiry). Whatever
// else the request asks for (extensions, other subject fields) is ignored.
func (c *CA) Issue(ctx context.Context, csrData []byte, deviceID string, lifetime time.Duration) (*x509.Certificate, error) {
	if err := api.ValidateID(deviceID); err != nil {
		return nil, fmt.Errorf("pki: issue: device id: %w", err)
	}
	csr, err := ParseCSR(csrData)
	if err != nil {
		return nil, err
	}
	if err := CheckIdentity(csr, deviceID); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("pki: issue: %w", err)
	}
	if lifetime <= 0 {
		lifetime = DefaultDeviceLifetime
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: deviceID},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	return c.sign(tmpl, csr.PublicKey, lifetime)
}

func (c *CA) sign(tmpl *x509.Certificate, pub any, lifetime time.Duration) (*x509.Certificate, error) {
	now := c.now()
	tmpl.SerialNumber = randomSerial()
	tmpl.NotBefore = now.Add(-min(maxBackdate, lifetime/10))
	tmpl.NotAfter = now.Add(lifetime)
	if tmpl.NotAfter.After(c.cert.NotAfter) {
		tmpl.NotAfter = c.cert.NotAfter
	}
	tmpl.BasicConstraintsValid = true
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, pub, c.key)
	if err != nil {
		return nil, fmt.Errorf("pki: sign: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: sign: %w", err)
	}
	return cert, nil
}

// IssueServer makes a new P-256 key and a server certificate for hosts
// (DNS names or IP addresses) signed by the CA, valid for lifetime (0 means
// DefaultServerLifetime), for fleetd's HTTPS and MQTT TLS listeners. The
// certificate is for server authentication only, so it can never pass as a
// device.
func (c *CA) IssueServer(hosts []string, lifetime time.Duration) (tls.Certificate, error) {
	if len(hosts) == 0 {
		return tls.Certificate{}, errors.New("pki: issue server: no host names")
	}
	if lifetime <= 0 {
		lifetime = DefaultServerLifetime
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: hosts[0]},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: issue server: %w", err)
	}
	cert, err := c.sign(tmpl, key.Public(), lifetime)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}, nil
}

// ServerCertificate is a tls.Config.GetCertificate hook that serves a
// server certificate issued by the CA for fixed hosts and issues a new one
// once two thirds of the current one's lifetime have passed, so a fleetd
// that runs for a year never serves an expired certificate. It is safe for
// concurrent use.
type ServerCertificate struct {
	ca       *CA
	hosts    []string
	lifetime time.Duration

	mu   sync.Mutex
	cert *tls.Certificate
}

// ServerCertificate issues the first certificate for hosts (see
// IssueServer) and returns the hook that keeps it fresh.
func (c *CA) ServerCertificate(hosts []string, lifetime time.Duration) (*ServerCertificate, error) {
	cert, err := c.IssueServer(hosts, lifetime)
	if err != nil {
		return nil, err
	}
	return &ServerCertificate{ca: c, hosts: slices.Clone(hosts), lifetime: lifetime, cert: &cert}, nil
}

// GetCertificate implements tls.Config.GetCertificate. If reissuing fails,
// the current certificate is served while it is valid.
func (s *ServerCertificate) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	leaf := s.cert.Leaf
	due := leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) * 2 / 3)
	if s.ca.now().Before(due) {
		return s.cert, nil
	}
	cert, err := s.ca.IssueServer(s.hosts, s.lifetime)
	if err != nil {
		if s.ca.now().Before(leaf.NotAfter) {
			return s.cert, nil
		}
		return nil, err
	}
	s.cert = &cert
	return s.cert, nil
}
