package controller_test

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
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"edgefleet/fleet/api"
	"edgefleet/fleet/api/rest"
	"edgefleet/fleet/artifact"
	"edgefleet/fleet/client"
	"edgefleet/fleet/controller"
	"edgefleet/fleet/controller/controllertest"
	"edgefleet/fleet/enroll/enrollapi"
	"edgefleet/internal/testutil"
	"edgefleet/models/modeltest"
)

// tlsFleet is fleetd with HTTPS from its own CA, a broker TLS listener
// and a password device pw-dev.
type tlsFleet struct {
	c     *controller.Controller
	api   *client.Client
	roots *x509.CertPool
	base  string // https://host:port
}

func startTLSFleet(t *testing.T) *tlsFleet {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	cfg, err := controller.ParseConfig(strings.NewReader(fmt.Sprintf(`
data_dir: %s
http: {listen: "127.0.0.1:0", tls: {hosts: [127.0.0.1]}}
broker: {listen: "127.0.0.1:0", tls_listen: "127.0.0.1:0"}
operators: [{name: test, token: %s}]
devices: [{id: pw-dev, password: pw-secret}]
`, dir, controllertest.Token)))
	if err != nil {
		t.Fatal(err)
	}
	c, err := controller.New(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	testutil.Serve(t, "fleetd", c.Run, c.Ready())
	caPEM, err := os.ReadFile(filepath.Join(dir, "pki", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	f := &tlsFleet{c: c, roots: x509.NewCertPool(), base: "https://" + c.HTTPAddr()}
	f.roots.AppendCertsFromPEM(caPEM)
	f.api, err = client.New(f.base, controllertest.Token, client.Options{Transport: f.transport(nil)})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *tlsFleet) transport(cert *tls.Certificate) *http.Transport {
	cfg := &tls.Config{RootCAs: f.roots}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}
}

// enroll registers id and enrolls it as a device would.
func (f *tlsFleet) enroll(t *testing.T, id string) tls.Certificate {
	t.Helper()
	added, err := f.api.AddDevice(context.Background(), id, map[string]string{"site": "a"})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: id}}, key)
	body, _ := json.Marshal(enrollapi.Request{Token: added.Token, CSR: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))})
	resp, err := (&http.Client{Transport: f.transport(nil)}).Post(f.base+enrollapi.PathEnroll, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out enrollapi.Response
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("enroll %s: %s %v", id, resp.Status, err)
	}
	block, _ := pem.Decode([]byte(out.Certificate))
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}
}

// download fetches an artifact with a client certificate (or none) and
// basic credentials (or none), returning the status.
func (f *tlsFleet) download(t *testing.T, cert *tls.Certificate, user, pass, sha string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, f.base+artifact.URL(sha), nil)
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := (&http.Client{Transport: f.transport(cert)}).Do(req)
	if err != nil {
		return 0 // refused at the handshake
	}
	resp.Body.Close()
	return resp.StatusCode
}

type session struct {
	paho.Client
	lost chan struct{}
}

func (f *tlsFleet) connect(t *testing.T, id string, cert *tls.Certificate, password string) (*session, error) {
	t.Helper()
	s := &session{lost: make(chan struct{})}
	o := paho.NewClientOptions().SetClientID(id).SetUsername(id).SetAutoReconnect(false).
		SetConnectTimeout(5 * time.Second).SetProtocolVersion(4).
		SetConnectionLostHandler(func(paho.Client, error) { close(s.lost) })
	if cert != nil {
		o.AddBroker("ssl://" + f.c.MQTTSAddr()).SetTLSConfig(&tls.Config{RootCAs: f.roots, Certificates: []tls.Certificate{*cert}})
	} else {
		o.AddBroker("tcp://" + f.c.MQTTAddr()).SetPassword(password)
	}
	s.Client = paho.NewClient(o)
	tok := s.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, fmt.Errorf("connect %s timed out", id)
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { s.Disconnect(0) })
	return s, nil
}

