package deploy_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"gopkg.in/yaml.v3"

	"edgefleet/fleet/api"
	"edgefleet/internal/testutil"
)

// TestComposeTopology runs compose.yaml's broker and fleetd replicas as
// local processes, without containers: mosquitto started by
// compose/mosquitto-entrypoint.sh with compose/mosquitto.conf and
// fleet/broker/mosquitto.acl.example, and one fleetd per compose fleetd
// service with its config file. Only addresses and directories are moved
// (ports to free ones on 127.0.0.1, /mosquitto and /var/lib/fleetd to temp
// dirs). The compose device logs in on the device listener, sends detection
// batches and gets every one acknowledged, and the replicas split them
// through the shared subscription: their client ids do not collide.
func TestComposeTopology(t *testing.T) {
	mosq, err1 := exec.LookPath("mosquitto")
	if err1 != nil {
		mosq, err1 = exec.LookPath("/usr/sbin/mosquitto")
	}
	_, err2 := exec.LookPath("mosquitto_passwd")
	if err1 != nil || err2 != nil {
		testutil.Need(t, "mosquitto and mosquitto_passwd are not installed")
	}
	var cf composeFile
	if err := yaml.Unmarshal(readFile(t, "compose.yaml"), &cf); err != nil {
		t.Fatal(err)
	}
	dbURL := ""
	if fleetdFlags(t)["database"] {
		dbURL = testutil.Postgres(t) // a fresh database of its own
	}
	dir := t.TempDir()
	devPort, svcPort := startComposeMosquitto(t, cf, mosq, dir)

	vols := newComposeVolumes(t, cf, dir)
	var names []string
	for name, s := range cf.Services {
		if s.isFleetd() {
			names = append(names, name)
		}
	}
	if len(names) < 2 {
		t.Fatalf("%d fleetd services in compose.yaml", len(names))
	}
	// In name order, each one healthy before the next starts, as compose's
	// depends_on has it.
	slices.Sort(names)
	var replicas []*fleetdProc
	for _, name := range names {
		r := startComposeFleetd(t, name, cf.Services[name], vols, svcPort, dbURL)
		testutil.WaitFor(t, name+" healthy", 30*time.Second, func() bool { return r.healthy() || r.exited() })
		if r.exited() {
			t.Fatalf("%s exited:\n%s", r.name, r.log.String())
		}
		replicas = append(replicas, r)
	}
	if a, b := replicas[0].get(t, "/api/v1/keys"), replicas[1].get(t, "/api/v1/keys"); a != b {
		t.Errorf("the replicas pin different keys: agents would refuse what one of them signs:\n%s\n%s", a, b)
	}

	env := cf.Services["mosquitto"].Environment
	dev, pw, _ := strings.Cut(strings.Fields(env["EDGEFLEET_DEVICES"])[0], ":")
	// Send until every replica has stored some: a replica's subscription
	// may land after the first batches, which then all go to the others.
	// Seqs start from the clock: a PostgreSQL store shared with earlier runs
	// has stored (device, 1..n) already and would count them as duplicates.
	send, acked := deviceClient(t, fmt.Sprintf("127.0.0.1:%d", devPort), dev, pw)
	base, sent := uint64(time.Now().UnixMicro()), 0
	testutil.WaitFor(t, "every replica storing a share of the detections", 30*time.Second, func() bool {
		for range 5 {
			sent++
			send(base + uint64(sent))
		}
		for _, r := range replicas {
			if r.storedEvents(t) == 0 {
				return false
			}
		}
		return true
	})
	testutil.WaitFor(t, "every batch acknowledged", 30*time.Second, func() bool { return acked() == sent })
	total := 0
	for _, r := range replicas {
		n := r.storedEvents(t)
		t.Logf("%s stored %d of %d events", r.name, n, sent)
		if r.exited() {
			t.Errorf("%s exited:\n%s", r.name, r.log.String())
		}
		total += n
	}
	if total != sent {
		t.Errorf("replicas stored %d events, want %d", total, sent)
	}
}

