package controller

import (
	"bytes"
	"edgefleet/internal/yamlconf"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"edgefleet/fleet/api"
	"edgefleet/fleet/operator"
	"edgefleet/fleet/store"
)

// Config is fleetd's YAML configuration. Unknown keys are an error.
type Config struct {
	// DataDir holds detections.db, registry.db and ota/; with a database
	// it holds only the lock and the signing key copy (but must be set).
	DataDir string `yaml:"data_dir"`
	// Database, when its url is set, keeps the detections, the registry,
	// the rollouts and the artifacts in PostgreSQL, shared by replicas.
	Database Database   `yaml:"database"`
	Log      LogConfig  `yaml:"log"`
	HTTP     HTTPConfig `yaml:"http"`
	Broker   BrokerConf `yaml:"broker"`
	// Operators are the fixed bearer tokens of the REST API and console;
	// more are made with fleetctl tokens create (kept in data_dir/operators.db).
	Operators []Operator `yaml:"operators"`
	// Devices may connect to the embedded broker and download artifacts
	// (with an external broker, only the latter: the broker has its own).
	Devices []DeviceCred `yaml:"devices"`
	// Services are MQTT users with access to every topic (tools, other fleetd processes).
	Services  []ServiceCred `yaml:"services"`
	Retention Retention     `yaml:"retention"`
	Health    Health        `yaml:"health"`
	OTA       OTA           `yaml:"ota"`

	// Device identity (identity.go): the fleet CA and enrollment.
	CA     CAConfig     `yaml:"ca"`
	Enroll EnrollConfig `yaml:"enroll"`
}

// OTA configures the model registry and the rollout engine; their state
// lives under data_dir/ota (artifacts/, rollouts.db, keys.db).
type OTA struct {
	// SigningKey is an ed25519 private key file (0600) that signs the
	// manifests, fixed: rotation through the API is refused. Empty means
	// fleetd's key ring (fleetctl keys list | rotate | export): in
	// data_dir/ota/keys.db, or with a database in the database (in clear),
	// so that every replica signs with the same key. A ring starts with
	// the key of data_dir/ota/keys/fleet.key when there is one (what fleetd
	// generated before the ring; the file is then removed), else a new key.
	SigningKey string `yaml:"signing_key"`
	// PublicKeys are more key files or folders of *.pub that agents may pin,
	// listed by GET /api/v1/keys after fleetd's own (retired ring keys are
	// listed without them).
	PublicKeys []string `yaml:"public_keys"`
	// ArtifactBase is the URL devices download artifacts from, e.g.
	// http://fleetd.plant-a:8080; default http://<http.listen> (the
	// host name when http.listen is 0.0.0.0 or [::]).
	ArtifactBase string `yaml:"artifact_base"`
	// MaxUpload caps one model or bundle upload in bytes; default 1 GiB.
	MaxUpload int64 `yaml:"max_upload"`
	// HealthWindow and JobTimeout apply to rollouts created without
	// them: defaults 2m and 30m.
	HealthWindow time.Duration `yaml:"health_window"`
	JobTimeout   time.Duration `yaml:"job_timeout"`
}

// Database is fleetd's PostgreSQL database. Without a url, state lives in
// bbolt files under data_dir, for one fleetd.
type Database struct {
	// URL is postgres://user:password@host:5432/db?sslmode=...; --database overrides it.
	URL string `yaml:"url"`
	// MaxConns caps the connection pool; default 16.
	MaxConns int32 `yaml:"max_conns"`
}

// LogConfig selects the log format and level.
type LogConfig struct {
	Format string `yaml:"format"` // text (default) or json
	Level  string `yaml:"level"`  // debug, info (default), warn, error
}

// HTTPConfig is the REST API, console and metrics listener.
type HTTPConfig struct {
	Listen       string        `yaml:"listen"`        // default 127.0.0.1:8080
	ReadTimeout  time.Duration `yaml:"read_timeout"`  // default 30s
	WriteTimeout time.Duration `yaml:"write_timeout"` // default 60s (live feed and export extend it)
	TLS          HTTPTLS       `yaml:"tls"`           // HTTPS (tls.go)
}

