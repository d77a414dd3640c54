package controller

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const minimal = `
data_dir: /tmp/x
operators:
  - name: alice
    token: 0123456789abcdef
`

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name, yaml, err string
	}{
		{"minimal", minimal, ""},
		{"unknown key", minimal + "colour: blue\n", "colour: unknown key (line 6)"},
		{"nested unknown key", minimal + "http:\n  lisen: :80\n", "http.lisen: unknown key"},
		{"no data dir", "operators: [{name: a, token: 0123456789abcdef}]\n", "data_dir: required"},
		{"no operators", "data_dir: x\n", "operators: at least one"},
		{"short token", "data_dir: x\noperators: [{name: a, token: short}]\n", "operators[0].token: shorter"},
		{"both tokens", "data_dir: x\noperators: [{name: a, token: 0123456789abcdef, token_env: X}]\n", "operators[0]: set exactly one"},
		{"bad duration", minimal + "retention:\n  max_age: forever\n", "forever"},
		{"bad device", minimal + "devices: [{id: a/b, password: p}]\n", "devices[0].id"},
		{"dup device", minimal + "devices: [{id: a, password: p}, {id: a, password: q}]\n", "devices[1].id: \"a\" repeated"},
		{"url and listen", minimal + "broker:\n  url: tcp://h:1883\n  listen: :1883\n", "broker.listen"},
		{"bad url", minimal + "broker:\n  url: h:1883\n", "broker.url"},
		{"bad format", minimal + "log:\n  format: xml\n", "log.format"},
		{"tls cert without key", minimal + "broker:\n  tls_listen: :8883\n  tls_cert: a.pem\n", "broker.tls_cert"},
		{"bad drop rate", minimal + "health:\n  max_drop_rate: 2\n", "health.max_drop_rate"},
		{"url with devices", minimal + "broker: {url: tcp://h:1883}\ndevices: [{id: a, password: p}]\n", ""},
		{"ota unknown key", minimal + "ota: {signing_kee: x}\n", "ota.signing_kee: unknown key"},
		{"ota bad base", minimal + "ota: {artifact_base: fleetd:8080}\n", "ota.artifact_base"},
		{"ota base with query", minimal + "ota: {artifact_base: \"http://f:1/?a=b\"}\n", "ota.artifact_base"},
		{"ota missing key", minimal + "ota: {signing_key: /nonexistent/fleet.key}\n", "ota.signing_key"},
		{"ota missing pub", minimal + "ota: {public_keys: [/nonexistent/k.pub]}\n", "ota.public_keys[0]"},
		{"ota timeout below window", minimal + "ota: {health_window: 10m, job_timeout: 5m}\n", "ota.job_timeout"},
		{"ota negative", minimal + "ota: {health_window: -1s}\n", "must not be negative"},
		{"misspelt section", minimal + "retenton:\n  max_age: 24h\n", "retenton: unknown key (line 6)"},
		{"duration without unit", minimal + "retention:\n  max_age: 24\n", `retention.max_age: cannot use "24" as a duration, write e.g. 30s, 5m or 24h (line 7)`},
		{"port out of range", minimal + "http:\n  listen: 127.0.0.1:80800\n", `http.listen: port "80800" is not a number in 0..65535`},
		{"broker port out of range", minimal + "broker:\n  listen: :70000\n", "broker.listen: port"},
		{"listen without port", minimal + "http:\n  listen: localhost\n", "http.listen:"},
		{"ota bad duration", minimal + "ota: {job_timeout: soon}\n", "soon"},
		{"database", minimal + "database: {url: \"postgres://f:pw@db:5432/fleet?sslmode=disable\", max_conns: 8}\n", ""},
		{"database bad url", minimal + "database: {url: \"mysql://db/fleet\"}\n", "database.url"},
		{"database url not echoed", minimal + "database: {url: \"secret-password\"}\n", "database.url: not like"},
		{"database negative conns", minimal + "database: {max_conns: -1}\n", "database.max_conns"},
		{"database unknown key", minimal + "database: {uri: x}\n", "uri"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConfig(strings.NewReader(tt.yaml))
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if c.HTTP.Listen != "127.0.0.1:8080" || c.Broker.URL == "" && c.Broker.Listen != "127.0.0.1:1883" || c.Retention.MaxAge != 720*time.Hour ||
					c.OTA.HealthWindow != 2*time.Minute || c.OTA.JobTimeout != 30*time.Minute || c.OTA.MaxUpload != 1<<30 {
					t.Errorf("defaults not applied: %+v", c)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.err)
			}
		})
	}
	c, err := ParseConfig(strings.NewReader(minimal + "retention:\n  max_age: 0s\n"))
	if err != nil || c.Retention.MaxAge != 0 || c.Retention.SnapshotMaxAge != 7*24*time.Hour || c.Retention.SnapshotMaxBytes != 10<<30 {
		t.Fatalf("explicit 0s max_age: %v, snapshot defaults %v %v, %v", c.Retention.MaxAge, c.Retention.SnapshotMaxAge, c.Retention.SnapshotMaxBytes, err)
	}
	c, err = ParseConfig(strings.NewReader(minimal + "retention:\n  snapshot_max_age: 24h\n  snapshot_max_bytes: 0\n"))
	if err != nil || c.Retention.SnapshotMaxAge != 24*time.Hour || c.Retention.SnapshotMaxBytes != 0 {
		t.Fatalf("snapshot retention: %+v, %v", c.Retention, err)
	}
	if _, err := ParseConfig(strings.NewReader(minimal + "retention:\n  snapshot_max_bytes: -5\n")); err == nil || !strings.Contains(err.Error(), "retention.snapshot_max_bytes") {
		t.Fatalf("negative snapshot_max_bytes: %v", err)
	}
}

