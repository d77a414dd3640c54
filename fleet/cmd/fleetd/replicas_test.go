package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"edgefleet/fleet/api/rest"
	"edgefleet/fleet/client"
	"edgefleet/fleet/controller/controllertest"
	"edgefleet/fleet/sim"
	"edgefleet/internal/testutil"
	"edgefleet/models/modeltest"
)

// The replica tests run the fleet as it runs past one machine: fleetd
// replicas on one PostgreSQL and one mosquitto (with the password file
// and the ACL of fleet/broker/mosquitto.acl.example), two real edge-agent
// processes and simulated devices that resend what is not acked.

const (
	fleetdPass = "fleetd-password"
	simPass    = "sim-password"
	simDevices = 200
)

var agentIDs = []string{"box-1", "box-2"}

// replicaMosquitto starts a private mosquitto with passwords for fleetd,
// the simulator and the agents and the ACL example plus a rule for the
// simulator's service user, and returns its address and process id.
func replicaMosquitto(t testing.TB) (string, int) {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		bin = "/usr/sbin/mosquitto"
	}
	passwdBin, perr := exec.LookPath("mosquitto_passwd")
	if _, err := os.Stat(bin); err != nil || perr != nil {
		testutil.Need(t, "mosquitto and mosquitto_passwd not installed")
	}
	dir := t.TempDir()
	passwd := filepath.Join(dir, "passwd")
	users := [][2]string{{"fleetd", fleetdPass}, {"sim", simPass}}
	for _, id := range agentIDs {
		users = append(users, [2]string{id, "pw-" + id})
	}
	for i, u := range users {
		args := []string{"-b", passwd, u[0], u[1]}
		if i == 0 {
			args = []string{"-c", "-b", passwd, u[0], u[1]}
		}
		if out, err := exec.Command(passwdBin, args...).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd: %v: %s", err, out)
		}
	}
	example, err := os.ReadFile(filepath.Join("..", "..", "broker", "mosquitto.acl.example"))
	if err != nil {
		t.Fatal(err)
	}
	acl := filepath.Join(dir, "acl")
	os.WriteFile(acl, append(example, "\nuser sim\ntopic readwrite edgefleet/#\n"...), 0o600)
	port := freePortStr(t)
	u, _ := user.Current()
	conf := filepath.Join(dir, "mosquitto.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf(`user %s
listener %s 127.0.0.1
allow_anonymous false
password_file %s
acl_file %s
max_inflight_messages 1000
max_queued_messages 100000
`, u.Username, port, passwd, acl)), 0o600)
	cmd := exec.Command(bin, "-c", conf)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := "127.0.0.1:" + port
	testutil.WaitFor(t, "mosquitto listening", 5*time.Second, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return addr, cmd.Process.Pid
}

func freePortStr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// replica is one fleetd process.
type replica struct {
	name   string
	cmd    *exec.Cmd
	http   string
	api    *client.Client
	exited chan struct{}
	leader chan struct{} // closed when it first takes the rollout lease
}

// startReplica runs a fleetd on the database and the external broker.
func startReplica(t testing.TB, bin, name, dbURL, mq string) *replica {
	t.Helper()
	dir := t.TempDir()
	var devs []string
	for _, id := range agentIDs {
		devs = append(devs, fmt.Sprintf("{id: %s, password: pw-%s}", id, id))
	}
	cfg := filepath.Join(dir, "fleetd.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
data_dir: %s
log: {format: json}
http: {listen: "127.0.0.1:0"}
operators: [{name: test, token: %s}]
database: {url: %q}
broker: {url: "tcp://%s", client_id: %s, username: fleetd, password: %s}
devices: [%s]
ota: {health_window: 1s, job_timeout: 2m}
`, filepath.Join(dir, "data"), testToken, dbURL, mq, name, fleetdPass, strings.Join(devs, ", "))), 0o600)
	r := &replica{name: name, cmd: exec.Command(bin, "--config", cfg), exited: make(chan struct{}), leader: make(chan struct{})}
	stderr, _ := r.cmd.StderrPipe()
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	var leaderOnce sync.Once
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var l struct {
				Msg      string `json:"msg"`
				HTTPAddr string `json:"http_addr"`
			}
			json.Unmarshal(sc.Bytes(), &l)
			switch {
			case l.Msg == "http listening":
				r.http = l.HTTPAddr
			case l.Msg == "fleetd ready":
				close(ready)
			case strings.HasPrefix(l.Msg, "rollout lease taken"):
				leaderOnce.Do(func() { close(r.leader) }) // again after losing it
			}
			if testing.Verbose() {
				t.Logf("%s: %s", name, sc.Bytes())
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	go func() { r.cmd.Wait(); close(r.exited) }()
	t.Cleanup(func() { r.cmd.Process.Kill(); <-r.exited })
	select {
	case <-ready:
	case <-r.exited:
		t.Fatalf("fleetd %s exited before it was ready", name)
	case <-time.After(30 * time.Second):
		t.Fatalf("fleetd %s not ready in 30s", name)
	}
	r.api = controllertest.Client(t, r.http)
	return r
}