// BrokerConf selects the embedded broker (default) or an external one (url).
type BrokerConf struct {
	// Listen is the embedded broker's plain MQTT address; default 127.0.0.1:1883.
	Listen string `yaml:"listen"`
	// TLSListen, TLSCert and TLSKey add a TLS listener; TLSClientCA requires client certificates.
	TLSListen   string `yaml:"tls_listen"`
	TLSCert     string `yaml:"tls_cert"`
	TLSKey      string `yaml:"tls_key"`
	TLSClientCA string `yaml:"tls_client_ca"`
	// URL of an external broker (tcp://host:1883); when set, the embedded broker is off.
	URL      string `yaml:"url"`
	ClientID string `yaml:"client_id"` // default fleetd-<hostname>
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// ShareGroup names the shared subscription for detections; default fleetd.
	ShareGroup string `yaml:"share_group"`
}

// Operator is one REST API user with a fixed token.
type Operator struct {
	Name string `yaml:"name"`
	// Token, or TokenEnv naming an environment variable that holds it.
	Token    string `yaml:"token"`
	TokenEnv string `yaml:"token_env"`
	// Role is viewer, operator or admin (the default, as before roles).
	Role string `yaml:"role"`
}

// DeviceCred is one device's MQTT login: username = id.
type DeviceCred struct {
	ID       string `yaml:"id"`
	Password string `yaml:"password"`
}

// ServiceCred is one MQTT service login.
type ServiceCred struct {
	User     string `yaml:"user"`
	Password string `yaml:"password"`
}

// Retention bounds the detection store.
type Retention struct {
	MaxAge    time.Duration `yaml:"max_age"`    // default 720h; 0 keeps forever only if set explicitly to "0s"
	MaxEvents int64         `yaml:"max_events"` // 0: no bound
	MaxBytes  int64         `yaml:"max_bytes"`  // 0: no bound
	Every     time.Duration `yaml:"every"`      // default 1m
	// SnapshotMaxAge and SnapshotMaxBytes bound the JPEG snapshots of
	// analytics events, kept apart from the events (which follow max_age):
	// default 168h (7 days) and 10 GiB; "0s" or 0 explicitly: no bound.
	SnapshotMaxAge   time.Duration `yaml:"snapshot_max_age"`
	SnapshotMaxBytes int64         `yaml:"snapshot_max_bytes"`
}

// Health sets the registry's health thresholds; zero means the registry default.
type Health struct {
	StaleAfter    time.Duration `yaml:"stale_after"`
	MaxDropRate   float64       `yaml:"max_drop_rate"`
	MaxSpoolDepth uint64        `yaml:"max_spool_depth"`
	MaxSpoolAge   time.Duration `yaml:"max_spool_age"`
}

