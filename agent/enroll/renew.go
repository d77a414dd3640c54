package enroll

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"sync"
	"time"

	"edgefleet/fleet/enroll/enrollapi"
)

// RenewerOptions configures NewRenewer. Server and Paths are required.
type RenewerOptions struct {
	// Server is fleetd's HTTPS base URL, e.g. https://fleet:8443.
	Server string
	Paths  Paths
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// MinBackoff and MaxBackoff bound the wait between failed renewals
	// (doubling, with jitter, never past half the time left); 0 means 1s
	// and 5m.
	MinBackoff, MaxBackoff time.Duration
	// Log receives renewals and failures; nil means slog.Default().
	Log *slog.Logger
	// OnRenew, if set, is called after each renewal with the new
	// certificate (for metrics and tests).
	OnRenew func(*x509.Certificate)
}

// Renewer keeps the device certificate fresh: Run renews it over mutual
// TLS at two thirds of its lifetime, writes it to Paths.Cert, and from then
// on GetClientCertificate hands out the new one, so new connections of
// the MQTT link and the downloader use it while live ones carry on. The
// key is kept. It is safe for concurrent use.
type Renewer struct {
	opts   RenewerOptions
	client *http.Client

	mu    sync.RWMutex
	cert  *tls.Certificate // Leaf set
	roots *x509.CertPool
	caPEM []byte
}

// NewRenewer loads the key, certificate and CA bundle from o.Paths.
func NewRenewer(o RenewerOptions) (*Renewer, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 5 * time.Minute
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	cert, err := tls.LoadX509KeyPair(o.Paths.Cert, o.Paths.Key)
	if err != nil {
		return nil, fmt.Errorf("enroll: load device certificate: %w", err)
	}
	caPEM, err := os.ReadFile(o.Paths.CA)
	if err != nil {
		return nil, fmt.Errorf("enroll: load fleet CA: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("enroll: load fleet CA %s: no PEM certificates", o.Paths.CA)
	}
	r := &Renewer{opts: o, cert: &cert, roots: roots, caPEM: caPEM}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = r.ClientTLS()
	// A kept-alive connection would present the certificate it was opened
	// with, which may have expired by the next renewal.
	tr.DisableKeepAlives = true
	r.client = &http.Client{Transport: tr, Timeout: time.Minute}
	return r, nil
}

// GetClientCertificate returns the current certificate; it is the
// tls.Config hook of every connection the agent makes to the fleet.
func (r *Renewer) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.cert, nil
}

// ClientTLS returns a client TLS configuration for fleet connections
// (MQTT over TLS, HTTPS downloads): it trusts the fleet CA bundle (as
// loaded or last renewed when it is called) and presents the current
// certificate at every handshake.
func (r *Renewer) ClientTLS() *tls.Config {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return &tls.Config{
		MinVersion:           tls.VersionTLS12,
		RootCAs:              r.roots,
		GetClientCertificate: r.GetClientCertificate,
	}
}

// Leaf returns the current certificate.
func (r *Renewer) Leaf() *x509.Certificate {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.cert.Leaf
}

// DeviceID is the device the certificate names (the MQTT username).
func (r *Renewer) DeviceID() string { return r.Leaf().Subject.CommonName }

// RenewAt is when the current certificate is due: two thirds into its
// lifetime.
func (r *Renewer) RenewAt() time.Time {
	leaf := r.Leaf()
	return leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) * 2 / 3)
}

// Renew renews the certificate now, over mutual TLS with the current one.
func (r *Renewer) Renew(ctx context.Context) error {
	r.mu.RLock()
	cur := r.cert
	r.mu.RUnlock()
	key := cur.PrivateKey.(crypto.Signer)
	id := cur.Leaf.Subject.CommonName
	csr, err := makeCSR(key, id)
	if err != nil {
		return err
	}
	resp, err := post(ctx, r.client, r.opts.Server, enrollapi.PathRenew, enrollapi.Request{CSR: csr})
	if err != nil {
		return err
	}
	leaf, err := checkIssued(resp, key, id)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM([]byte(resp.CA))
	if !bytes.Equal([]byte(resp.CA), r.caPEM) {
		if err := writeFile(r.opts.Paths.CA, []byte(resp.CA), 0o644); err != nil {
			return err
		}
	}
	if err := writeFile(r.opts.Paths.Cert, []byte(resp.Certificate), 0o644); err != nil {
		return err
	}
	r.mu.Lock()
	r.cert = &tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}
	r.roots, r.caPEM = roots, []byte(resp.CA)
	r.mu.Unlock()
	r.opts.Log.Info("enroll: certificate renewed", "device_id", id,
		"serial", leaf.SerialNumber.Text(16), "not_after", leaf.NotAfter)
	if r.opts.OnRenew != nil {
		r.opts.OnRenew(leaf)
	}
	return nil
}

// Run renews the certificate whenever it is due until ctx ends (returning
// nil). Failures are retried with backoff. It returns an error wrapping
// ErrExpired once the certificate has expired unrenewed, and a
// *RefusedError when fleetd refuses for good (e.g. the device is revoked).
func (r *Renewer) Run(ctx context.Context) error {
	backoff := r.opts.MinBackoff
	for {
		// Wake at least every recheck: a box without a real-time clock
		// may start with a wrong time and have it corrected by NTP later.
		for d := r.RenewAt().Sub(r.opts.Now()); d > 0; d = r.RenewAt().Sub(r.opts.Now()) {
			if !r.sleep(ctx, min(d, recheck)) {
				return nil
			}
		}
		for {
			err := r.Renew(ctx)
			if err == nil {
				backoff = r.opts.MinBackoff
				break
			}
			if ctx.Err() != nil {
				return nil
			}
			var refused *RefusedError
			if errors.As(err, &refused) && refused.Permanent() {
				return err
			}
			left := r.Leaf().NotAfter.Sub(r.opts.Now())
			if left <= 0 {
				return fmt.Errorf("%w at %s (last error: %v)", ErrExpired, r.Leaf().NotAfter.Format(time.RFC3339), err)
			}
			wait := jitter(min(backoff, left/2))
			r.opts.Log.Warn("enroll: renewal failed", "device_id", r.DeviceID(), "retry_in", wait, "err", err)
			if !r.sleep(ctx, wait) {
				return nil
			}
			backoff = min(backoff*2, r.opts.MaxBackoff)
		}
	}
}

// recheck bounds how long Run sleeps before looking at the clock again.
const recheck = 10 * time.Minute

// sleep waits d, or less when ctx ends, reporting whether ctx is still live.
func (r *Renewer) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(max(d, 0))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// jitter spreads d over [0.8d, 1.2d) so that a fleet does not renew in step.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}
