package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"edgefleet/fleet/client"
)

const (
	token      = "soak-operator-token"
	fleetdPass = "soak-fleetd-password"
	simPass    = "soak-sim-password"
)

// agentPass is an agent's MQTT and artifact password.
func agentPass(id string) string { return "pw-" + id }

// startMosquitto runs a private mosquitto with passwords for fleetd, the
// simulator and the agents and the ACL of fleet/broker/mosquitto.acl.example
// (plus the simulator's service user). The broker stays up while fleetd
// is killed, so simulated devices keep their sessions and resend.
func (s *soak) startMosquitto(agents []string) error {
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		bin = "/usr/sbin/mosquitto"
	}
	pwBin, perr := exec.LookPath("mosquitto_passwd")
	if _, err := os.Stat(bin); err != nil || perr != nil {
		return fmt.Errorf("soak: mosquitto and mosquitto_passwd are needed (apt-get install mosquitto)")
	}
	dir := filepath.Join(s.dir, "mosquitto")
	os.MkdirAll(dir, 0o755)
	passwd := filepath.Join(dir, "passwd")
	users := [][2]string{{"fleetd", fleetdPass}, {"sim", simPass}}
	for _, id := range agents {
		users = append(users, [2]string{id, agentPass(id)})
	}
	for i, u := range users {
		args := []string{"-b", passwd, u[0], u[1]}
		if i == 0 {
			args = append([]string{"-c"}, args...)
		}
		if out, err := exec.Command(pwBin, args...).CombinedOutput(); err != nil {
			return fmt.Errorf("soak: mosquitto_passwd: %v: %s", err, out)
		}
	}
	example, err := os.ReadFile(filepath.Join(s.root, "fleet", "broker", "mosquitto.acl.example"))
	if err != nil {
		return fmt.Errorf("soak: the mosquitto ACL example: %w", err)
	}
	acl := filepath.Join(dir, "acl")
	os.WriteFile(acl, append(example, "\nuser sim\ntopic readwrite edgefleet/#\n"...), 0o600)
	port, err := freePort()
	if err != nil {
		return err
	}
	u, _ := user.Current()
	conf := filepath.Join(dir, "mosquitto.conf")
	os.WriteFile(conf, fmt.Appendf(nil, `user %s
listener %d 127.0.0.1
allow_anonymous false
password_file %s
acl_file %s
max_inflight_messages 1000
max_queued_messages 100000
`, u.Username, port, passwd, acl), 0o600)
	s.mq = fmt.Sprintf("127.0.0.1:%d", port)
	p := &proc{name: "mosquitto", bin: bin, args: []string{"-c", conf}, log: filepath.Join(s.dir, "mosquitto.log")}
	if err := p.start(); err != nil {
		return err
	}
	s.procs = append(s.procs, p)
	return waitFor(s.ctx, "mosquitto listening", 10*time.Second, func() bool { return listening(s.mq) })
}

// database creates a fresh PostgreSQL database for the replicas on the
// server of EDGEFLEET_POSTGRES and returns its URL and a function that
// drops it.
func database(ctx context.Context, base string, seed uint64) (string, func(), error) {
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return "", nil, fmt.Errorf("soak: EDGEFLEET_POSTGRES: %w", err)
	}
	name := fmt.Sprintf("edgefleet_soak_%d_%d", seed, os.Getpid())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		conn.Close(ctx)
		return "", nil, fmt.Errorf("soak: create database %s: %w", name, err)
	}
	u, err := url.Parse(base)
	if err != nil {
		conn.Close(ctx)
		return "", nil, fmt.Errorf("soak: EDGEFLEET_POSTGRES: %w", err)
	}
	u.Path = "/" + name
	drop := func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn.Exec(dctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		conn.Close(dctx)
	}
	return u.String(), drop, nil
}

// fleetd is one fleetd process (a replica when there is a database).
type fleetd struct {
	*proc
	http string
	api  *client.Client
}

// startFleetd writes the config of replica i and starts it; its ports are
// fixed for the run so that a restart comes back where it was.
func (s *soak) startFleetd(i int, dbURL string, agents []string) (*fleetd, error) {
	name := fmt.Sprintf("fleetd-%c", 'a'+i)
	dir := filepath.Join(s.dir, name)
	os.MkdirAll(dir, 0o755)
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	var devs []string
	for _, id := range agents {
		devs = append(devs, fmt.Sprintf("{id: %s, password: %s}", id, agentPass(id)))
	}
	db := ""
	if dbURL != "" {
		db = fmt.Sprintf("database: {url: %q}\n", dbURL)
	}
	cfg := filepath.Join(dir, "fleetd.yaml")
	os.WriteFile(cfg, fmt.Appendf(nil, `data_dir: %s
log: {format: json}
http: {listen: "127.0.0.1:%d"}
operators: [{name: soak, token: %s}]
%sbroker: {url: "tcp://%s", client_id: %s, username: fleetd, password: %s}
devices: [%s]
ota: {health_window: 5s, job_timeout: 2m, artifact_base: "http://%s"}
`, filepath.Join(dir, "data"), port, token, db, s.mq, name, fleetdPass, strings.Join(devs, ", "), s.httpProxy.Addr()), 0o600)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	f := &fleetd{proc: &proc{name: name, bin: s.bins["fleetd"], args: []string{"--config", cfg}, log: filepath.Join(s.dir, name+".log"), metrics: addr}, http: addr}
	f.api, err = client.New("http://"+addr, token, client.Options{Timeout: 20 * time.Second})
	if err != nil {
		return nil, err
	}
	if err := f.start(); err != nil {
		return nil, err
	}
	s.procs = append(s.procs, f.proc)
	return f, f.ready(s.ctx)
}

// ready waits for fleetd's health check.
func (f *fleetd) ready(ctx context.Context) error {
	return waitFor(ctx, f.name+" healthy", 60*time.Second, func() bool {
		if !f.running() {
			return false
		}
		hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := f.api.Health(hctx)
		return err == nil
	})
}

// api is the client of a fleetd that is up (the first one found).
func (s *soak) api() *client.Client {
	for _, f := range s.fleetds {
		if f.running() {
			return f.api
		}
	}
	return s.fleetds[0].api
}