// LoadConfig reads and validates a config file.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := ParseConfig(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// ParseConfig decodes strictly, applies defaults and validates.
func ParseConfig(r io.Reader) (*Config, error) {
	c := &Config{}
	c.Retention.MaxAge = -1 // "unset", to tell it from an explicit 0s
	c.Retention.SnapshotMaxAge, c.Retention.SnapshotMaxBytes = -1, -1
	if _, err := yamlconf.Read(r, c); err != nil && !errors.Is(err, yamlconf.ErrEmpty) {
		return nil, err
	}
	c.defaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Config) defaults() {
	if c.HTTP.Listen == "" {
		c.HTTP.Listen = "127.0.0.1:8080"
	}
	if c.HTTP.ReadTimeout == 0 {
		c.HTTP.ReadTimeout = 30 * time.Second
	}
	if c.HTTP.WriteTimeout == 0 {
		c.HTTP.WriteTimeout = 60 * time.Second
	}
	if c.Broker.URL == "" && c.Broker.Listen == "" && c.Broker.TLSListen == "" {
		c.Broker.Listen = "127.0.0.1:1883"
	}
	if c.Broker.ShareGroup == "" {
		c.Broker.ShareGroup = "fleetd"
	}
	if c.Broker.ClientID == "" {
		h, _ := os.Hostname()
		c.Broker.ClientID = "fleetd-" + strings.Map(func(r rune) rune {
			if api.ValidateID(string(r)) == nil {
				return r
			}
			return '-'
		}, h)
	}
	if c.Retention.MaxAge < 0 {
		c.Retention.MaxAge = 720 * time.Hour
	}
	if c.Retention.Every == 0 {
		c.Retention.Every = time.Minute
	}
	if c.Retention.SnapshotMaxAge == -1 {
		c.Retention.SnapshotMaxAge = store.DefaultSnapshotMaxAge
	}
	if c.Retention.SnapshotMaxBytes == -1 {
		c.Retention.SnapshotMaxBytes = store.DefaultSnapshotMaxBytes
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.OTA.HealthWindow == 0 {
		c.OTA.HealthWindow = 2 * time.Minute
	}
	if c.OTA.JobTimeout == 0 {
		c.OTA.JobTimeout = 30 * time.Minute
	}
	if c.OTA.MaxUpload == 0 {
		c.OTA.MaxUpload = 1 << 30
	}
}

// artifactBase is ota.artifact_base, or one derived from the address the
// HTTP listener bound.
func (c *Config) artifactBase(bound string) string {
	if c.OTA.ArtifactBase != "" {
		return strings.TrimSuffix(c.OTA.ArtifactBase, "/")
	}
	host, port, err := net.SplitHostPort(bound)
	if err != nil {
		return c.httpScheme() + "://" + bound
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		if h, err := os.Hostname(); err == nil && h != "" {
			host = h
		} else {
			host = "127.0.0.1"
		}
	}
	return c.httpScheme() + "://" + net.JoinHostPort(host, port)
}

// Validate checks the config; its errors name the key at fault.
// checkListen checks a host:port listen address, the port in 0..65535.
func checkListen(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %w", addr, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port %q is not a number in 0..65535", port)
	}
	return nil
}

func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.DataDir == "" {
		bad("data_dir", "required")
	}
	if err := checkListen(c.HTTP.Listen); err != nil {
		bad("http.listen", "%v", err)
	}
	if c.HTTP.ReadTimeout < 0 || c.HTTP.WriteTimeout < 0 {
		bad("http", "timeouts must not be negative")
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "%q is not text or json", c.Log.Format)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not debug, info, warn or error", c.Log.Level)
	}
	b := c.Broker
	if b.URL != "" {
		u, err := url.Parse(b.URL)
		if err != nil || (u.Scheme != "tcp" && u.Scheme != "ssl" && u.Scheme != "tls" && u.Scheme != "mqtt" && u.Scheme != "mqtts") || u.Host == "" {
			bad("broker.url", "%q is not like tcp://host:1883", b.URL)
		}
		if b.Listen != "" || b.TLSListen != "" {
			bad("broker.listen", "set only for the embedded broker, not with broker.url")
		}
	} else {
		if b.Listen != "" {
			if err := checkListen(b.Listen); err != nil {
				bad("broker.listen", "%v", err)
			}
		}
		if b.TLSListen != "" {
			if err := checkListen(b.TLSListen); err != nil {
				bad("broker.tls_listen", "%v", err)
			}
		}
	}
	if err := api.ValidateID(b.ShareGroup); err != nil {
		bad("broker.share_group", "%v", err)
	}
	if len(c.Operators) == 0 {
		bad("operators", "at least one operator token is needed for the API")
	}
	names := map[string]bool{}
	for i, o := range c.Operators {
		key := fmt.Sprintf("operators[%d]", i)
		if o.Name == "" {
			bad(key+".name", "required")
		}
		if names[o.Name] {
			bad(key+".name", "%q repeated", o.Name)
		}
		names[o.Name] = true
		if err := operator.CheckName(o.Name); o.Name != "" && err != nil {
			bad(key+".name", "%v", err)
		}
		if _, err := operator.ParseRole(o.role()); err != nil {
			bad(key+".role", "%q is not viewer, operator or admin", o.Role)
		}
		if (o.Token == "") == (o.TokenEnv == "") {
			bad(key, "set exactly one of token and token_env")
		} else if o.TokenEnv != "" && os.Getenv(o.TokenEnv) == "" {
			bad(key+".token_env", "environment variable %s is empty", o.TokenEnv)
		} else if tok := c.Operators[i].token(); len(tok) < 16 {
			bad(key+".token", "shorter than 16 characters")
		}
	}
	ids := map[string]bool{}
	for i, d := range c.Devices {
		key := fmt.Sprintf("devices[%d]", i)
		if err := api.ValidateID(d.ID); err != nil {
			bad(key+".id", "%v", err)
		}
		if ids[d.ID] {
			bad(key+".id", "%q repeated", d.ID)
		}
		ids[d.ID] = true
		if d.Password == "" {
			bad(key+".password", "required")
		}
	}
	for i, s := range c.Services {
		if s.User == "" || s.Password == "" {
			bad(fmt.Sprintf("services[%d]", i), "user and password are required")
		}
	}
	if c.Retention.MaxAge < 0 || c.Retention.MaxEvents < 0 || c.Retention.MaxBytes < 0 {
		bad("retention", "bounds must not be negative")
	}
	if c.Retention.SnapshotMaxAge < 0 {
		bad("retention.snapshot_max_age", "%v is negative", c.Retention.SnapshotMaxAge)
	}
	if c.Retention.SnapshotMaxBytes < 0 {
		bad("retention.snapshot_max_bytes", "%d is negative", c.Retention.SnapshotMaxBytes)
	}
	if c.Retention.Every < time.Second {
		bad("retention.every", "%v is below 1s", c.Retention.Every)
	}
	if c.Health.MaxDropRate < 0 || c.Health.MaxDropRate > 1 {
		bad("health.max_drop_rate", "%v is not in 0..1", c.Health.MaxDropRate)
	}
	validateDatabase(c.Database, bad)
	validateOTA(c.OTA, bad)
	validateIdentity(c, bad)
	return errors.Join(errs...)
}

