package pki

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"time"

	"edgefleet/fleet/api"
)

// Revocations says whether a device is revoked. fleet/enroll's stores
// implement it. Implementations must be safe for concurrent use.
type Revocations interface {
	IsRevoked(ctx context.Context, deviceID string) (bool, error)
}

// handshakeTimeout bounds a revocation lookup made inside a TLS handshake,
// which has no context of its own.
const handshakeTimeout = 5 * time.Second

// Verifier checks device certificates: chained to the fleet CA, within
// their lifetime, issued for client authentication, naming a valid device
// id that is not revoked. It is safe for concurrent use.
type Verifier struct {
	roots   *x509.CertPool
	revoked Revocations
	now     func() time.Time
}

// Verifier returns a Verifier trusting this CA, consulting revoked (nil:
// no device is revoked).
func (c *CA) Verifier(revoked Revocations) *Verifier {
	return &Verifier{roots: c.pool, revoked: revoked, now: c.now}
}

// NewVerifier returns a Verifier trusting roots, for a process that has
// the CA certificate but not its key.
func NewVerifier(roots *x509.CertPool, revoked Revocations) *Verifier {
	return &Verifier{roots: roots, revoked: revoked, now: time.Now}
}

// VerifyDevice verifies a device's certificate chain, leaf first, and
// returns the device id it proves. Errors wrap ErrNoCertificate,
// ErrUntrusted or ErrRevoked, or are the revocation store's.
func (v *Verifier) VerifyDevice(ctx context.Context, certs []*x509.Certificate) (string, error) {
	if len(certs) == 0 {
		return "", ErrNoCertificate
	}
	leaf := certs[0]
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots:         v.roots,
		Intermediates: inter,
		CurrentTime:   v.now(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrUntrusted, err)
	}
	id := leaf.Subject.CommonName
	if leaf.IsCA || api.ValidateID(id) != nil {
		return "", fmt.Errorf("%w: subject %q is not a device", ErrUntrusted, id)
	}
	if v.revoked != nil {
		revoked, err := v.revoked.IsRevoked(ctx, id)
		if err != nil {
			return "", fmt.Errorf("pki: verify device %s: %w", id, err)
		}
		if revoked {
			return "", fmt.Errorf("%w: %s", ErrRevoked, id)
		}
	}
	return id, nil
}

// Device returns the device id proved by the client certificate of a TLS
// connection (an http.Request's TLS field, or a broker connection's state),
// verifying it again, so a device revoked since the handshake is refused.
func (v *Verifier) Device(ctx context.Context, cs *tls.ConnectionState) (string, error) {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return "", ErrNoCertificate
	}
	return v.VerifyDevice(ctx, cs.PeerCertificates)
}

// VerifyConnection is a tls.Config.VerifyConnection hook for server
// listeners: a client that presents a certificate must present a valid,
// unrevoked device certificate; a client without one passes (whether that
// is allowed is ClientAuth's business and the handler's).
func (v *Verifier) VerifyConnection(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	defer cancel()
	_, err := v.VerifyDevice(ctx, cs.PeerCertificates)
	return err
}

// ConnDevice returns the device proved by a connection's client
// certificate, for listeners that see the net.Conn (the MQTT broker's auth
// hook). ok is false, with no error, for a plain connection or a TLS one
// without a client certificate; the caller decides whether those may log
// in otherwise (a password). The handshake must be complete.
func (v *Verifier) ConnDevice(ctx context.Context, conn net.Conn) (id string, ok bool, err error) {
	tc, isTLS := conn.(*tls.Conn)
	if !isTLS {
		return "", false, nil
	}
	cs := tc.ConnectionState()
	if !cs.HandshakeComplete {
		return "", false, fmt.Errorf("%w: handshake not complete", ErrNoCertificate)
	}
	if len(cs.PeerCertificates) == 0 {
		return "", false, nil
	}
	id, err = v.VerifyDevice(ctx, cs.PeerCertificates)
	return id, err == nil, err
}
