package deploy_test

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image string `yaml:"image"`
	Build struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	} `yaml:"build"`
	Command     []string          `yaml:"command"`
	Entrypoint  []string          `yaml:"entrypoint"`
	Environment map[string]string `yaml:"environment"`
	Volumes     []string          `yaml:"volumes"`
	Ports       []string          `yaml:"ports"`
	DependsOn   map[string]any    `yaml:"depends_on"`
}

func (s composeService) isFleetd() bool {
	return strings.HasSuffix(s.Build.Dockerfile, "Containerfile") || strings.Contains(s.Image, "fleetd")
}

// mount returns the host file mounted at dst ("" if none).
func (s composeService) mount(dst string) string {
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && parts[1] == dst && strings.HasPrefix(parts[0], ".") {
			return parts[0]
		}
	}
	return ""
}

// containerPorts are the container sides of the published ports.
func (s composeService) containerPorts() ([]int, error) {
	var out []int
	for _, p := range s.Ports {
		parts := strings.Split(strings.TrimSuffix(p, "/tcp"), ":")
		n, err := strconv.Atoi(parts[len(parts)-1])
		if err != nil {
			return nil, fmt.Errorf("ports %q: %w", p, err)
		}
		out = append(out, n)
	}
	return out, nil
}

// mosquittoConf is what the test needs of a mosquitto.conf: global settings
// and each listener's own.
type mosquittoConf struct {
	global    map[string]string
	listeners map[int]map[string]string
}

func parseMosquittoConf(b []byte) (*mosquittoConf, error) {
	c := &mosquittoConf{global: map[string]string{}, listeners: map[int]map[string]string{}}
	cur := c.global
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, val, _ := strings.Cut(line, " ")
		val = strings.TrimSpace(val)
		if key == "listener" {
			port, err := strconv.Atoi(strings.Fields(val)[0])
			if err != nil {
				return nil, fmt.Errorf("mosquitto.conf: %s: %w", line, err)
			}
			cur = map[string]string{}
			c.listeners[port] = cur
			continue
		}
		// Listener options apply to the listener above them; the rest are
		// global wherever they are (per_listener_settings is not used here).
		if key == "use_username_as_clientid" || key == "protocol" || key == "max_connections" || key == "mount_point" {
			cur[key] = val
		} else {
			c.global[key] = val
		}
	}
	return c, nil
}

func TestCompose(t *testing.T) {
	var cf composeFile
	if err := yaml.Unmarshal(readFile(t, "compose.yaml"), &cf); err != nil {
		t.Fatal("compose.yaml:", err)
	}
	for name, s := range cf.Services {
		for _, v := range s.Volumes {
			if src, _, _ := strings.Cut(v, ":"); strings.HasPrefix(src, ".") {
				if _, err := os.Stat(src); err != nil {
					t.Errorf("compose.yaml %s: volume %s: %v", name, v, err)
				}
			} else if _, ok := cf.Volumes[src]; !ok {
				t.Errorf("compose.yaml %s: named volume %s is not declared under volumes", name, src)
			}
		}
	}
	cfile, err := parseContainerfile(readFile(t, "Containerfile"))
	if err != nil {
		t.Fatal(err)
	}
	mq := composeMosquitto(t, cf)
	replicas, clientIDs := 0, map[string]string{}
	for name, s := range cf.Services {
		if !s.isFleetd() {
			continue
		}
		replicas++
		where := "compose.yaml " + name
		args := s.Command
		if len(args) == 0 {
			args = cfile.Args
		}
		for _, err := range checkFlags(fleetdFlags(t), where+" command", args) {
			t.Error(err)
		}
		cfgPath, _ := flagValue(args, "config")
		src := s.mount(cfgPath)
		if src == "" {
			t.Errorf("%s: --config %s is not a file mounted from the repository", where, cfgPath)
			continue
		}
		cfg := readFile(t, src)
		if err := checkConfig(t, where+" ("+src+")", cfg, args); err != nil {
			t.Error(err)
		}
		listen, c, err := listenPorts(cfg)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		published, err := s.containerPorts()
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		for _, err := range checkPublished(where+" ports", listen, published) {
			t.Error(err)
		}
		var id struct {
			Broker struct {
				ClientID string `yaml:"client_id"`
			} `yaml:"broker"`
		}
		yaml.Unmarshal(cfg, &id)
		if other, dup := clientIDs[id.Broker.ClientID]; dup || id.Broker.ClientID == "" {
			t.Errorf("%s: broker.client_id %q is empty or also %s's: replicas would take each other's MQTT session", where, id.Broker.ClientID, other)
		}
		clientIDs[id.Broker.ClientID] = name
		checkComposeBroker(t, where, cf, mq, c)
		checkComposeDatabase(t, where, cf, s, c)
	}
	if replicas < 2 {
		t.Errorf("compose.yaml has %d fleetd services, want 2", replicas)
	}
}

