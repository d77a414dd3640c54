package artifact

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"edgefleet/fleet/pki/pkitest"
)

// certAuth is a DeviceAuth that knows devices by client certificate (the
// subject) or password "secret", and lets each download only the sums
// listed for it.
type certAuth struct{ allowed map[string]string }

func (a certAuth) AuthenticateDevice(_ context.Context, id string, tok []byte) error {
	if string(tok) == "secret" {
		return nil
	}
	return errors.New("bad credentials")
}

func (a certAuth) RequestDevice(r *http.Request) (string, bool, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return "", false, nil
	}
	return r.TLS.PeerCertificates[0].Subject.CommonName, true, nil
}

func (a certAuth) MayDownload(_ context.Context, id string, m Meta) error {
	if a.allowed[id] == m.SHA256 {
		return nil
	}
	return errors.New("not addressed")
}

func TestHandlerCertificateAndScope(t *testing.T) {
	st, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	m1, _ := st.Put(ctx, bytes.NewReader(randBytes(1000, 3)), Meta{Kind: "model", Name: "m", Version: "1"})
	m2, _ := st.Put(ctx, bytes.NewReader(randBytes(1000, 4)), Meta{Kind: "model", Name: "m", Version: "2"})
	ca := pkitest.NewCA(t)
	srv := httptest.NewUnstartedServer(NewHandler(st, certAuth{allowed: map[string]string{"box-a": m1.SHA256, "pw-dev": m2.SHA256}}, discard()))
	srv.TLS = pkitest.Server(t, ca, nil, false)
	srv.StartTLS()
	defer srv.Close()
	certA := pkitest.Device(t, ca, "box-a", 0)
	tests := []struct {
		name       string
		cert       *tls.Certificate
		user, pass string
		sum        string
		want       int
	}{
		{"certificate, its artifact", &certA, "", "", m1.SHA256, 200},
		{"certificate and its own id", &certA, "box-a", "", m1.SHA256, 200},
		{"certificate, another artifact", &certA, "", "", m2.SHA256, 403},
		{"certificate with another device's user", &certA, "pw-dev", "secret", m2.SHA256, 401},
		{"password, its artifact", nil, "pw-dev", "secret", m2.SHA256, 200},
		{"password, another artifact", nil, "pw-dev", "secret", m1.SHA256, 403},
		{"nothing", nil, "", "", m1.SHA256, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &tls.Config{RootCAs: ca.Pool()}
			if tt.cert != nil {
				cfg.Certificates = []tls.Certificate{*tt.cert}
			}
			req, _ := http.NewRequest(http.MethodGet, srv.URL+URL(tt.sum), nil)
			if tt.user != "" {
				req.SetBasicAuth(tt.user, tt.pass)
			}
			resp, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
}