// startComposeMosquitto runs compose/mosquitto-entrypoint.sh with compose's
// mosquitto.conf moved to free ports and dir; it returns the device and the
// service listener ports.
func startComposeMosquitto(t *testing.T, cf composeFile, bin, dir string) (int, int) {
	t.Helper()
	s := cf.Services["mosquitto"]
	conf := string(readFile(t, s.mount("/mosquitto/config/mosquitto.conf")))
	ports := map[string]int{}
	conf = regexp.MustCompile(`(?m)^listener (\d+) \S+$`).ReplaceAllStringFunc(conf, func(l string) string {
		p := freePort(t)
		ports[strings.Fields(l)[1]] = p
		return fmt.Sprintf("listener %d 127.0.0.1", p)
	})
	acl, err := filepath.Abs(s.mount("/mosquitto/config/edgefleet.acl"))
	if err != nil {
		t.Fatal(err)
	}
	conf = strings.ReplaceAll(conf, "/mosquitto/config/edgefleet.acl", acl)
	conf = strings.ReplaceAll(conf, "/mosquitto/data/", dir+"/")
	conf = strings.ReplaceAll(conf, "/mosquitto/data", dir)
	if u := os.Getenv("USER"); u != "" {
		conf = "user " + u + "\n" + conf // do not drop to the mosquitto user when run as root
	} else {
		conf = "user root\n" + conf
	}
	confPath := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", s.mount("/mosquitto/config/entrypoint.sh"))
	cmd.Env = append(os.Environ(), "MOSQUITTO_CONF="+confPath, "MOSQUITTO_PASSWD="+filepath.Join(dir, "passwd"), "MOSQUITTO_BIN="+bin)
	for k, v := range s.Environment {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	log := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	dev, svc := ports["1883"], ports["1884"]
	if dev == 0 || svc == 0 {
		t.Fatalf("mosquitto.conf: listeners %v, want 1883 (devices) and 1884 (fleetd)", ports)
	}
	testutil.WaitFor(t, "mosquitto listening", 10*time.Second, func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", svc))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return dev, svc
}

type fleetdProc struct {
	name string
	http string
	log  *syncBuffer
	done chan struct{}
}

func (p *fleetdProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// storedEvents reads edgefleet_ingest_events_total{result="stored"} from the replica's /metrics.
func (p *fleetdProc) storedEvents(t *testing.T) int {
	t.Helper()
	resp, err := http.Get("http://" + p.http + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), `edgefleet_ingest_events_total{result="stored"} `); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return int(n)
		}
	}
	return 0
}

// composeVolumes stands in for compose's volumes: a directory per named
// volume, bind mounts at their repository path.
type composeVolumes struct {
	dir string
}

func newComposeVolumes(t *testing.T, cf composeFile, dir string) composeVolumes {
	t.Helper()
	for name := range cf.Volumes {
		if err := os.MkdirAll(filepath.Join(dir, "volumes", name), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return composeVolumes{dir: filepath.Join(dir, "volumes")}
}

// mounts maps a service's container paths to local directories, longest
// first. A mount inside another one (a volume at data_dir/ota/keys) becomes
// a symbolic link inside the outer one's directory.
func (v composeVolumes) mounts(t *testing.T, s composeService) [][2]string {
	t.Helper()
	var m [][2]string
	for _, vol := range s.Volumes {
		parts := strings.Split(vol, ":")
		src := filepath.Join(v.dir, parts[0])
		if strings.HasPrefix(parts[0], ".") {
			src, _ = filepath.Abs(parts[0])
		}
		m = append(m, [2]string{parts[1], src})
	}
	slices.SortFunc(m, func(a, b [2]string) int { return len(b[0]) - len(a[0]) })
	for i, inner := range m {
		for _, outer := range m[i+1:] {
			if rel, ok := strings.CutPrefix(inner[0], outer[0]+"/"); ok {
				link := filepath.Join(outer[1], rel)
				if err := os.MkdirAll(filepath.Dir(link), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(inner[1], link); err != nil && !os.IsExist(err) {
					t.Fatal(err)
				}
				break
			}
		}
	}
	return m
}

// local is where a container path of a service lies here ("" if not mounted).
func local(mounts [][2]string, path string) string {
	for _, m := range mounts {
		if path == m[0] || strings.HasPrefix(path, m[0]+"/") {
			return m[1] + strings.TrimPrefix(path, m[0])
		}
	}
	return ""
}

// localize rewrites every mounted container path in a decoded config.
func localize(v any, mounts [][2]string) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			v[k] = localize(x, mounts)
		}
	case []any:
		for i, x := range v {
			v[i] = localize(x, mounts)
		}
	case string:
		if l := local(mounts, v); l != "" {
			return l
		}
	}
	return v
}