// TestDeviceIdentity: devices enrolled through fleetd's HTTPS log in to the
// broker by certificate, download only the artifacts of their own jobs,
// and a revoked device is dropped at once, while a password device from
// fleetd.yaml keeps working.
func TestDeviceIdentity(t *testing.T) {
	f := startTLSFleet(t)
	ctx := context.Background()
	certA, certB := f.enroll(t, "box-a"), f.enroll(t, "box-b")
	a, err := f.connect(t, "box-a", &certA, "")
	if err != nil {
		t.Fatalf("box-a over mTLS: %v", err)
	}
	pw, err := f.connect(t, "pw-dev", nil, "pw-secret")
	if err != nil {
		t.Fatalf("password device: %v", err)
	}
	// box-a reports itself (its labels select it for the rollout).
	st, _ := json.Marshal(api.State{DeviceID: "box-a", Online: true, Labels: map[string]string{"site": "a", "box": "a"}, Model: "yolo", ModelVersion: "1"})
	if tok := a.Publish(api.StateTopic("box-a"), 1, true, st); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("state: %v", tok.Error())
	}
	testutil.WaitFor(t, "box-a online", 10*time.Second, func() bool {
		d, err := f.api.Device(ctx, "box-a")
		return err == nil && d.Online
	})
	model, err := os.ReadFile(modeltest.Path(t, "models", "yolov5n-int8.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	v1 := controllertest.PushModel(t, f.api, "yolo", "1", model)
	v2 := controllertest.PushModel(t, f.api, "yolo", "2", append(model[:len(model):len(model)], 0))
	other := controllertest.PushModel(t, f.api, "other", "1", append(model[:len(model):len(model)], 1))
	controllertest.CreateRollout(t, f.api, rest.CreateRollout{Model: "yolo@2", Selector: "box=a", Waves: "100%", MaxFailures: "0"})

	downloads := []struct {
		name       string
		cert       *tls.Certificate
		user, pass string
		sha        string
		want       int
	}{
		{"job's artifact by certificate", &certA, "", "", v2.SHA256, 200},
		{"the version it runs", &certA, "", "", v1.SHA256, 200},
		{"with its own id as basic user", &certA, "box-a", "", v2.SHA256, 200},
		{"artifact of no job of it", &certA, "", "", other.SHA256, 403},
		{"another device's job", &certB, "", "", v2.SHA256, 403},
		{"certificate with another device's basic user", &certB, "box-a", "", v2.SHA256, 401},
		{"password device, no job", nil, "pw-dev", "pw-secret", v2.SHA256, 403},
		{"wrong password", nil, "pw-dev", "nope", v2.SHA256, 401},
		{"no credentials", nil, "", "", v2.SHA256, 401},
	}
	for _, d := range downloads {
		if got := f.download(t, d.cert, d.user, d.pass, d.sha); got != d.want {
			t.Errorf("download %s: status %d, want %d", d.name, got, d.want)
		}
	}

	// Revoke box-a: its live session is dropped within a second, and it
	// can neither reconnect nor download; pw-dev is undisturbed.
	start := time.Now()
	r, err := f.api.RevokeDevice(ctx, "box-a")
	if err != nil || !r.Disconnected {
		t.Fatalf("revoke: %+v %v", r, err)
	}
	select {
	case <-a.lost:
		if d := time.Since(start); d > time.Second {
			t.Errorf("revoked session dropped after %v, want within 1s", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("revoked device still connected")
	}
	if _, err := f.connect(t, "box-a", &certA, ""); err == nil {
		t.Error("revoked device reconnected")
	}
	if got := f.download(t, &certA, "", "", v2.SHA256); got == 200 {
		t.Error("revoked device downloaded")
	}
	if _, err := f.api.AddDevice(ctx, "box-a", nil); err == nil {
		t.Error("a revoked id got a new token")
	}
	if !pw.IsConnectionOpen() {
		t.Error("password device lost its session")
	}
	if _, err := f.connect(t, "box-b", &certB, ""); err != nil {
		t.Errorf("box-b after box-a's revocation: %v", err)
	}
	// A password device can be revoked too.
	if _, err := f.api.RevokeDevice(ctx, "pw-dev"); err != nil {
		t.Fatal(err)
	}
	<-pw.lost
	if _, err := f.connect(t, "pw-dev", nil, "pw-secret"); err == nil {
		t.Error("revoked password device reconnected")
	}
}