// composeMosquitto finds the mosquitto service and checks its config is the
// one fleet/broker/mosquitto.acl.example requires.
func composeMosquitto(t *testing.T, cf composeFile) *mosquittoConf {
	t.Helper()
	s, ok := cf.Services["mosquitto"]
	if !ok || !strings.HasPrefix(s.Image, "eclipse-mosquitto:2") {
		t.Fatalf("compose.yaml: no mosquitto service with image eclipse-mosquitto:2")
	}
	src := s.mount("/mosquitto/config/mosquitto.conf")
	if src == "" {
		t.Fatal("compose.yaml mosquitto: /mosquitto/config/mosquitto.conf is not mounted from the repository")
	}
	mc, err := parseMosquittoConf(readFile(t, src))
	if err != nil {
		t.Fatal(err)
	}
	if mc.global["allow_anonymous"] != "false" {
		t.Errorf("%s: allow_anonymous must be false", src)
	}
	if mc.global["password_file"] == "" {
		t.Errorf("%s: no password_file", src)
	}
	acl := mc.global["acl_file"]
	if aclSrc := s.mount(acl); filepath.Base(aclSrc) != "mosquitto.acl.example" {
		t.Errorf("%s: acl_file %s is %q, want fleet/broker/mosquitto.acl.example mounted there", src, acl, aclSrc)
	}
	published, err := s.containerPorts()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range published {
		l, ok := mc.listeners[p]
		if !ok {
			t.Errorf("compose.yaml mosquitto: port %d is published but %s has no listener on it", p, src)
		} else if l["use_username_as_clientid"] != "true" {
			t.Errorf("%s: listener %d is published for devices but lacks use_username_as_clientid true", src, p)
		}
	}
	return mc
}

func checkComposeBroker(t *testing.T, where string, cf composeFile, mq *mosquittoConf, c *fleetdListen) {
	t.Helper()
	u, err := url.Parse(c.Broker.URL)
	if err != nil || u.Host == "" {
		t.Errorf("%s: broker.url %q: %v", where, c.Broker.URL, err)
		return
	}
	port, _ := strconv.Atoi(u.Port())
	if u.Hostname() != "mosquitto" || mq.listeners[port] == nil {
		t.Errorf("%s: broker.url %s is not a listener of the mosquitto service (%v)", where, c.Broker.URL, mapKeys(mq.listeners))
	} else if mq.listeners[port]["use_username_as_clientid"] == "true" {
		t.Errorf("%s: broker.url %s: that listener forces client id = username, so the replicas would throw each other off", where, c.Broker.URL)
	}
	env := cf.Services["mosquitto"].Environment
	if c.Broker.Password != env["FLEETD_MQTT_PASSWORD"] {
		t.Errorf("%s: broker.password is not mosquitto's FLEETD_MQTT_PASSWORD", where)
	}
	acl := string(readFile(t, filepath.Join(repoRoot(t), "fleet/broker/mosquitto.acl.example")))
	if !strings.Contains(acl, "\nuser "+c.Broker.Username+"\n") {
		t.Errorf("%s: broker.username %q has no user section in mosquitto.acl.example", where, c.Broker.Username)
	}
	devices := map[string]bool{}
	for _, d := range strings.Fields(env["EDGEFLEET_DEVICES"]) {
		devices[d] = true
	}
	for _, d := range c.Devices {
		if !devices[d.ID+":"+d.Password] {
			t.Errorf("%s: device %s has no matching id:password in mosquitto's EDGEFLEET_DEVICES", where, d.ID)
		}
	}
}

func checkComposeDatabase(t *testing.T, where string, cf composeFile, s composeService, c *fleetdListen) {
	t.Helper()
	u, err := url.Parse(c.Database.URL)
	if err != nil || u.Scheme != "postgres" {
		t.Errorf("%s: database.url %q is not postgres://...: %v", where, c.Database.URL, err)
		return
	}
	pg, ok := cf.Services[u.Hostname()]
	if !ok || !strings.HasPrefix(pg.Image, "postgres:") {
		t.Errorf("%s: database.url host %s is not a postgres service", where, u.Hostname())
		return
	}
	pw, _ := u.User.Password()
	if u.Port() != "5432" || u.User.Username() != pg.Environment["POSTGRES_USER"] || pw != pg.Environment["POSTGRES_PASSWORD"] ||
		strings.TrimPrefix(u.Path, "/") != pg.Environment["POSTGRES_DB"] {
		t.Errorf("%s: database.url %s does not match the postgres service (port 5432, POSTGRES_USER/PASSWORD/DB)", where, redact(u))
	}
	if _, ok := s.DependsOn[u.Hostname()]; !ok {
		t.Errorf("%s: does not depend on %s", where, u.Hostname())
	}
	if _, _, err := net.SplitHostPort(u.Host); err != nil {
		t.Errorf("%s: database.url host: %v", where, err)
	}
}

func redact(u *url.URL) string {
	c := *u
	if _, ok := c.User.Password(); ok {
		c.User = url.UserPassword(c.User.Username(), "xxx")
	}
	return c.String()
}

func mapKeys[V any](m map[int]V) []int {
	var out []int
	for k := range m {
		out = append(out, k)
	}
	return out
}
