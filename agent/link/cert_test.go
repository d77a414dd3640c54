package link

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"edgefleet/agent/enroll"
	"edgefleet/fleet/broker"
	"edgefleet/fleet/broker/brokertest"
	fleetenroll "edgefleet/fleet/enroll"
	"edgefleet/fleet/pki/pkitest"
	"edgefleet/internal/testutil"
)

// TestRenewedCertificateReconnect: a device enrolled with a certificate of
// seconds keeps its mTLS session while the Renewer renews, and once the
// first certificate has expired, a lost session comes back at the first
// reconnect, with the renewed certificate.
func TestRenewedCertificateReconnect(t *testing.T) {
	ca := pkitest.NewCA(t)
	store := fleetenroll.NewMem(fleetenroll.Options{})
	srv := httptest.NewUnstartedServer(fleetenroll.NewHandler(fleetenroll.HandlerOptions{CA: ca, Store: store, Lifetime: 6 * time.Second, Log: quiet}))
	srv.TLS = pkitest.Server(t, ca, store, false)
	srv.StartTLS()
	defer srv.Close()
	b := brokertest.Start(t, broker.Options{TLSAddr: "127.0.0.1:0", TLS: pkitest.Server(t, ca, store, true), Devices: ca.Verifier(store), Logger: quiet})

	ctx := context.Background()
	tok, err := store.Add(ctx, devID, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	paths := enroll.Paths{Key: filepath.Join(dir, "key.pem"), Cert: filepath.Join(dir, "cert.pem"), CA: filepath.Join(dir, "ca.pem")}
	first, err := enroll.Enroll(ctx, enroll.Options{Server: srv.URL, Token: tok, DeviceID: devID, Paths: paths,
		Client: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}})
	if err != nil {
		t.Fatal(err)
	}
	renewed := make(chan *x509.Certificate, 4)
	ren, err := enroll.NewRenewer(enroll.RenewerOptions{Server: srv.URL, Paths: paths, Log: quiet, MinBackoff: 100 * time.Millisecond,
		OnRenew: func(c *x509.Certificate) { renewed <- c }})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go ren.Run(rctx)

	l := runLink(t, Options{Brokers: []string{"ssl://" + b.TLSAddr()}, DeviceID: devID, TLS: ren.ClientTLS(),
		BackoffMin: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond, Logger: quiet}, NewMemOutbox(), SenderOptions{})
	wctx, wcancel := context.WithTimeout(ctx, patience)
	defer wcancel()
	n, err := l.WaitConnected(wctx)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-renewed:
		if !c.NotAfter.After(first.NotAfter) {
			t.Fatalf("renewed certificate ends %v, the first %v", c.NotAfter, first.NotAfter)
		}
	case <-time.After(patience):
		t.Fatal("not renewed")
	}
	testutil.WaitFor(t, "the first certificate to expire", patience, func() bool { return time.Now().After(first.NotAfter.Add(100 * time.Millisecond)) })
	if m, _, _ := l.current(); m == nil {
		t.Fatal("the session was lost during the renewal")
	}
	if _, now, _ := l.current(); now != n {
		t.Fatalf("session %d, was %d: reconnected during the renewal", now, n)
	}
	if !b.Disconnect(devID) {
		t.Fatal("broker: device not connected")
	}
	testutil.WaitFor(t, "reconnect with the renewed certificate", patience, func() bool {
		s, now, _ := l.current()
		return s != nil && now > n
	})
	if _, now, _ := l.current(); now != n+1 {
		t.Fatalf("session %d after one drop from %d: more than one reconnect", now, n)
	}
}
