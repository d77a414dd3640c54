package broker

import (
	"context"
	"errors"
	"net"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// CertVerifier gives the device a connection's client certificate proves.
// *pki.Verifier implements it. ok is false, with no error, for a plain
// connection or a TLS one without a client certificate.
type CertVerifier interface {
	ConnDevice(ctx context.Context, conn net.Conn) (id string, ok bool, err error)
}

// identify decides who a connecting client is: the device its client
// certificate proves (the username, if any, must be that device id), else
// the user its password proves. It counts and logs refusals.
func (b *Broker) identify(ctx context.Context, cl *mqtt.Client, user string, password []byte) (Identity, bool) {
	if b.devices != nil && cl.Net.Conn != nil {
		dev, ok, err := b.devices.ConnDevice(ctx, cl.Net.Conn)
		switch {
		case err != nil:
			b.metrics.authRefused.WithLabelValues("certificate").Inc()
			b.log.Info("login refused", "user", user, "remote", cl.Net.Remote, "reason", "client certificate", "error", err)
			return Identity{}, false
		case ok && user != "" && user != dev:
			b.metrics.authRefused.WithLabelValues("certificate_user").Inc()
			b.log.Info("login refused", "user", user, "device_id", dev, "remote", cl.Net.Remote, "reason", "username differs from the certificate's device")
			return Identity{}, false
		case ok:
			return Identity{Role: RoleDevice, DeviceID: dev}, true
		}
	}
	id, err := b.auth.Authenticate(ctx, user, password)
	if err != nil {
		b.metrics.authRefused.WithLabelValues("credentials").Inc()
		if !errors.Is(err, ErrBadCredentials) {
			b.log.Warn("authenticator failed", "user", user, "remote", cl.Net.Remote, "error", err)
		} else {
			b.log.Info("login refused", "user", user, "remote", cl.Net.Remote, "reason", "bad credentials")
		}
		return Identity{}, false
	}
	return id, true
}
