// Package enroll gives an edge agent its identity in the fleet: it makes the
// device's private key (which never leaves the box), trades a one-time
// enrollment token and a certificate request for a certificate from the
// fleet CA (Enroll), and renews that certificate over mutual TLS when two
// thirds of its lifetime have passed (Renewer), handing the current one to
// the MQTT link and the downloader through GetClientCertificate.
//
// The wire contract is fleet/enroll/enrollapi; fleetd's side is fleet/enroll.
package enroll

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"edgefleet/fleet/api"
	"edgefleet/fleet/enroll/enrollapi"
	"edgefleet/internal/atomicfile"
)

// ErrExpired is returned by Renewer.Run when the certificate expired
// before it could be renewed: the device must enroll again with a new token.
var ErrExpired = errors.New("enroll: certificate expired")

// RefusedError is fleetd's refusal of an enrollment or a renewal.
type RefusedError struct {
	Status  int    // HTTP status
	Code    string // enrollapi.Code*
	Message string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("enroll: refused by the fleet (%d %s): %s", e.Status, e.Code, e.Message)
}

// Permanent reports whether asking again cannot help: the device is
// revoked, its certificate or token is not accepted, or the request is bad.
func (e *RefusedError) Permanent() bool { return e.Status >= 400 && e.Status < 500 }

// Paths are where the device's files live.
type Paths struct {
	Key  string // private key, PEM, written 0600
	Cert string // device certificate, PEM
	CA   string // fleet CA bundle, PEM
}

// Options are the inputs of Enroll.
type Options struct {
	// Server is fleetd's HTTPS base URL, e.g. https://fleet:8443.
	Server string
	// Token is the one-time enrollment token.
	Token string
	// DeviceID, if set, is put in the request and checked against the
	// certificate; empty lets the token decide.
	DeviceID string
	Paths    Paths
	// Client talks to fleetd; nil means one that trusts the CA bundle at
	// Paths.CA if that file exists (put there beforehand), else the
	// system's roots.
	Client *http.Client
}

// maxResponse caps fleetd's answer.
const maxResponse = 1 << 20

// Enroll makes a new ECDSA P-256 key, redeems the token with a certificate
// request and writes the key (0600), the certificate and the CA bundle to
// opts.Paths, in that order, only after fleetd has issued the certificate
// and it has been checked (the device's key, the device id, chained to the
// returned CA). It returns the certificate.
func Enroll(ctx context.Context, opts Options) (*x509.Certificate, error) {
	if opts.DeviceID != "" {
		if err := api.ValidateID(opts.DeviceID); err != nil {
			return nil, fmt.Errorf("enroll: device id: %w", err)
		}
	}
	if opts.Token == "" {
		return nil, errors.New("enroll: no token")
	}
	client := opts.Client
	if client == nil {
		var err error
		if client, err = defaultClient(opts.Paths.CA); err != nil {
			return nil, err
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	csr, err := makeCSR(key, opts.DeviceID)
	if err != nil {
		return nil, err
	}
	resp, err := post(ctx, client, opts.Server, enrollapi.PathEnroll, enrollapi.Request{Token: opts.Token, CSR: csr})
	if err != nil {
		return nil, err
	}
	cert, err := checkIssued(resp, key, opts.DeviceID)
	if err != nil {
		return nil, err
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	for _, f := range []struct {
		path string
		data []byte
		perm fs.FileMode
	}{
		{opts.Paths.Key, keyPEM, 0o600},
		{opts.Paths.Cert, []byte(resp.Certificate), 0o644},
		{opts.Paths.CA, []byte(resp.CA), 0o644},
	} {
		if err := writeFile(f.path, f.data, f.perm); err != nil {
			return nil, err
		}
	}
	return cert, nil
}

func defaultClient(caPath string) (*http.Client, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if data, err := os.ReadFile(caPath); err == nil {
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(data) {
			return nil, fmt.Errorf("enroll: %s: no PEM certificates", caPath)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg
	return &http.Client{Transport: tr, Timeout: time.Minute}, nil
}

func makeCSR(key crypto.Signer, id string) (string, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: id}}, key)
	if err != nil {
		return "", fmt.Errorf("enroll: certificate request: %w", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})), nil
}

func encodeKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("enroll: encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func writeFile(path string, data []byte, perm fs.FileMode) error {
	if path == "" {
		return errors.New("enroll: a path (key, cert or ca) is empty")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("enroll: %w", err)
	}
	if err := atomicfile.WriteFile(path, data, perm); err != nil {
		return fmt.Errorf("enroll: %w", err)
	}
	return nil
}

// post sends req to server+path and returns the answer or a *RefusedError.
func post(ctx context.Context, c *http.Client, server, path string, req enrollapi.Request) (enrollapi.Response, error) {
	var out enrollapi.Response
	u, err := url.Parse(server)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return out, fmt.Errorf("enroll: server %q: want https://host[:port]", server)
	}
	body, err := json.Marshal(req)
	if err != nil {
		return out, fmt.Errorf("enroll: %w", err)
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(server, "/")+path, bytes.NewReader(body))
	if err != nil {
		return out, fmt.Errorf("enroll: %w", err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(hreq)
	if err != nil {
		return out, fmt.Errorf("enroll: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return out, fmt.Errorf("enroll: read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e enrollapi.Error
		if json.Unmarshal(data, &e) != nil || e.Code == "" {
			e = enrollapi.Error{Code: "http", Message: strings.TrimSpace(string(data[:min(len(data), 200)]))}
		}
		return out, &RefusedError{Status: resp.StatusCode, Code: e.Code, Message: e.Message}
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return out, fmt.Errorf("enroll: answer: %w", err)
	}
	return out, nil
}

// checkIssued checks that the certificate fleetd returned is for key and
// id (if set), for client authentication, and chains to the returned CA.
func checkIssued(resp enrollapi.Response, key crypto.Signer, id string) (*x509.Certificate, error) {
	block, _ := pem.Decode([]byte(resp.Certificate))
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("enroll: answer has no PEM certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("enroll: answer certificate: %w", err)
	}
	if k, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !k.Equal(key.Public()) {
		return nil, errors.New("enroll: the certificate is not for this device's key")
	}
	if cn := cert.Subject.CommonName; cn != resp.DeviceID || (id != "" && cn != id) || api.ValidateID(cn) != nil {
		return nil, fmt.Errorf("enroll: the certificate names %q, want %q", cn, id)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(resp.CA)) {
		return nil, errors.New("enroll: answer has no PEM CA bundle")
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, fmt.Errorf("enroll: the certificate does not chain to the fleet CA: %w", err)
	}
	return cert, nil
}
