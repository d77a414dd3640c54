package enroll_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"edgefleet/agent/enroll"
	fleetenroll "edgefleet/fleet/enroll"
	"edgefleet/fleet/enroll/enrollapi"
	"edgefleet/fleet/enroll/enrolltest"
	"edgefleet/fleet/pki"
)

var quiet = slog.New(slog.DiscardHandler)

// fleet is fleetd's side: the CA, a bbolt enrollment store with a clock,
// and the real enrollment handler on a TLS listener configured as fleetd's
// (pki.ServerConfig), plus /whoami, which answers the serial of the client
// certificate a request came with.
type fleet struct {
	ca    *pki.CA
	store fleetenroll.Store
	clk   *enrolltest.Clock
	srv   *httptest.Server
	caPEM []byte
}

func newFleet(t *testing.T, lifetime time.Duration, wrap func(http.Handler) http.Handler) *fleet {
	t.Helper()
	ca, err := pki.OpenCA(filepath.Join(t.TempDir(), "ca"))
	if err != nil {
		t.Fatal(err)
	}
	clk := enrolltest.NewClock(time.Now())
	store, err := fleetenroll.OpenBolt(filepath.Join(t.TempDir(), "enroll.db"), fleetenroll.Options{TTL: time.Hour, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	mux := http.NewServeMux()
	var h http.Handler = fleetenroll.NewHandler(fleetenroll.HandlerOptions{CA: ca, Store: store, Lifetime: lifetime, Log: quiet})
	if wrap != nil {
		h = wrap(h)
	}
	mux.Handle("/api/", h)
	mux.HandleFunc("/whoami", func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			http.Error(w, "no certificate", http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, r.TLS.PeerCertificates[0].SerialNumber.Text(16))
	})
	srv := httptest.NewUnstartedServer(mux)
	sc, err := ca.IssueServer([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	srv.TLS = pki.ServerConfig(pki.ServerOptions{Certificate: sc, Devices: ca.Verifier(store)})
	srv.Config.ErrorLog = slog.NewLogLogger(slog.DiscardHandler, slog.LevelError)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return &fleet{ca: ca, store: store, clk: clk, srv: srv, caPEM: ca.Bundle()}
}

func (f *fleet) add(t *testing.T, id string) string {
	t.Helper()
	tok, err := f.store.Add(context.Background(), id, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// paths returns the device's file paths in a fresh directory (not yet
// created), with the fleet CA put in place beforehand as an installer would.
func (f *fleet) paths(t *testing.T) enroll.Paths {
	dir := filepath.Join(t.TempDir(), "etc", "edgefleet")
	p := enroll.Paths{Key: filepath.Join(dir, "box-key.pem"), Cert: filepath.Join(dir, "box.pem"), CA: filepath.Join(dir, "ca.pem")}
	os.MkdirAll(dir, 0o700)
	if err := os.WriteFile(p.CA, f.caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// enrolled enrolls id into fresh paths.
func (f *fleet) enrolled(t *testing.T, id string) enroll.Paths {
	t.Helper()
	p := f.paths(t)
	if _, err := enroll.Enroll(context.Background(), enroll.Options{Server: f.srv.URL, Token: f.add(t, id), DeviceID: id, Paths: p}); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestEnroll(t *testing.T) {
	f := newFleet(t, time.Hour, nil)
	p := f.paths(t)
	tok := f.add(t, "box-17")
	cert, err := enroll.Enroll(context.Background(), enroll.Options{Server: f.srv.URL, Token: tok, DeviceID: "box-17", Paths: p})
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "box-17" {
		t.Fatalf("certificate for %q", cert.Subject.CommonName)
	}
	if st, err := os.Stat(p.Key); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v", st.Mode(), err)
	}
	pair, err := tls.LoadX509KeyPair(p.Cert, p.Key)
	if err != nil || !pair.Leaf.Equal(cert) {
		t.Fatalf("written key pair: %v", err)
	}
	if ca, _ := os.ReadFile(p.CA); !bytes.Equal(ca, f.caPEM) {
		t.Fatal("CA bundle not written")
	}
	if id, err := f.ca.Verifier(f.store).VerifyDevice(context.Background(), []*x509.Certificate{pair.Leaf}); err != nil || id != "box-17" {
		t.Fatalf("fleet verifies the certificate as %q, %v", id, err)
	}

	// The token is spent: a second enrollment with it is refused and leaves the files alone.
	keyBefore, _ := os.ReadFile(p.Key)
	_, err = enroll.Enroll(context.Background(), enroll.Options{Server: f.srv.URL, Token: tok, DeviceID: "box-17", Paths: p})
	var refused *enroll.RefusedError
	if !errors.As(err, &refused) || refused.Code != enrollapi.CodeTokenUsed || !refused.Permanent() {
		t.Fatalf("reused token: %v", err)
	}
	if keyAfter, _ := os.ReadFile(p.Key); !bytes.Equal(keyBefore, keyAfter) {
		t.Fatal("a refused enrollment replaced the key")
	}

	// Without a device id, the token decides it.
	q := f.paths(t)
	cert, err = enroll.Enroll(context.Background(), enroll.Options{Server: f.srv.URL, Token: f.add(t, "box-18"), Paths: q})
	if err != nil || cert.Subject.CommonName != "box-18" {
		t.Fatalf("enroll without device id: %v, %v", cert, err)
	}
}

func TestEnrollRefused(t *testing.T) {
	f := newFleet(t, time.Hour, nil)
	expired := f.add(t, "box-late")
	f.clk.Advance(2 * time.Hour)
	revoked := f.add(t, "box-gone")
	f.store.Revoke(context.Background(), "box-gone")
	tests := []struct {
		name string
		opts enroll.Options
		code string // "" for a refusal before or below HTTP
		noCA bool   // do not put the fleet CA in place first
	}{
		{"unknown token", enroll.Options{Token: "dW5rbm93bg", DeviceID: "box-1"}, enrollapi.CodeTokenUnknown, false},
		{"expired token", enroll.Options{Token: expired, DeviceID: "box-late"}, enrollapi.CodeTokenExpired, false},
		{"revoked device", enroll.Options{Token: revoked, DeviceID: "box-gone"}, enrollapi.CodeRevoked, false},
		{"another device's token", enroll.Options{Token: f.add(t, "box-2"), DeviceID: "box-3"}, enrollapi.CodeIdentity, false},
		{"server not trusted", enroll.Options{Token: f.add(t, "box-4"), DeviceID: "box-4"}, "", true},
		{"plain HTTP", enroll.Options{Server: "http://127.0.0.1:1", Token: "t", DeviceID: "box-5"}, "", false},
		{"bad device id", enroll.Options{Token: "t", DeviceID: "box/5"}, "", false},
		{"no token", enroll.Options{DeviceID: "box-5"}, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := f.paths(t)
			if tc.noCA {
				os.Remove(p.CA)
			}
			tc.opts.Paths = p
			if tc.opts.Server == "" {
				tc.opts.Server = f.srv.URL
			}
			_, err := enroll.Enroll(context.Background(), tc.opts)
			var refused *enroll.RefusedError
			if err == nil || (tc.code != "" && (!errors.As(err, &refused) || refused.Code != tc.code)) {
				t.Fatalf("got %v, want refusal %q", err, tc.code)
			}
			for _, f := range []string{p.Key, p.Cert} {
				if _, err := os.Stat(f); err == nil {
					t.Fatalf("%s written despite the refusal", f)
				}
			}
		})
	}
}

// renewer starts a Renewer on p whose renewals arrive on the returned channel.
func renewer(t *testing.T, f *fleet, p enroll.Paths, minBackoff time.Duration) (*enroll.Renewer, chan *x509.Certificate) {
	t.Helper()
	ch := make(chan *x509.Certificate, 16)
	r, err := enroll.NewRenewer(enroll.RenewerOptions{
		Server: f.srv.URL, Paths: p, MinBackoff: minBackoff, Log: quiet,
		OnRenew: func(c *x509.Certificate) { ch <- c },
	})
	if err != nil {
		t.Fatal(err)
	}
	return r, ch
}

// run runs r until the test ends and returns Run's result channel.
func run(t *testing.T, r *enroll.Renewer) chan error {
	ctx, cancel := context.WithCancel(context.Background())
	done, exited := make(chan error, 1), make(chan struct{})
	go func() { done <- r.Run(ctx); close(exited) }()
	t.Cleanup(func() { cancel(); <-exited })
	return done
}

// whoami asks the fleet which certificate a new connection made with cfg presents.
func whoami(t *testing.T, f *fleet, cfg *tls.Config) string {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
	resp, err := c.Get(f.srv.URL + "/whoami")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return b.String()
}

// The lifetimes of seconds leave a margin of about two seconds between
// the renewal and the expiry for a loaded machine.

func TestRenewerRenewsBeforeExpiry(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 6*time.Second, nil)
	p := f.enrolled(t, "box-17")
	r, renewed := renewer(t, f, p, 50*time.Millisecond)
	cfg := r.ClientTLS() // as the MQTT link and the downloader hold it
	first := r.Leaf()
	if got := whoami(t, f, cfg); got != first.SerialNumber.Text(16) {
		t.Fatalf("presented %s, want %s", got, first.SerialNumber.Text(16))
	}
	done := run(t, r)
	prev := first
	for i := range 2 {
		var c *x509.Certificate
		select {
		case c = <-renewed:
		case err := <-done:
			t.Fatalf("Run ended: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatalf("no renewal %d within 30s", i+1)
		}
		if at := time.Now(); !at.Before(prev.NotAfter) {
			t.Fatalf("renewal %d at %v, after the old certificate expired at %v", i+1, at, prev.NotAfter)
		}
		if c.SerialNumber.Cmp(prev.SerialNumber) == 0 || !c.NotAfter.After(prev.NotAfter) || c.Subject.CommonName != "box-17" {
			t.Fatalf("renewal %d: serial %v, not after %v (before %v)", i+1, c.SerialNumber, c.NotAfter, prev.NotAfter)
		}
		onDisk, err := tls.LoadX509KeyPair(p.Cert, p.Key)
		if err != nil || !onDisk.Leaf.Equal(c) {
			t.Fatalf("renewal %d not written with the key: %v", i+1, err)
		}
		// The same tls.Config now presents the new certificate on a new connection.
		if got := whoami(t, f, cfg); got != c.SerialNumber.Text(16) {
			t.Fatalf("after renewal %d the config presents %s, want %s", i+1, got, c.SerialNumber.Text(16))
		}
		prev = c
	}
}

func TestRenewerBackoff(t *testing.T) {
	t.Parallel()
	// The fleet answers the first two renewals with 503, as during a fleetd restart.
	var failures = make(chan struct{}, 2)
	failures <- struct{}{}
	failures <- struct{}{}
	attempts := make(chan struct{}, 16)
	f := newFleet(t, 6*time.Second, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == enrollapi.PathRenew {
				attempts <- struct{}{}
				select {
				case <-failures:
					http.Error(w, "restarting", http.StatusServiceUnavailable)
					return
				default:
				}
			}
			h.ServeHTTP(w, r)
		})
	})
	p := f.enrolled(t, "box-1")
	r, renewed := renewer(t, f, p, 20*time.Millisecond)
	old := r.Leaf()
	done := run(t, r)
	select {
	case c := <-renewed:
		if !time.Now().Before(old.NotAfter) || c.SerialNumber.Cmp(old.SerialNumber) == 0 {
			t.Fatalf("renewed late or not at all: %v", c.SerialNumber)
		}
	case err := <-done:
		t.Fatalf("Run ended: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("no renewal within 30s")
	}
	if len(attempts) != 3 {
		t.Fatalf("%d attempts, want 2 failures and a success", len(attempts))
	}
}

func TestRenewRefused(t *testing.T) {
	f := newFleet(t, time.Hour, nil)
	other := newFleet(t, time.Hour, nil)
	// certFrom writes a certificate for id issued by ca (with its clock) into fresh paths.
	certFrom := func(t *testing.T, ca *pki.CA, id string) enroll.Paths {
		p := f.paths(t)
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: id}}, key)
		c, err := ca.Issue(context.Background(), der, id, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalPKCS8PrivateKey(key)
		os.WriteFile(p.Key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
		os.WriteFile(p.Cert, pki.CertPEM(c), 0o644)
		return p
	}
	revoked := f.enrolled(t, "box-gone")
	f.store.Revoke(context.Background(), "box-gone")
	tests := []struct {
		name string
		p    enroll.Paths
	}{
		{"certificate from another CA", certFrom(t, other.ca, "box-1")},
		{"expired certificate", certFrom(t, f.ca.WithClock(func() time.Time { return time.Now().Add(-48 * time.Hour) }), "box-1")},
		{"revoked device", revoked},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := os.ReadFile(tc.p.Cert)
			r, _ := renewer(t, f, tc.p, time.Millisecond)
			if err := r.Renew(context.Background()); err == nil {
				t.Fatal("renewed")
			}
			if after, _ := os.ReadFile(tc.p.Cert); !bytes.Equal(before, after) {
				t.Fatal("certificate file changed")
			}
		})
	}
	t.Run("Run stops on an expired certificate", func(t *testing.T) {
		r, _ := renewer(t, f, tests[1].p, time.Millisecond)
		if err := <-run(t, r); !errors.Is(err, enroll.ErrExpired) {
			t.Fatalf("Run: %v, want ErrExpired", err)
		}
	})
}
