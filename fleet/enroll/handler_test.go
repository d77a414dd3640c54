package enroll_test

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
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"edgefleet/fleet/enroll"
	"edgefleet/fleet/enroll/enrollapi"
	"edgefleet/fleet/enroll/enrolltest"
	"edgefleet/fleet/pki"
)

// fixture is fleetd's enrollment side: a CA, a bbolt store with a clock,
// and the handler on a real TLS listener configured like fleetd's.
type fixture struct {
	ca    *pki.CA
	store enroll.Store
	clk   *enrolltest.Clock
	srv   *httptest.Server
}

// newFixture starts the handler; clientAuth overrides how the listener
// treats client certificates (0: pki.ServerConfig's, as fleetd has it).
func newFixture(t *testing.T, clientAuth tls.ClientAuthType) *fixture {
	return newFixtureHook(t, clientAuth, nil)
}

func newFixtureHook(t *testing.T, clientAuth tls.ClientAuthType, onEnroll func(context.Context, enroll.Device)) *fixture {
	t.Helper()
	ca, err := pki.OpenCA(filepath.Join(t.TempDir(), "ca"))
	if err != nil {
		t.Fatal(err)
	}
	clk := enrolltest.NewClock(time.Now())
	store, err := enroll.OpenBolt(filepath.Join(t.TempDir(), "enroll.db"), enroll.Options{TTL: time.Hour, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	h := enroll.NewHandler(enroll.HandlerOptions{CA: ca, Store: store, Lifetime: time.Hour, OnEnroll: onEnroll})
	srv := httptest.NewUnstartedServer(h)
	sc, err := ca.IssueServer([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	srv.TLS = pki.ServerConfig(pki.ServerOptions{Certificate: sc, Devices: ca.Verifier(store)})
	if clientAuth != 0 {
		srv.TLS.ClientAuth, srv.TLS.VerifyConnection = clientAuth, nil
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return &fixture{ca: ca, store: store, clk: clk, srv: srv}
}

func (f *fixture) add(t *testing.T, id string) string {
	t.Helper()
	tok, err := f.store.Add(context.Background(), id, map[string]string{"site": "a"})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// client returns an HTTPS client trusting the fleet CA, presenting certs.
func (f *fixture) client(certs ...tls.Certificate) *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: f.ca.Pool(), Certificates: certs}}}
}

// post sends body to path and decodes the answer into a Response or an Error.
func (f *fixture) post(t *testing.T, c *http.Client, path string, body any) (int, enrollapi.Response, enrollapi.Error, error) {
	t.Helper()
	var raw []byte
	switch b := body.(type) {
	case string:
		raw = []byte(b)
	default:
		raw, _ = json.Marshal(b)
	}
	resp, err := c.Post(f.srv.URL+path, "application/json", bytes.NewReader(raw))
	if err != nil {
		return 0, enrollapi.Response{}, enrollapi.Error{}, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var ok enrollapi.Response
	var bad enrollapi.Error
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(data, &ok); err != nil {
			t.Fatalf("200 with %q: %v", data, err)
		}
	} else if err := json.Unmarshal(data, &bad); err != nil || bad.Code == "" {
		t.Fatalf("status %d with %q: not a JSON error", resp.StatusCode, data)
	}
	return resp.StatusCode, ok, bad, nil
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func csrPEM(t testing.TB, key crypto.Signer, cn string) string {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

// enrolled enrolls id and returns its TLS certificate.
func (f *fixture) enrolled(t *testing.T, id string) tls.Certificate {
	t.Helper()
	key := newKey(t)
	st, resp, e, err := f.post(t, f.client(), enrollapi.PathEnroll, enrollapi.Request{Token: f.add(t, id), CSR: csrPEM(t, key, id)})
	if err != nil || st != http.StatusOK {
		t.Fatalf("enroll %s: %d %+v %v", id, st, e, err)
	}
	cert, err := tls.X509KeyPair([]byte(resp.Certificate), pemKey(t, key))
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func pemKey(t testing.TB, key crypto.Signer) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func TestEnroll(t *testing.T) {
	enrolled := make(chan enroll.Device, 2)
	f := newFixtureHook(t, 0, func(_ context.Context, d enroll.Device) { enrolled <- d })
	key := newKey(t)
	tok := f.add(t, "box-17")
	st, resp, e, err := f.post(t, f.client(), enrollapi.PathEnroll, enrollapi.Request{Token: tok, CSR: csrPEM(t, key, "box-17")})
	if err != nil || st != http.StatusOK {
		t.Fatalf("enroll: %d %+v %v", st, e, err)
	}
	if resp.DeviceID != "box-17" || resp.CA != string(f.ca.Bundle()) {
		t.Fatalf("response device %q, CA bundle %v", resp.DeviceID, resp.CA == string(f.ca.Bundle()))
	}
	cert, err := tls.X509KeyPair([]byte(resp.Certificate), pemKey(t, key))
	if err != nil {
		t.Fatal(err)
	}
	id, err := f.ca.Verifier(f.store).VerifyDevice(context.Background(), []*x509.Certificate{cert.Leaf})
	if err != nil || id != "box-17" {
		t.Fatalf("issued certificate: %q, %v", id, err)
	}
	if d := cert.Leaf.NotAfter.Sub(cert.Leaf.NotBefore); d > time.Hour+6*time.Minute {
		t.Fatalf("lifetime %v, configured 1h", d)
	}
	if d := <-enrolled; d.ID != "box-17" || d.Labels["site"] != "a" {
		t.Fatalf("OnEnroll got %+v", d)
	}
	// An empty common name is a first enrollment that does not know its id.
	st, resp, e, _ = f.post(t, f.client(), enrollapi.PathEnroll, enrollapi.Request{Token: f.add(t, "box-18"), CSR: csrPEM(t, newKey(t), "")})
	if st != http.StatusOK || resp.DeviceID != "box-18" {
		t.Fatalf("enroll without a common name: %d %+v %+v", st, resp, e)
	}
}

func TestEnrollRefused(t *testing.T) {
	f := newFixture(t, 0)
	key := newKey(t)
	csr := func(cn string) string { return csrPEM(t, key, cn) }
	used := f.add(t, "box-used")
	if st, _, e, _ := f.post(t, f.client(), enrollapi.PathEnroll, enrollapi.Request{Token: used, CSR: csr("box-used")}); st != 200 {
		t.Fatalf("first use: %d %+v", st, e)
	}
	expired := f.add(t, "box-late")
	f.clk.Advance(2 * time.Hour)
	revoked := f.add(t, "box-gone")
	f.store.Revoke(context.Background(), "box-gone")
	keep := f.add(t, "box-1")
	tests := []struct {
		name   string
		body   any
		status int
		code   string
	}{
		{"reused token", enrollapi.Request{Token: used, CSR: csr("box-used")}, 401, enrollapi.CodeTokenUsed},
		{"expired token", enrollapi.Request{Token: expired, CSR: csr("box-late")}, 401, enrollapi.CodeTokenExpired},
		{"unknown token", enrollapi.Request{Token: "bm9wZQ", CSR: csr("box-1")}, 401, enrollapi.CodeTokenUnknown},
		{"revoked device", enrollapi.Request{Token: revoked, CSR: csr("box-gone")}, 403, enrollapi.CodeRevoked},
		{"other device's name", enrollapi.Request{Token: keep, CSR: csr("box-2")}, 403, enrollapi.CodeIdentity},
		{"malformed CSR", enrollapi.Request{Token: keep, CSR: "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"}, 400, enrollapi.CodeBadCSR},
		{"no CSR", enrollapi.Request{Token: keep}, 400, enrollapi.CodeBadRequest},
		{"no token", enrollapi.Request{CSR: csr("box-1")}, 400, enrollapi.CodeBadRequest},
		{"unknown field", `{"token":"x","csr":"y","admin":true}`, 400, enrollapi.CodeBadRequest},
		{"not JSON", `token=x`, 400, enrollapi.CodeBadRequest},
		{"two objects", `{"token":"x","csr":"y"}{}`, 400, enrollapi.CodeBadRequest},
		{"too large", `{"token":"` + strings.Repeat("x", enrollapi.MaxRequestSize) + `"}`, 413, enrollapi.CodeTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, _, e, err := f.post(t, f.client(), enrollapi.PathEnroll, tc.body)
			if err != nil || st != tc.status || e.Code != tc.code {
				t.Fatalf("got %d %+v %v; want %d %s", st, e, err, tc.status, tc.code)
			}
		})
	}
	// The refusals of the request and of the CSR did not burn box-1's token.
	if st, _, e, _ := f.post(t, f.client(), enrollapi.PathEnroll, enrollapi.Request{Token: keep, CSR: csr("box-1")}); st != 200 {
		t.Fatalf("token after refusals: %d %+v", st, e)
	}
	resp, err := f.client().Get(f.srv.URL + enrollapi.PathEnroll)
	if err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %v %v", resp.Status, err)
	}
	resp.Body.Close()
}

func TestRenew(t *testing.T) {
	f := newFixture(t, 0)
	cert := f.enrolled(t, "box-17")
	key := cert.PrivateKey.(crypto.Signer)
	st, resp, e, err := f.post(t, f.client(cert), enrollapi.PathRenew, enrollapi.Request{CSR: csrPEM(t, key, "box-17")})
	if err != nil || st != http.StatusOK {
		t.Fatalf("renew: %d %+v %v", st, e, err)
	}
	renewed, err := tls.X509KeyPair([]byte(resp.Certificate), pemKey(t, key))
	if err != nil || renewed.Leaf.Subject.CommonName != "box-17" || renewed.Leaf.SerialNumber.Cmp(cert.Leaf.SerialNumber) == 0 {
		t.Fatalf("renewed: %v, %v", renewed.Leaf.Subject, err)
	}
	// Renewing with the renewed certificate works too.
	if st, _, e, _ := f.post(t, f.client(renewed), enrollapi.PathRenew, enrollapi.Request{CSR: csrPEM(t, key, "box-17")}); st != 200 {
		t.Fatalf("second renewal: %d %+v", st, e)
	}
}

// otherCACert is a device certificate for id from a CA the fleet does not know.
func otherCACert(t *testing.T, id string, clock func() time.Time) tls.Certificate {
	ca, err := pki.OpenCA(filepath.Join(t.TempDir(), "other"))
	if err != nil {
		t.Fatal(err)
	}
	if clock != nil {
		ca = ca.WithClock(clock)
	}
	key := newKey(t)
	c, err := ca.Issue(context.Background(), []byte(csrPEM(t, key, id)), id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{c.Raw}, PrivateKey: key, Leaf: c}
}

// expiredCert is a certificate for id from the fixture's CA that expired a day ago.
func (f *fixture) expiredCert(t *testing.T, id string) tls.Certificate {
	key := newKey(t)
	past := f.ca.WithClock(func() time.Time { return time.Now().Add(-48 * time.Hour) })
	c, err := past.Issue(context.Background(), []byte(csrPEM(t, key, id)), id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{c.Raw}, PrivateKey: key, Leaf: c}
}

func TestRenewRefused(t *testing.T) {
	// fleetd's listener refuses bad client certificates at the handshake;
	// a listener that lets any certificate through (RequestClientCert)
	// shows that the handler refuses them by itself too.
	for _, mode := range []struct {
		name       string
		clientAuth tls.ClientAuthType
	}{{"fleetd listener", 0}, {"permissive listener", tls.RequestClientCert}} {
		t.Run(mode.name, func(t *testing.T) {
			f := newFixture(t, mode.clientAuth)
			good := f.enrolled(t, "box-1")
			gone := f.enrolled(t, "box-gone")
			f.store.Revoke(context.Background(), "box-gone")
			key := good.PrivateKey.(crypto.Signer)
			tests := []struct {
				name      string
				cert      []tls.Certificate
				body      any
				status    int // 0: the handshake fails
				code      string
				handshake bool // refused at the handshake by fleetd's listener
			}{
				{"no certificate", nil, enrollapi.Request{CSR: csrPEM(t, key, "box-1")}, 401, enrollapi.CodeNoCertificate, false},
				{"other CA", []tls.Certificate{otherCACert(t, "box-1", nil)}, enrollapi.Request{CSR: csrPEM(t, key, "box-1")}, 401, enrollapi.CodeUntrusted, true},
				{"expired", []tls.Certificate{f.expiredCert(t, "box-1")}, enrollapi.Request{CSR: csrPEM(t, key, "box-1")}, 401, enrollapi.CodeUntrusted, true},
				{"revoked", []tls.Certificate{gone}, enrollapi.Request{CSR: csrPEM(t, gone.PrivateKey.(crypto.Signer), "box-gone")}, 403, enrollapi.CodeRevoked, true},
				{"other device's name", []tls.Certificate{good}, enrollapi.Request{CSR: csrPEM(t, key, "box-2")}, 403, enrollapi.CodeIdentity, false},
				{"empty name", []tls.Certificate{good}, enrollapi.Request{CSR: csrPEM(t, key, "")}, 403, enrollapi.CodeIdentity, false},
				{"malformed CSR", []tls.Certificate{good}, enrollapi.Request{CSR: "junk"}, 400, enrollapi.CodeBadCSR, false},
				{"with a token", []tls.Certificate{good}, enrollapi.Request{Token: "t", CSR: csrPEM(t, key, "box-1")}, 400, enrollapi.CodeBadRequest, false},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					st, _, e, err := f.post(t, f.client(tc.cert...), enrollapi.PathRenew, tc.body)
					if tc.handshake && mode.clientAuth == 0 {
						if err == nil {
							t.Fatalf("handshake passed: %d %+v", st, e)
						}
						return
					}
					if err != nil || st != tc.status || e.Code != tc.code {
						t.Fatalf("got %d %+v %v; want %d %s", st, e, err, tc.status, tc.code)
					}
				})
			}
		})
	}
}

var discard = slog.New(slog.DiscardHandler)
