package controller

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"slices"

	"edgefleet/fleet/broker"
	"edgefleet/fleet/pki"
)

// HTTPTLS turns fleetd's HTTP listener (REST API, console, artifacts,
// enrollment) into HTTPS: TLS 1.2 or later, ECDHE with AEAD ciphers, and
// device client certificates verified when presented.
type HTTPTLS struct {
	// Cert and Key are PEM files of fleetd's server certificate.
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	// Hosts are the DNS names and IP addresses of a certificate issued
	// from the fleet CA instead (and renewed by fleetd itself), e.g.
	// [fleet.plant-a, 10.0.0.5].
	Hosts []string `yaml:"hosts"`
}

// Enabled reports whether HTTPS is configured.
func (t HTTPTLS) Enabled() bool { return t.Cert != "" || len(t.Hosts) > 0 }

// httpScheme is the scheme of fleetd's own URLs.
func (c *Config) httpScheme() string {
	if c.HTTP.TLS.Enabled() {
		return "https"
	}
	return "http"
}

// serverHosts are the names of a server certificate issued from the fleet
// CA: http.tls.hosts, else this host's name, localhost, 127.0.0.1 and the
// listen address's IP when it names one.
func (c *Config) serverHosts(listen string) []string {
	if len(c.HTTP.TLS.Hosts) > 0 {
		return c.HTTP.TLS.Hosts
	}
	hosts := []string{"localhost", "127.0.0.1"}
	if h, err := os.Hostname(); err == nil && h != "" {
		hosts = append(hosts, h)
	}
	if host, _, err := net.SplitHostPort(listen); err == nil {
		if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() && !slices.Contains(hosts, host) {
			hosts = append(hosts, host)
		}
	}
	return hosts
}

// serverCert returns the GetCertificate hook of a listener: the given
// files, or a certificate from the fleet CA for hosts.
func (c *Controller) serverCert(certFile, keyFile string, hosts []string) (func(*tls.ClientHelloInfo) (*tls.Certificate, error), error) {
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("controller: tls key pair: %w", err)
		}
		return func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil }, nil
	}
	sc, err := c.id.ca.ServerCertificate(hosts, 0)
	if err != nil {
		return nil, fmt.Errorf("controller: server certificate: %w", err)
	}
	return sc.GetCertificate, nil
}

// httpsListener wraps the HTTP listener in TLS when http.tls is set.
// Client certificates are optional there (operators and enrolling devices
// have none) and verified, revocation included, when presented.
func (c *Controller) httpsListener(ln net.Listener) (net.Listener, error) {
	t := c.cfg.HTTP.TLS
	if !t.Enabled() {
		return ln, nil
	}
	get, err := c.serverCert(t.Cert, t.Key, c.cfg.serverHosts(c.cfg.HTTP.Listen))
	if err != nil {
		return nil, err
	}
	cfg := pki.ServerConfig(pki.ServerOptions{GetCertificate: get, Devices: c.id.gate.verifier})
	cfg.NextProtos = []string{"h2", "http/1.1"}
	return tls.NewListener(ln, cfg), nil
}

// brokerTLS configures the embedded broker's TLS listener. With
// broker.tls_client_ca, as before fleet identities: client certificates
// from that CA are required and devices log in with passwords. Otherwise
// a device with a fleet certificate logs in by it (its subject is the
// device), and password devices may use TLS too.
func (c *Controller) brokerTLS() (*tls.Config, broker.CertVerifier, error) {
	b := c.cfg.Broker
	if b.TLSClientCA != "" {
		cfg, err := broker.LoadTLS(b.TLSCert, b.TLSKey, b.TLSClientCA)
		return cfg, nil, err
	}
	get, err := c.serverCert(b.TLSCert, b.TLSKey, c.cfg.serverHosts(b.TLSListen))
	if err != nil {
		return nil, nil, err
	}
	return pki.ServerConfig(pki.ServerOptions{GetCertificate: get, Devices: c.id.gate.verifier}), c.id.gate.verifier, nil
}

// MQTTSAddr is the embedded broker's TLS address ("" with an external
// broker or no TLS listener).
func (c *Controller) MQTTSAddr() string {
	if c.broker == nil {
		return ""
	}
	return c.broker.TLSAddr()
}
