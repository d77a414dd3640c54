package pki

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"testing"
	"time"
)

// FuzzCSR feeds arbitrary bytes to ParseCSR and Issue: they never panic,
// every error is ErrBadCSR or ErrIdentity, and whatever is issued names
// exactly the device and is for client authentication only.
func FuzzCSR(f *testing.F) {
	ca := newCA(f)
	for _, kind := range []string{"p256", "ed25519", "rsa"} {
		_, csr := csrFor(f, kind, cn("box-1"))
		f.Add(csr)
		p, _ := pem.Decode(csr)
		f.Add(p.Bytes)
	}
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\n-----END CERTIFICATE REQUEST-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ca.Issue(context.Background(), data, "box-1", time.Hour)
		if err != nil {
			if !errors.Is(err, ErrBadCSR) && !errors.Is(err, ErrIdentity) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if c.Subject.CommonName != "box-1" || len(c.DNSNames)+len(c.IPAddresses)+len(c.URIs)+len(c.EmailAddresses) != 0 ||
			c.IsCA || len(c.ExtKeyUsage) != 1 || c.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
			t.Fatalf("issued %+v", c.Subject)
		}
	})
}