func TestExampleConfig(t *testing.T) {
	t.Setenv("FLEETD_ADMIN_TOKEN", "an-admin-token-of-some-length")
	c, err := LoadConfig("../cmd/fleetd/fleetd.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Broker.Listen != "0.0.0.0:1883" || len(c.Devices) != 1 || c.Retention.MaxAge != 720*time.Hour {
		t.Fatalf("example parsed as %+v", c)
	}
	c, err = LoadConfig("../cmd/fleetd/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.Listen != "127.0.0.1:8080" || len(c.Devices) != 2 || len(c.Services) != 1 {
		t.Fatalf("demo parsed as %+v", c)
	}
}

// TestDemoConfigWithOTA: demo.yaml with the ota section scripts/demo.sh appends.
func TestDemoConfigWithOTA(t *testing.T) {
	b, err := os.ReadFile("../cmd/fleetd/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(t.TempDir(), "fleet.key")
	os.WriteFile(key, []byte("x"), 0o600)
	c, err := ParseConfig(strings.NewReader(string(b) + "ota:\n  signing_key: " + key + "\n  artifact_base: http://127.0.0.1:8080\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.OTA.SigningKey != key || c.artifactBase("127.0.0.1:8080") != "http://127.0.0.1:8080" {
		t.Fatalf("ota %+v", c.OTA)
	}
}

func TestArtifactBase(t *testing.T) {
	host, _ := os.Hostname()
	tests := []struct {
		set, bound, want string
	}{
		{"", "127.0.0.1:8080", "http://127.0.0.1:8080"},
		{"", "10.1.2.3:43211", "http://10.1.2.3:43211"},
		{"", "[::1]:8080", "http://[::1]:8080"},
		{"", "0.0.0.0:8080", "http://" + host + ":8080"},
		{"", "[::]:8080", "http://" + host + ":8080"},
		{"https://fleet.example/", "0.0.0.0:8080", "https://fleet.example"},
	}
	for _, tt := range tests {
		c := &Config{OTA: OTA{ArtifactBase: tt.set}}
		if got := c.artifactBase(tt.bound); got != tt.want {
			t.Errorf("artifactBase(%q) with %q = %q, want %q", tt.bound, tt.set, got, tt.want)
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add(minimal)
	f.Add(minimal + "broker:\n  url: tcp://h:1\n")
	f.Fuzz(func(t *testing.T, s string) {
		ParseConfig(strings.NewReader(s))
	})
}
