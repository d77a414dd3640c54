package enroll_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"edgefleet/fleet/enroll"
	"edgefleet/fleet/enroll/enrollapi"
	"edgefleet/fleet/pki"
)

// FuzzEnrollRequest sends arbitrary bodies to the enrollment endpoints
// ("$TOKEN" in a body stands for a valid token of box-1, so the fuzzer
// reaches the CSR checks too). The handler answers 200 only with a
// certificate for box-1, refuses everything else with a JSON error and a
// 4xx status, and never fails internally.
func FuzzEnrollRequest(f *testing.F) {
	ca, err := pki.OpenCA(filepath.Join(f.TempDir(), "ca"))
	if err != nil {
		f.Fatal(err)
	}
	csr := csrPEM(f, newKey(f), "box-1")
	seed, _ := json.Marshal(enrollapi.Request{Token: "$TOKEN", CSR: csr})
	f.Add(false, seed)
	f.Add(false, []byte(`{"token":"$TOKEN","csr":""}`))
	f.Add(false, []byte(`{"token":"$TOKEN","csr":"-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n"}`))
	f.Add(true, seed)
	f.Add(false, []byte(`{"token":1}`))
	f.Fuzz(func(t *testing.T, renew bool, body []byte) {
		store := enroll.NewMem(enroll.Options{})
		tok, err := store.Add(context.Background(), "box-1", nil)
		if err != nil {
			t.Fatal(err)
		}
		body = bytes.ReplaceAll(body, []byte("$TOKEN"), []byte(tok))
		path := enrollapi.PathEnroll
		if renew {
			path = enrollapi.PathRenew
		}
		rec := httptest.NewRecorder()
		enroll.NewHandler(enroll.HandlerOptions{CA: ca, Store: store, Log: discard}).
			ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body)))
		switch rec.Code {
		case http.StatusOK:
			var resp enrollapi.Response
			if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil || resp.DeviceID != "box-1" || renew {
				t.Fatalf("200 for %s with %q (%v)", path, rec.Body.Bytes(), err)
			}
			block, _ := pem.Decode([]byte(resp.Certificate))
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil || c.Subject.CommonName != "box-1" {
				t.Fatalf("issued %v, %v", c.Subject, err)
			}
		case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusRequestEntityTooLarge:
			var e enrollapi.Error
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Code == "" || e.Message == "" {
				t.Fatalf("status %d with %q", rec.Code, rec.Body.Bytes())
			}
		default:
			t.Fatalf("status %d with %q", rec.Code, rec.Body.Bytes())
		}
	})
}