// kill is kill -9.
func (r *replica) kill(t *testing.T) {
	t.Helper()
	if err := r.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-r.exited
}

// startAgents builds edge-agent and runs one process per agentIDs entry
// with a synthetic belt camera and a real model, against mosquitto.
func startAgents(t *testing.T, mq string) {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "edge-agent")
	if out, err := exec.Command("go", "build", "-o", bin, "edgefleet/agent/cmd/edge-agent").CombinedOutput(); err != nil {
		t.Fatalf("go build edge-agent: %v\n%s", err, out)
	}
	model := modeltest.Path(t, "models", "yolov8n_full_integer_quant.tflite")
	images := modeltest.Path(t, "images")
	for i, id := range agentIDs {
		cfg := filepath.Join(dir, id+".yaml")
		os.WriteFile(cfg, []byte(fmt.Sprintf(`device_id: %s
labels: {site: agents}
model: {path: %s, version: "1"}
cameras:
  - {id: belt, source: synth, path: %s, seed: %d, fps: 2}
spool: {path: %s}
telemetry_interval: 2s
http: {listen: "127.0.0.1:0"}
fleet: {broker: "tcp://%s", password: pw-%s}
`, id, model, images, i+1, filepath.Join(dir, id+".db"), mq, id)), 0o600)
		cmd := exec.Command(bin, "run", "--config", cfg)
		var log lockedBuffer
		cmd.Stderr = &log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		t.Cleanup(func() {
			cmd.Process.Kill()
			<-done
			if t.Failed() {
				s := log.String()
				t.Logf("%s log (tail):\n%s", id, s[max(0, len(s)-3000):])
			}
		})
	}
}

// startSim runs the simulated devices (site-0, resending after 3 s) for
// d; wait returns the report once they have sent for d and drained.
func startSim(t *testing.T, mq string, d time.Duration) (wait func() sim.Report) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	connected := make(chan int, 1)
	done := make(chan sim.Report, 1)
	go func() {
		rep, err := sim.Run(ctx, sim.Options{Broker: "tcp://" + mq, Devices: simDevices, Rate: 1, Events: 3, TelemetryEvery: 10 * time.Second,
			Duration: d, Drain: 30 * time.Second, ResendAfter: 3 * time.Second, Sites: 1, ConnectRate: 1000,
			UpdateStep: 10 * time.Millisecond, MaxHealthWindow: time.Second,
			Login:       func(string) (string, string) { return "sim", simPass },
			OnConnected: func(n int) { connected <- n }})
		if err != nil {
			t.Errorf("sim: %v", err)
		}
		done <- rep
	}()
	select {
	case n := <-connected:
		if n != simDevices {
			cancel()
			t.Fatalf("%d of %d simulated devices connected", n, simDevices)
		}
	case rep := <-done:
		cancel()
		t.Fatalf("sim ended: %v", rep)
	}
	var once sync.Once
	var rep sim.Report
	wait = func() sim.Report {
		once.Do(func() { rep = <-done })
		return rep
	}
	t.Cleanup(func() { cancel(); wait() })
	return wait
}

// seqStats is, per device, how many detections the database holds and
// their lowest and highest seq.
type seqStats struct{ n, min, max int64 }

