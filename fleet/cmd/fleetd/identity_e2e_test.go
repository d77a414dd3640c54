package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"edgefleet/fleet/api/rest"
	"edgefleet/fleet/client"
	"edgefleet/fleet/controller/controllertest"
	"edgefleet/internal/testutil"
	"edgefleet/models/modeltest"
)

// goBuild builds a command of the module into dir.
func goBuild(t *testing.T, dir, pkg string) string {
	t.Helper()
	bin := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// proc is a process whose stderr is kept for the test's log.
type proc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	log  bytes.Buffer
	done chan struct{}
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.Write(b)
}

func (p *proc) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(name, args...), done: make(chan struct{})}
	p.cmd.Stderr = p
	p.cmd.Stdout = p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			s := p.String()
			t.Logf("%s log (last 6000 bytes):\n%s", filepath.Base(name), s[max(0, len(s)-6000):])
		}
	})
	return p
}

// startTLSFleetd runs fleetd with HTTPS and the broker's TLS listener, both
// with certificates from its own fleet CA, device certificates of
// lifetime, and returns its HTTPS and MQTTS addresses.
func startTLSFleetd(t *testing.T, bin, dir string, lifetime time.Duration) (p *proc, httpAddr, mqttsAddr string) {
	t.Helper()
	cfg := filepath.Join(dir, "fleetd.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
data_dir: %s
log: {format: json}
http: {listen: "127.0.0.1:0", tls: {hosts: [127.0.0.1]}}
broker: {listen: "127.0.0.1:0", tls_listen: "127.0.0.1:0"}
operators: [{name: test, token: %s}]
enroll: {lifetime: %s}
`, filepath.Join(dir, "data"), controllertest.Token, lifetime)), 0o600)
	p = &proc{cmd: exec.Command(bin, "--config", cfg), done: make(chan struct{})}
	stderr, _ := p.cmd.StderrPipe()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.Write(append(sc.Bytes(), '\n'))
			var l struct{ Msg, MQTTSAddr, HTTPAddr string }
			var raw map[string]any
			json.Unmarshal(sc.Bytes(), &raw)
			l.Msg, _ = raw["msg"].(string)
			switch l.Msg {
			case "broker listening":
				mqttsAddr, _ = raw["mqtts_addr"].(string)
			case "http listening":
				httpAddr, _ = raw["http_addr"].(string)
			case "fleetd ready":
				close(ready)
			}
		}
	}()
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			s := p.String()
			t.Logf("fleetd log (last 6000 bytes):\n%s", s[max(0, len(s)-6000):])
		}
	})
	select {
	case <-ready:
	case <-p.done:
		t.Fatal("fleetd exited before it was ready")
	case <-time.After(30 * time.Second):
		t.Fatal("fleetd not ready in 30s")
	}
	return p, httpAddr, mqttsAddr
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestEnrolledAgentEndToEnd is issue 12's end-to-end check, with real
// processes: `fleetctl devices add` prints a token, `edge-agent enroll`
// trades it for a certificate, and `edge-agent run` ships detections over
// mutual TLS to the embedded broker, downloads a rollout's model over
// HTTPS with its certificate, renews that certificate (a lifetime of
// seconds here) without dropping its session, and is dropped by
// `fleetctl devices revoke` within a second.
func TestEnrolledAgentEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs fleetd, fleetctl and edge-agent")
	}
	const lifetime = 24 * time.Second
	e := startIdentityFleet(t, lifetime)
	token := e.fleetctl(t, "devices", "add", "box-17", "--labels", "site=a,line=3")
	cfg := e.writeBox(t)
	first := e.enroll(t, cfg, token)
	agent := start(t, e.agentBin, "run", "--config", cfg)
	ctx := context.Background()
	testutil.WaitFor(t, "box-17 online", 60*time.Second, func() bool {
		d, err := e.api.Device(ctx, "box-17")
		return err == nil && d.Online
	})
	testutil.WaitFor(t, "detections from box-17", 60*time.Second, func() bool {
		p, err := e.api.Detections(ctx, rest.DetectionQuery{Device: "box-17", Limit: 1})
		return err == nil && len(p.Records) > 0
	})
	swapped := e.rollout(t)
	e.checkRenewal(t, agent, first, lifetime, swapped)
	e.checkRevoke(t, agent)
}

// identityFleet is a fleetd with HTTPS and MQTT over TLS, the binaries and
// an API client that trusts the fleet CA.
type identityFleet struct {
	dir, server, mqtts, caFile string
	caPEM                      []byte
	fleetctlBin, agentBin      string
	model2                     string
	api                        *client.Client
}

func startIdentityFleet(t *testing.T, lifetime time.Duration) *identityFleet {
	t.Helper()
	bins := t.TempDir()
	e := &identityFleet{dir: t.TempDir(), model2: modeltest.Path(t, "models", "yolo11n_full_integer_quant.tflite")}
	fleetd := buildFleetd(t, bins)
	e.fleetctlBin = goBuild(t, bins, "edgefleet/fleet/cmd/fleetctl")
	e.agentBin = goBuild(t, bins, "edgefleet/agent/cmd/edge-agent")
	_, httpAddr, mqttsAddr := startTLSFleetd(t, fleetd, e.dir, lifetime)
	if httpAddr == "" || mqttsAddr == "" {
		t.Fatalf("fleetd addresses: https %q mqtts %q", httpAddr, mqttsAddr)
	}
	e.server, e.mqtts = "https://"+httpAddr, mqttsAddr
	e.caFile = filepath.Join(e.dir, "data", "pki", "ca.pem")
	var err error
	if e.caPEM, err = os.ReadFile(e.caFile); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(e.caPEM)
	if e.api, err = client.New(e.server, controllertest.Token, client.Options{Transport: &http.Transport{TLSClientConfig: tlsConfig(roots)}}); err != nil {
		t.Fatal(err)
	}
	return e
}

// fleetctl runs the real fleetctl against the fleet and returns its output.
func (e *identityFleet) fleetctl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := e.fleetctlErr(args...)
	if err != nil {
		t.Fatalf("fleetctl %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// fleetctlErr runs the real fleetctl; its error carries fleetctl's stderr.
func (e *identityFleet) fleetctlErr(args ...string) (string, error) {
	cmd := exec.Command(e.fleetctlBin, args...)
	cmd.Env = append(os.Environ(), "EDGEFLEET_SERVER="+e.server, "EDGEFLEET_TOKEN="+controllertest.Token, "SSL_CERT_FILE="+e.caFile, "HOME="+e.dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// writeBox prepares the box: the fleet CA is put there first (how it
// trusts fleetd's HTTPS), and the agent's config names where its identity goes.
func (e *identityFleet) writeBox(t *testing.T) string {
	t.Helper()
	model := modeltest.Path(t, "models", "yolov8n_full_integer_quant.tflite")
	images := modeltest.Path(t, "images")
	box := filepath.Join(e.dir, "box")
	os.MkdirAll(box, 0o755)
	os.WriteFile(filepath.Join(box, "ca.pem"), e.caPEM, 0o644)
	// The box pins fleetd's signing key, as an operator exports it.
	e.fleetctl(t, "keys", "export", "-o", filepath.Join(box, "fleet.pub"))
	cfg := filepath.Join(box, "agent.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`device_id: box-17
labels: {site: a, line: "3"}
model: {path: %s, name: belt-detector, version: "1", threads: 1}
cameras:
  - {id: belt, source: synth, path: %s, seed: 1, fps: 2}
spool: {path: %s}
fleet:
  broker: ssl://%s
  ca_file: %s
  cert_file: %s
  key_file: %s
  server: %s
update:
  keys: [%s]
  artifact_url: %[8]s
  policy: {max_latency_ratio: 20}
telemetry_interval: 1s
http: {listen: "127.0.0.1:0"}
log_level: debug
`, model, images, filepath.Join(box, "spool.db"), e.mqtts, filepath.Join(box, "ca.pem"), filepath.Join(box, "device.pem"),
		filepath.Join(box, "device-key.pem"), e.server, filepath.Join(box, "fleet.pub"))), 0o600)
	return cfg
}

// enroll runs edge-agent enroll with token, checks the key and the
// certificate, and that the token does not work twice.
func (e *identityFleet) enroll(t *testing.T, cfg, token string) *x509.Certificate {
	t.Helper()
	box := filepath.Dir(cfg)
	out, err := exec.Command(e.agentBin, "enroll", "--config", cfg, "--token", token).CombinedOutput()
	if err != nil {
		t.Fatalf("edge-agent enroll: %v\n%s", err, out)
	}
	if st, err := os.Stat(filepath.Join(box, "device-key.pem")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("device key: %v %v", st.Mode(), err)
	}
	first := readCert(t, filepath.Join(box, "device.pem"))
	if first.Subject.CommonName != "box-17" {
		t.Fatalf("certificate subject %q", first.Subject.CommonName)
	}
	out, err = exec.Command(e.agentBin, "enroll", "--config", cfg, "--token", token).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "token_used") {
		t.Fatalf("reused token: %v\n%s", err, out)
	}
	return first
}

// rollout pushes version 2, which the agent downloads over HTTPS with its
// certificate; it returns when detections of version 2 arrive.
func (e *identityFleet) rollout(t *testing.T) time.Time {
	t.Helper()
	ctx := context.Background()
	f, err := os.Open(e.model2)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := e.api.Push(ctx, rest.KindModel, rest.Upload{Name: "belt-detector", Version: "2"}, "model.tflite", f); err != nil {
		t.Fatal(err)
	}
	sum := controllertest.CreateRollout(t, e.api, rest.CreateRollout{Model: "belt-detector@2", Selector: "site=a", Waves: "100%", MaxFailures: "0", HealthWindow: "3s", JobTimeout: "3m"})
	v := controllertest.WaitRollout(t, e.api, sum.ID, 3*time.Minute, func(v rest.Rollout) bool { return controllertest.Final(v.State) })
	if v.State != rest.StateCompleted || v.Succeeded != 1 {
		t.Fatalf("rollout: %+v", v.RolloutSummary)
	}
	swapped := time.Now()
	testutil.WaitFor(t, "detections of version 2", 60*time.Second, func() bool {
		p, err := e.api.Detections(ctx, rest.DetectionQuery{Device: "box-17", Limit: 1})
		return err == nil && len(p.Records) > 0 && p.Records[0].ModelVersion == "2"
	})
	return swapped
}

// checkRenewal: past the first certificate's end, the agent has a new one
// and kept its session all along.
func (e *identityFleet) checkRenewal(t *testing.T, agent fmt.Stringer, first *x509.Certificate, lifetime time.Duration, swapped time.Time) {
	t.Helper()
	ctx := context.Background()
	testutil.WaitFor(t, "the first certificate to expire", lifetime+30*time.Second, func() bool {
		if d, err := e.api.Device(ctx, "box-17"); err != nil || !d.Online {
			t.Fatalf("box-17 offline during renewal (%v)", err)
		}
		return time.Now().After(first.NotAfter.Add(time.Second))
	})
	if renewed := readCert(t, filepath.Join(e.dir, "box", "device.pem")); !renewed.NotAfter.After(first.NotAfter) {
		t.Fatalf("certificate not renewed: not after %v, the first's %v", renewed.NotAfter, first.NotAfter)
	}
	if !strings.Contains(agent.String(), "renew") {
		t.Error("the agent's log says nothing of a renewal")
	}
	p, err := e.api.Detections(ctx, rest.DetectionQuery{Device: "box-17", From: time.Now().Add(-5 * time.Second).UTC().Format(time.RFC3339), Limit: 1})
	if err != nil || len(p.Records) == 0 {
		t.Fatalf("no detections in the last 5 s, %v after the swap (%v)", time.Since(swapped).Round(time.Second), err)
	}
}

// checkRevoke: fleetd drops the session at once; the device goes offline
// and its reconnects are refused.
func (e *identityFleet) checkRevoke(t *testing.T, agent fmt.Stringer) {
	t.Helper()
	ctx := context.Background()
	start := time.Now()
	var r rest.DeviceRevoked
	if err := json.Unmarshal([]byte(e.fleetctl(t, "devices", "revoke", "box-17", "--json")), &r); err != nil || !r.Disconnected {
		t.Fatalf("revoke: %+v %v", r, err)
	}
	testutil.WaitFor(t, "box-17 offline", 10*time.Second, func() bool {
		d, err := e.api.Device(ctx, "box-17")
		return err == nil && !d.Online
	})
	t.Logf("revoked: offline in fleetd's registry %v after the revoke command", time.Since(start).Round(10*time.Millisecond))
	testutil.WaitFor(t, "the agent to be refused", 10*time.Second, func() bool {
		return strings.Contains(agent.String(), "connection lost") && strings.Contains(agent.String(), "bad certificate")
	})
}

func tlsConfig(roots *x509.CertPool) *tls.Config { return &tls.Config{RootCAs: roots} }
