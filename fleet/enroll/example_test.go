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
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"

	"edgefleet/fleet/enroll"
	"edgefleet/fleet/enroll/enrollapi"
	"edgefleet/fleet/pki"
)

// Example wires enrollment the way fleetd does: the CA in the data dir, the
// bbolt store, the handler on an HTTPS listener whose certificate comes
// from the CA and that verifies device certificates (with revocation)
// at the handshake; then a device enrolls with its token.
func Example() {
	dir, _ := os.MkdirTemp("", "fleetd")
	defer os.RemoveAll(dir)
	ca, err := pki.OpenCA(filepath.Join(dir, "ca"))
	if err != nil {
		log.Fatal(err)
	}
	store, err := enroll.OpenBolt(filepath.Join(dir, "enroll.db"), enroll.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	serverCert, err := ca.ServerCertificate([]string{"127.0.0.1", "localhost"}, 0)
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	h := enroll.NewHandler(enroll.HandlerOptions{CA: ca, Store: store, Log: discard})
	mux.Handle(enrollapi.PathEnroll, h) // beside fleetd's REST API and artifact routes
	mux.Handle(enrollapi.PathRenew, h)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: mux, TLSConfig: pki.ServerConfig(pki.ServerOptions{
		GetCertificate: serverCert.GetCertificate,
		Devices:        ca.Verifier(store), // store is the revocation list
	})}
	go srv.ServeTLS(ln, "", "")
	defer srv.Close()

	// fleetctl devices add box-17 --labels site=a,line=3
	token, err := store.Add(context.Background(), "box-17", map[string]string{"site": "a", "line": "3"})
	if err != nil {
		log.Fatal(err)
	}

	// edge-agent enroll (agent/enroll does this, and writes the files)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "box-17"}}, key)
	body, _ := json.Marshal(enrollapi.Request{Token: token, CSR: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))})
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	resp, err := client.Post("https://"+ln.Addr().String()+enrollapi.PathEnroll, "application/json", bytes.NewReader(body))
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var out enrollapi.Response
	json.NewDecoder(resp.Body).Decode(&out)
	fmt.Println(resp.Status, out.DeviceID)
	// Output: 200 OK box-17
}