// startComposeFleetd runs one compose fleetd service with its config and
// volumes, the broker URL pointed at the local mosquitto's service listener
// and its HTTP on a free port.
func startComposeFleetd(t *testing.T, name string, s composeService, vols composeVolumes, svcPort int, dbURL string) *fleetdProc {
	t.Helper()
	mounts := vols.mounts(t, s)
	cfgPath, _ := flagValue(s.Command, "config")
	var cfg map[string]any
	if err := yaml.Unmarshal(readFile(t, local(mounts, cfgPath)), &cfg); err != nil {
		t.Fatal(err)
	}
	cfg = localize(cfg, mounts).(map[string]any)
	p := &fleetdProc{name: name, http: fmt.Sprintf("127.0.0.1:%d", freePort(t)), log: &syncBuffer{}, done: make(chan struct{})}
	broker := cfg["broker"].(map[string]any)
	if u := broker["url"].(string); u != "tcp://mosquitto:1884" {
		t.Fatalf("%s: broker.url %s, want tcp://mosquitto:1884", name, u)
	}
	broker["url"] = fmt.Sprintf("tcp://127.0.0.1:%d", svcPort)
	cfg["http"].(map[string]any)["listen"] = p.http
	if dbURL != "" {
		cfg["database"].(map[string]any)["url"] = dbURL
	} else {
		delete(cfg, "database")
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(vols.dir, name+".yaml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	args := slices.Clone(s.Command)
	for i := range args {
		if l := local(mounts, args[i]); l != "" {
			args[i] = l
		}
		if i > 0 && strings.TrimLeft(args[i-1], "-") == "config" {
			args[i] = path
		}
	}
	cmd := exec.Command(fleetdBinary(t), args...)
	cmd.Env = append(os.Environ(), "FLEETD_ADMIN_TOKEN="+adminToken)
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { err := cmd.Wait(); fmt.Fprintf(p.log, "fleetd exited: %v\n", err); close(p.done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("%s log:\n%s", name, p.log.String())
		}
	})
	return p
}

const adminToken = "deploy-test-admin-token"

func (p *fleetdProc) healthy() bool {
	resp, err := http.Get("http://" + p.http + "/healthz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// get returns the body of an operator GET.
func (p *fleetdProc) get(t *testing.T, path string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+p.http+path, nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s GET %s: %s %s", p.name, path, resp.Status, b)
	}
	return string(b)
}

// deviceClient connects as a device on the device listener (with a client
// id that is not its id: mosquitto replaces it with the username). send
// publishes a one-event batch; acked counts the seqs acknowledged so far.
func deviceClient(t *testing.T, addr, device, password string) (send func(seq uint64), acked func() int) {
	t.Helper()
	var mu sync.Mutex
	got := map[uint64]bool{}
	opts := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("not-the-device-id").
		SetUsername(device).SetPassword(password).SetCleanSession(true).SetAutoReconnect(false)
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("device %s login on the device listener: %v", device, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	tok := c.Subscribe(api.AcksTopic(device), 1, func(_ paho.Client, m paho.Message) {
		var a api.Ack
		if json.Unmarshal(m.Payload(), &a) != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, r := range a.Ranges {
			for s := r.From; s <= r.To; s++ {
				got[s] = true
			}
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe acks: %v", tok.Error())
	}
	now := time.Now().UnixMicro()
	send = func(seq uint64) {
		b, _ := json.Marshal(api.DetectionBatch{DeviceID: device, Events: []api.Event{{
			Seq: seq, CameraID: "belt", Time: now + int64(seq), Label: "person", Score: 0.9, Box: [4]float32{1, 2, 3, 4},
		}}})
		if tok := c.Publish(api.DetectionsTopic(device), 1, false, b); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	acked = func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(got)
	}
	return send, acked
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// syncBuffer is a bytes.Buffer safe for a process writing and a test reading.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var _ io.Writer = (*syncBuffer)(nil)