func dbSeqs(t *testing.T, dsn string) map[string]seqStats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `SELECT device, count(*), min(seq), max(seq) FROM detections GROUP BY device`)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]seqStats{}
	var dev string
	var s seqStats
	if _, err := pgx.ForEachRow(rows, []any{&dev, &s.n, &s.min, &s.max}, func() error { out[dev] = s; return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// complete reports whether every expected device has seqs exactly 1..N
// stored (a seq is stored at most once: it is the key).
func complete(got map[string]seqStats, devices []string) (bool, string) {
	for _, d := range devices {
		s, ok := got[d]
		if !ok || s.min != 1 || s.n != s.max {
			return false, fmt.Sprintf("%s: %d stored, seqs %d..%d", d, s.n, s.min, s.max)
		}
	}
	return true, ""
}

func allDevices() []string {
	devs := append([]string(nil), agentIDs...)
	for i := range simDevices {
		devs = append(devs, fmt.Sprintf("sim-%d", i))
	}
	return devs
}

// checkREST: the REST API of r counts, for every device, the detections
// the database held in got (or more, for the agents, which still run).
func checkREST(t *testing.T, r *replica, got map[string]seqStats) {
	t.Helper()
	ctx := context.Background()
	from := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	to := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	for _, d := range allDevices() {
		c, err := r.api.CountDetections(ctx, rest.DetectionQuery{Device: d, From: from, To: to}, "2h")
		if err != nil {
			t.Fatalf("%s: count %s: %v", r.name, d, err)
		}
		// The agents still run: they may have more stored by now.
		if n := int64(c.Total); n < got[d].n || n > got[d].n && !slices.Contains(agentIDs, d) {
			t.Errorf("%s: REST counts %d detections of %s, the database had %d", r.name, c.Total, d, got[d].n)
		}
	}
}

// TestReplicasKill: two fleetd replicas on one PostgreSQL and mosquitto,
// two edge-agents and 200 simulated devices; the replica driving a
// rollout is killed with kill -9 mid-ingest. Every device's stored seqs
// are exactly 1..N, the other replica's REST API shows them all, and the
// rollout completes from the other replica.
func TestReplicasKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs fleetd and edge-agent")
	}
	dsn := testutil.Postgres(t)
	mq, _ := replicaMosquitto(t)
	bin := buildFleetd(t, t.TempDir())
	model, err := os.ReadFile(modeltest.Path(t, "models", "yolov5n-int8.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	a := startReplica(t, bin, "fleetd-a", dsn, mq)
	select {
	case <-a.leader:
	case <-time.After(15 * time.Second):
		t.Fatal("fleetd-a did not take the rollout lease")
	}
	b := startReplica(t, bin, "fleetd-b", dsn, mq)
	startAgents(t, mq)
	stop := startSim(t, mq, 40*time.Second)
	controllertest.WaitOnline(t, b.api, simDevices+len(agentIDs))
	controllertest.PushModel(t, b.api, "yolo-sim", "2", model)
	sum := controllertest.CreateRollout(t, b.api, rest.CreateRollout{Model: "yolo-sim@2", Selector: "site=site-0", Canary: 2, Waves: "50%,100%", MaxFailures: "0"})
	before := controllertest.WaitRollout(t, b.api, sum.ID, 30*time.Second, func(v rest.Rollout) bool {
		return v.State == rest.StateWave && v.Wave >= 1
	})
	a.kill(t)
	t.Logf("killed fleetd-a (the rollout's engine) %v after the start, in wave %d: %+v", time.Since(start).Round(time.Second), before.Wave, before.Progress)
	select {
	case <-b.leader:
	case <-time.After(15 * time.Second):
		t.Fatal("fleetd-b did not take the rollout lease within 15s")
	}
	after := controllertest.WaitRollout(t, b.api, sum.ID, 60*time.Second, func(v rest.Rollout) bool { return controllertest.Final(v.State) })
	if after.State != rest.StateCompleted || after.Succeeded != simDevices || after.Failed != 0 {
		t.Errorf("rollout after the kill: %+v", after.RolloutSummary)
	}
	rep := stop()
	t.Logf("sim: %v; %d batches resent", rep, rep.Resent)
	if rep.Lost != 0 {
		t.Errorf("%d simulated batches never acked", rep.Lost)
	}
	var got map[string]seqStats
	testutil.WaitFor(t, "every device's seqs 1..N stored", 30*time.Second, func() bool {
		got = dbSeqs(t, dsn)
		ok, _ := complete(got, allDevices())
		return ok
	})
	checkREST(t, b, got)
	t.Logf("%d devices complete (agents: %v, %v); %v in all", len(got), got[agentIDs[0]], got[agentIDs[1]], time.Since(start).Round(time.Second))
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// pgProxy forwards TCP connections to PostgreSQL until cut: then it
// closes every connection and refuses new ones until restored.
type pgProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
}

func startPGProxy(t *testing.T, target string) *pgProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &pgProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	t.Cleanup(func() { ln.Close(); p.cut() })
	go p.serve()
	return p
}

func (p *pgProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		go p.pipe(c)
	}
}

