package runtime

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"time"

	"edgefleet/agent/enroll"
)

// openIdentity starts the certificate renewer when the device has a fleet
// certificate (fleet.cert_file, fleet.key_file, fleet.ca_file) and a
// server to renew it at (Config.RenewServer). The certificate must name
// device_id.
func (r *Runtime) openIdentity() error {
	f := r.cfg.Fleet
	server := r.cfg.RenewServer()
	if f.CertFile == "" || f.CAFile == "" || server == "" {
		if f.CertFile != "" {
			r.log.Warn("device certificate will not be renewed: set fleet.server and fleet.ca_file")
		}
		return nil
	}
	ren, err := enroll.NewRenewer(enroll.RenewerOptions{
		Server: server,
		Paths:  enroll.Paths{Key: f.KeyFile, Cert: f.CertFile, CA: f.CAFile},
		Log:    r.log.With("component", "enroll"),
		OnRenew: func(c *x509.Certificate) {
			// Kept-alive download connections present the old certificate.
			if r.dlTransport != nil {
				r.dlTransport.CloseIdleConnections()
			}
		},
	})
	if err != nil {
		return fmt.Errorf("fleet.cert_file: %w", err)
	}
	if id := ren.DeviceID(); id != r.cfg.DeviceID {
		return fmt.Errorf("fleet.cert_file: the certificate is device %q's, device_id is %q", id, r.cfg.DeviceID)
	}
	if left := time.Until(ren.Leaf().NotAfter); left <= 0 {
		r.log.Error("device certificate expired: enroll again (edge-agent enroll) with a new token", "not_after", ren.Leaf().NotAfter)
	}
	r.renewer = ren
	return nil
}

// runRenewer renews the certificate until ctx ends. A certificate that
// expired unrenewed, or a refusal (a revoked device), stops renewal but
// not the agent: detections stay in the spool.
func (r *Runtime) runRenewer(ctx context.Context) {
	err := r.renewer.Run(ctx)
	if err != nil && ctx.Err() == nil {
		if errors.Is(err, enroll.ErrExpired) {
			r.log.Error("device certificate expired: enroll again (edge-agent enroll) with a new token", "err", err)
		} else {
			r.log.Error("certificate renewal stopped", "err", err)
		}
	}
}

// withIdentity makes an artifact client present the device certificate.
func (r *Runtime) withIdentity(c *http.Client) {
	tr, ok := c.Transport.(*http.Transport)
	if !ok || r.renewer == nil {
		return
	}
	tr.TLSClientConfig = r.renewer.ClientTLS()
	r.dlTransport = tr
}