// validateDatabase checks the database section.
func validateDatabase(d Database, bad func(key, format string, args ...any)) {
	if d.URL != "" {
		u, err := url.Parse(d.URL)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
			bad("database.url", "not like postgres://user@host:5432/db")
		}
	}
	if d.MaxConns < 0 {
		bad("database.max_conns", "must not be negative")
	}
}

// validateOTA checks the ota section; bad records a problem with a key.
func validateOTA(o OTA, bad func(key, format string, args ...any)) {
	if o.ArtifactBase != "" {
		u, err := url.Parse(o.ArtifactBase)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			bad("ota.artifact_base", "%q is not like http://fleetd.example:8080", o.ArtifactBase)
		}
	}
	if o.SigningKey != "" {
		if _, err := os.Stat(o.SigningKey); err != nil {
			bad("ota.signing_key", "%v", err)
		}
	}
	for i, p := range o.PublicKeys {
		if _, err := os.Stat(p); err != nil {
			bad(fmt.Sprintf("ota.public_keys[%d]", i), "%v", err)
		}
	}
	if o.MaxUpload < 0 {
		bad("ota.max_upload", "must not be negative")
	}
	if o.HealthWindow < 0 || o.JobTimeout < 0 {
		bad("ota", "health_window and job_timeout must not be negative")
	} else if o.JobTimeout > 0 && o.JobTimeout <= o.HealthWindow {
		bad("ota.job_timeout", "%v must be longer than ota.health_window %v", o.JobTimeout, o.HealthWindow)
	}
}

func (o Operator) role() string {
	if o.Role == "" {
		return string(operator.Admin)
	}
	return o.Role
}

// fixedTokens are the operators' tokens for operator.WithFixed.
func (c *Config) fixedTokens() []operator.Fixed {
	out := make([]operator.Fixed, len(c.Operators))
	for i, o := range c.Operators {
		out[i] = operator.Fixed{Name: o.Name, Role: operator.Role(o.role()), Token: o.token()}
	}
	return out
}

func (o Operator) token() string {
	if o.TokenEnv != "" {
		return os.Getenv(o.TokenEnv)
	}
	return o.Token
}