func (p *pgProxy) pipe(c net.Conn) {
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.down {
		p.mu.Unlock()
		c.Close()
		s.Close()
		return
	}
	p.conns[c], p.conns[s] = struct{}{}, struct{}{}
	p.mu.Unlock()
	go func() { io.Copy(s, c); s.Close(); c.Close() }()
	io.Copy(c, s)
	c.Close()
	s.Close()
}

// cut drops every connection and refuses new ones.
func (p *pgProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

func (p *pgProxy) restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

// TestReplicasDatabaseOutage: PostgreSQL unreachable for 20 s during
// ingest (a proxy between fleetd and PostgreSQL cuts every connection):
// the replicas stop acking and report it in /healthz, devices keep their
// detections, and once it is back ingest resumes by itself with nothing
// lost and nothing stored twice.
func TestReplicasDatabaseOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs fleetd and edge-agent")
	}
	dsn := testutil.Postgres(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy := startPGProxy(t, u.Host)
	viaProxy := *u
	viaProxy.Host = proxy.ln.Addr().String()
	mq, _ := replicaMosquitto(t)
	bin := buildFleetd(t, t.TempDir())
	start := time.Now()
	var reps []*replica
	for _, name := range []string{"fleetd-a", "fleetd-b"} {
		reps = append(reps, startReplica(t, bin, name, viaProxy.String(), mq))
	}
	startAgents(t, mq)
	wait := startSim(t, mq, 45*time.Second)
	controllertest.WaitOnline(t, reps[1].api, simDevices+len(agentIDs))
	testutil.WaitFor(t, "detections of every device stored", 30*time.Second, func() bool { return len(dbSeqs(t, dsn)) == simDevices+len(agentIDs) })

	proxy.cut()
	cut := time.Now()
	ctx := context.Background()
	for _, r := range reps {
		testutil.WaitFor(t, r.name+"'s /healthz reporting the database", 15*time.Second, func() bool {
			_, err := r.api.Health(ctx)
			return err != nil
		})
	}
	for time.Since(cut) < 20*time.Second {
		select {
		case <-reps[0].exited:
			t.Fatal("fleetd-a exited during the outage")
		case <-reps[1].exited:
			t.Fatal("fleetd-b exited during the outage")
		case <-time.After(time.Until(cut.Add(20 * time.Second))):
		}
	}
	during := dbSeqs(t, dsn)
	proxy.restore()
	t.Logf("database back after %v", time.Since(cut).Round(time.Second))
	for _, r := range reps {
		testutil.WaitFor(t, r.name+"'s /healthz ok again", 30*time.Second, func() bool {
			_, err := r.api.Health(ctx)
			return err == nil
		})
	}
	rep := wait()
	t.Logf("sim: %v; %d batches resent", rep, rep.Resent)
	if rep.Lost != 0 {
		t.Errorf("%d simulated batches never acked", rep.Lost)
	}
	var got map[string]seqStats
	testutil.WaitFor(t, "every device's seqs 1..N stored", 30*time.Second, func() bool {
		got = dbSeqs(t, dsn)
		ok, _ := complete(got, allDevices())
		return ok
	})
	for _, id := range agentIDs {
		if got[id].max <= during[id].max {
			t.Errorf("%s: nothing stored after the outage (seq %d during, %d after)", id, during[id].max, got[id].max)
		}
	}
	checkREST(t, reps[0], got)
	t.Logf("%d devices complete (agents: %v, %v); %v in all", len(got), got[agentIDs[0]], got[agentIDs[1]], time.Since(start).Round(time.Second))
}
