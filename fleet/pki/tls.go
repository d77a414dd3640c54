package pki

import (
	"crypto/tls"
)

// cipherSuites are the TLS 1.2 suites fleet listeners accept: ECDHE key
// exchange and AEAD ciphers only (TLS 1.3 suites are not configurable and
// all sensible). RSA suites are kept for operator-supplied RSA certificates.
var cipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// ServerOptions configures ServerConfig.
type ServerOptions struct {
	// Certificate is the server's certificate, e.g. from IssueServer or
	// tls.LoadX509KeyPair. Ignored when GetCertificate is set.
	Certificate tls.Certificate
	// GetCertificate, if set, picks the certificate per handshake (for
	// certificates reloaded or renewed while running).
	GetCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// Devices, if set, asks clients for a device certificate and verifies
	// any that is presented (VerifyConnection). Nil: no client certificates.
	Devices *Verifier
	// RequireDevice refuses clients without a device certificate at the
	// handshake (the broker's mTLS listener). False lets them through, for
	// listeners that also serve operators and enrollment with a token.
	RequireDevice bool
}

// ServerConfig returns the TLS configuration fleet listeners use: TLS 1.2
// or later, ECDHE with AEAD ciphers, and, with Devices set, client
// certificates verified against the fleet CA and checked for revocation at
// the handshake. Handlers still get the device id from Verifier.Device.
func ServerConfig(o ServerOptions) *tls.Config {
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		CipherSuites: cipherSuites,
	}
	if o.GetCertificate != nil {
		cfg.GetCertificate = o.GetCertificate
	} else {
		cfg.Certificates = []tls.Certificate{o.Certificate}
	}
	if o.Devices != nil {
		cfg.ClientCAs = o.Devices.roots
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
		if o.RequireDevice {
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
		cfg.VerifyConnection = o.Devices.VerifyConnection
	}
	return cfg
}
