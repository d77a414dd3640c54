// Package config is the edge agent's configuration: one YAML file, decoded
// strictly (an unknown key is an error naming its path), with Validate
// reporting every bad value by the key that holds it.
//
// A minimal file:
//
//	device_id: box-17
//	model:
//	  path: /var/lib/edgefleet/model.tflite
//	cameras:
//	  - id: belt-a
//	    source: v4l2
//	    device: /dev/video0
//	spool:
//	  path: /var/lib/edgefleet/spool.db
//	fleet:
//	  broker: tcp://fleet.local:1883
//	update:
//	  keys: [/etc/edgefleet/keys/fleet.pub]
//	  artifact_url: https://fleet.local:8443
//	firmware: {}   # agent self-updates under edge-launcher, signed by update.keys
package config

import (
	"bytes"
	"edgefleet/internal/yamlconf"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"edgefleet/fleet/api"
)

// Camera source kinds.
const (
	SourceV4L2  = "v4l2"  // a V4L2 device such as /dev/video0
	SourceFiles = "files" // an image file or a folder of images, looped
	SourceMJPEG = "mjpeg" // MJPEG over HTTP (multipart/x-mixed-replace)
	SourceSynth = "synth" // synthetic belt with moving objects
)

// Config is the whole agent configuration. Zero values of optional fields
// are replaced by the defaults documented on each field (see Defaults).
type Config struct {
	// DeviceID names this box in the fleet: [A-Za-z0-9._-], 1..64 characters.
	DeviceID string `yaml:"device_id"`
	// Labels are free-form tags reported to the fleet, e.g. site and line.
	Labels map[string]string `yaml:"labels"`
	Model  Model             `yaml:"model"`
	// Cameras are read concurrently; at least one is required.
	Cameras []Camera `yaml:"cameras"`
	Spool   Spool    `yaml:"spool"`
	Fleet   Fleet    `yaml:"fleet"`
	// Update configures over-the-air model updates from the fleet.
	Update Update `yaml:"update"`
	// Firmware configures updates of the agent binary itself.
	Firmware Firmware `yaml:"firmware"`
	// TelemetryInterval is how often telemetry is published; default 10s.
	TelemetryInterval time.Duration `yaml:"telemetry_interval"`
	HTTP              HTTP          `yaml:"http"`
	// LogLevel is debug, info (default), warn or error.
	LogLevel string `yaml:"log_level"`
	// MemoryLimit is auto (default) or off. auto keeps the Go runtime's
	// soft memory limit at the live heap plus a quarter of it (at least 8 MiB)
	// plus the runtime's own memory (package agent/memlimit), unless the
	// GOMEMLIMIT environment variable sets one; off leaves the runtime's
	// default (no limit, the heap grows to twice its live size).
	MemoryLimit string `yaml:"memory_limit"`
}

// Model says which detection model runs and how.
type Model struct {
	// Path is the .tflite file.
	Path string `yaml:"path"`
	// Name and Version are reported with every event; Name defaults to the
	// file name without extension, Version to "".
	Name    string `yaml:"name"`
	Version string `yaml:"version"`
	// Labels is a file with one class name per line; empty means the names
	// embedded in the model (Ultralytics metadata), else class ids.
	Labels string `yaml:"labels"`
	// Backend is auto (default), go or native.
	Backend string `yaml:"backend"`
	// Delegate is "", none, xnnpack or gpu (native backend only).
	Delegate string `yaml:"delegate"`
	// Threads for the engine; default 1.
	Threads int `yaml:"threads"`
	// Strict makes a native delegate that fails to load or apply an error
	// at start (and for an update's model) instead of a warning, a count in
	// edgefleet_native_delegate_fallbacks_total and the CPU path.
	Strict bool `yaml:"strict"`
	// Library is the path of libtensorflowlite_c.so for the native backend;
	// empty means $EDGEFLEET_TFLITE_LIB, then the usual library paths.
	Library string `yaml:"library"`
	// Conf is the minimum score the decoder keeps (default 0.25); IoU the NMS
	// overlap threshold (default 0.45).
	Conf float32 `yaml:"conf"`
	IoU  float32 `yaml:"iou"`
	// Batch is the most frames from different cameras put into one invoke;
	// default 1 (no batching). Larger values only help where the engine
	// supports a batch dimension and measurements show a gain.
	Batch int `yaml:"batch"`
}

// Camera is one frame source with its detection filter.
type Camera struct {
	// ID names the camera in events, metrics and /snapshot/<id>.jpg.
	ID string `yaml:"id"`
	// Source is v4l2, files, mjpeg or synth.
	Source string `yaml:"source"`
	// Device is the V4L2 device path (source v4l2).
	Device string `yaml:"device"`
	// Format is the V4L2 pixel format: mjpeg (default) or yuyv.
	Format string `yaml:"format"`
	// Path is an image file or folder (source files); for synth, an optional
	// folder or file of pictures to move along the belt.
	Path string `yaml:"path"`
	// URL is the MJPEG stream (source mjpeg).
	URL string `yaml:"url"`
	// Seed makes a synth camera's scene (source synth).
	Seed uint64 `yaml:"seed"`
	// Speed is how far a synth camera's belt moves per frame, in pixels;
	// 0 (default) means about six seconds for an object to cross the frame.
	Speed int `yaml:"speed"`
	// Width and Height ask for a frame size (v4l2, synth); default 640x480.
	Width  int `yaml:"width"`
	Height int `yaml:"height"`
	// FPS is the frame rate asked for (v4l2) or produced (files, synth);
	// default 5 when the key is absent (0 given is an error).
	FPS float64 `yaml:"fps"`
	// fpsSet says the file gave fps, so that 0 is not taken for "absent".
	fpsSet bool
	// Region is a polygon in normalized coordinates (0..1 of the frame's
	// width and height); a detection counts when its box centre is inside.
	// Empty means the whole frame.
	Region [][2]float64 `yaml:"region"`
	// Classes keeps only detections with these labels; empty keeps all.
	Classes []string `yaml:"classes"`
	// MinScore drops detections scoring below it (on top of model.conf).
	MinScore float32 `yaml:"min_score"`

	// Tracking, lines and zones (analytics.go).
	Lines   []Line  `yaml:"lines"`
	Zones   []Zone  `yaml:"zones"`
	Tracker Tracker `yaml:"tracker"`
	// Anchor is the point of a box that lines and zones test: bottom (the
	// bottom centre, default) or center.
	Anchor string `yaml:"anchor"`
	// Detections says which raw detections go to the spool besides the
	// analytics events: all (default), sampled (the detections of at most
	// one frame per detections_every) or off.
	Detections      string        `yaml:"detections"`
	DetectionsEvery time.Duration `yaml:"detections_every"`
	// trackerSet says the file gave a tracker section.
	trackerSet bool
}

// Spool is the local durable outbox of detections.
type Spool struct {
	// Path is the bbolt file.
	Path string `yaml:"path"`
	// MaxBytes caps the spool; oldest events are dropped first. Default 256 MiB.
	MaxBytes int64 `yaml:"max_bytes"`
	// MaxAge drops events older than this; 0 keeps them until MaxBytes.
	MaxAge time.Duration `yaml:"max_age"`
}

// Fleet is how the agent reaches the fleet's MQTT broker.
type Fleet struct {
	// Broker is tcp://host:port, ssl://host:port or tls://host:port (alias
	// mqtts://), or ws:// / wss://. Empty runs the agent without a fleet:
	// events stay in the spool.
	Broker   string `yaml:"broker"`
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// Token, if set, is sent as the password (with Username or the device id).
	Token string `yaml:"token"`
	// CAFile verifies the broker; CertFile and KeyFile authenticate the
	// device (both or neither). `edge-agent enroll` writes all three: the
	// device certificate from the fleet CA, whose subject is device_id,
	// and the fleet CA bundle. With a certificate the device needs no
	// password: it is its identity on the broker and for downloads.
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// Server is fleetd's HTTPS base URL, e.g. https://fleet.local:8443:
	// where the device enrolls and renews its certificate (at two thirds
	// of its lifetime, over mutual TLS). Default: update.artifact_url when
	// that is https. Without it a certificate is used but never renewed.
	Server string `yaml:"server"`
}

// RenewServer is where the device renews its certificate: fleet.server,
// else update.artifact_url when it is https; "" if neither.
func (c *Config) RenewServer() string {
	if c.Fleet.Server != "" {
		return c.Fleet.Server
	}
	if strings.HasPrefix(c.Update.ArtifactURL, "https://") {
		return c.Update.ArtifactURL
	}
	return ""
}

// Update configures the over-the-air model update executor (agent/update).
// Updates are disabled while Keys is empty.
type Update struct {
	// Keys are the pinned ed25519 public keys (PEM files, as fleetctl keys
	// generate writes them); a folder stands for every *.pub file in it.
	// Only models whose manifest one of them signed are installed. Pin the
	// old and the new key to rotate without re-flashing.
	Keys []string `yaml:"keys"`
	// Dir holds the update state (state.json: the current model, the last
	// known good one, queued and seen jobs), installed models and partial
	// downloads; default "update" beside spool.path. Once it records a
	// model, the agent starts on that model rather than model.path.
	Dir string `yaml:"dir"`
	// ArtifactURL is the base URL of fleetd's artifact server that relative
	// artifact URLs (/artifacts/<sha256>) are resolved against, e.g.
	// https://fleet.local:8443. Downloads authenticate with the device id
	// and fleet.token (or fleet.password), and trust fleet.ca_file.
	ArtifactURL string `yaml:"artifact_url"`
	// HealthWindow is how long a new model is watched before it is
	// committed, for jobs that do not set their own; default 60s.
	HealthWindow time.Duration `yaml:"health_window"`
	// SmokeBudget is the most the new model may take on the reference frame
	// before the swap; default 10s.
	SmokeBudget time.Duration `yaml:"smoke_budget"`
	// StallTimeout abandons a download attempt that receives nothing for
	// this long; default 30s.
	StallTimeout time.Duration `yaml:"stall_timeout"`
	// MaxAttempts is the most download attempts in a row without progress;
	// default 5.
	MaxAttempts int `yaml:"max_attempts"`
	// Policy decides whether the health window passes.
	Policy HealthPolicy `yaml:"policy"`
}

// Firmware configures updates of the agent binary (firmware_update
// commands). They need the agent to run under edge-launcher, which keeps
// the A/B slots; elsewhere such commands are refused with the reason.
type Firmware struct {
	// Keys are the pinned public keys (PEM files, or folders of *.pub) that
	// must have signed an agent bundle; default update.keys. With neither,
	// firmware updates are refused (a trial started by edge-launcher
	// install is still committed once the agent is healthy).
	Keys []string `yaml:"keys"`
	// DataDir is edge-launcher's data directory (slots and state.json);
	// default the one the launcher names in $EDGEFLEET_FIRMWARE_DIR. When
	// both are set they must be the same folder.
	DataDir string `yaml:"data_dir"`
	// MaxBoots is how many starts a new version gets to report healthy
	// before the launcher rolls it back; default 3.
	MaxBoots int `yaml:"max_boots"`
}

// Enabled reports whether firmware updates can be verified (some key is
// pinned for them).
func (f *Firmware) Enabled() bool { return len(f.Keys) > 0 }

// HealthPolicy decides whether a new model passed its health window,
// comparing it with the window before the swap.
type HealthPolicy struct {
	// MaxErrors is the most inference errors tolerated; default 0.
	MaxErrors uint64 `yaml:"max_errors"`
	// MinFrames is the fewest frames the window must see; default 1.
	MinFrames uint64 `yaml:"min_frames"`
	// MaxLatencyRatio fails a median latency above this multiple of the
	// one before; default 2.
	MaxLatencyRatio float64 `yaml:"max_latency_ratio"`
	// MinDetectionRatio fails detections per frame below this fraction of
	// the rate before; default 0.5, 0 turns the check off.
	MinDetectionRatio *float64 `yaml:"min_detection_ratio"`
}

// Enabled reports whether updates are on (some key is pinned).
func (u *Update) Enabled() bool { return len(u.Keys) > 0 }

// HTTP is the local endpoint (/healthz, /metrics, /snapshot/<camera>.jpg).
// It has no authentication, so it listens on loopback unless told
// otherwise: a Prometheus on another host needs an explicit address
// (e.g. "0.0.0.0:9101", or the box's LAN address). Operators see
// snapshots through fleetd, which asks the agent over MQTT.
type HTTP struct {
	// Listen is host:port; default 127.0.0.1:9101 (loopback only). "off"
	// disables it; "0.0.0.0:9101" serves every interface.
	Listen string `yaml:"listen"`
}

// Defaults used when a field is left empty.
const (
	DefaultTelemetryInterval = 10 * time.Second
	DefaultSpoolBytes        = 256 << 20
	DefaultListen            = "127.0.0.1:9101"
	DefaultFPS               = 5
	DefaultWidth             = 640
	DefaultHeight            = 480

	DefaultUpdateDir         = "update" // beside spool.path
	DefaultHealthWindow      = 60 * time.Second
	DefaultSmokeBudget       = 10 * time.Second
	DefaultStallTimeout      = 30 * time.Second
	DefaultMaxAttempts       = 5
	DefaultMinFrames         = 1
	DefaultMaxLatencyRatio   = 2.0
	DefaultMinDetectionRatio = 0.5

	DefaultFirmwareMaxBoots = 3
)

// Load reads, strictly decodes, defaults and validates the file at path.
// Relative file paths in it (model, labels, spool, camera files, TLS files)
// are taken relative to the config file's folder.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("config: %s: %w", path, err)
	}
	c.resolve(filepath.Dir(path))
	return c, nil
}

// resolve makes relative file paths relative to dir.
func (c *Config) resolve(dir string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	abs(&c.Model.Path)
	abs(&c.Model.Labels)
	abs(&c.Model.Library)
	abs(&c.Firmware.DataDir)
	for i := range c.Firmware.Keys {
		abs(&c.Firmware.Keys[i])
	}
	abs(&c.Spool.Path)
	abs(&c.Fleet.CAFile)
	abs(&c.Fleet.CertFile)
	abs(&c.Fleet.KeyFile)
	abs(&c.Update.Dir)
	for i := range c.Update.Keys {
		abs(&c.Update.Keys[i])
	}
	for i := range c.Cameras {
		abs(&c.Cameras[i].Path)
	}
}

// Parse strictly decodes a config, fills defaults and validates it. Errors
// name the offending key, e.g. `cameras[1].fps: must be > 0`.
func Parse(r io.Reader) (*Config, error) {
	var c Config
	root, err := yamlconf.Read(r, &c)
	if err != nil {
		return nil, err
	}
	markGiven(root, &c)
	c.Defaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// markGiven records which keys whose zero value means "default" the file
// gave explicitly (cameras[i].fps).
func markGiven(root *yaml.Node, c *Config) {
	if root.Kind != yaml.DocumentNode || len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return
	}
	top := root.Content[0]
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i].Value != "cameras" || top.Content[i+1].Kind != yaml.SequenceNode {
			continue
		}
		for j, cam := range top.Content[i+1].Content {
			if j >= len(c.Cameras) || cam.Kind != yaml.MappingNode {
				continue
			}
			for k := 0; k+1 < len(cam.Content); k += 2 {
				switch cam.Content[k].Value {
				case "fps":
					c.Cameras[j].fpsSet = true
				case "tracker":
					c.Cameras[j].trackerSet = true
				}
			}
		}
	}
}

// Defaults fills the documented defaults into empty fields.
func (c *Config) Defaults() {
	if c.TelemetryInterval == 0 {
		c.TelemetryInterval = DefaultTelemetryInterval
	}
	if c.Spool.MaxBytes == 0 {
		c.Spool.MaxBytes = DefaultSpoolBytes
	}
	if c.HTTP.Listen == "" {
		c.HTTP.Listen = DefaultListen
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.MemoryLimit == "" {
		c.MemoryLimit = "auto"
	}
	m := &c.Model
	if m.Name == "" && m.Path != "" {
		base := m.Path[strings.LastIndex(m.Path, "/")+1:]
		m.Name = strings.TrimSuffix(base, ".tflite")
	}
	if m.Backend == "" {
		m.Backend = "auto"
	}
	if m.Threads == 0 {
		m.Threads = 1
	}
	if m.Conf == 0 {
		m.Conf = 0.25
	}
	if m.IoU == 0 {
		m.IoU = 0.45
	}
	if m.Batch == 0 {
		m.Batch = 1
	}
	u := &c.Update
	if u.Dir == "" && c.Spool.Path != "" {
		u.Dir = filepath.Join(filepath.Dir(c.Spool.Path), DefaultUpdateDir)
	}
	if u.HealthWindow == 0 {
		u.HealthWindow = DefaultHealthWindow
	}
	if u.SmokeBudget == 0 {
		u.SmokeBudget = DefaultSmokeBudget
	}
	if u.StallTimeout == 0 {
		u.StallTimeout = DefaultStallTimeout
	}
	if u.MaxAttempts == 0 {
		u.MaxAttempts = DefaultMaxAttempts
	}
	if u.Policy.MinFrames == 0 {
		u.Policy.MinFrames = DefaultMinFrames
	}
	if u.Policy.MaxLatencyRatio == 0 {
		u.Policy.MaxLatencyRatio = DefaultMaxLatencyRatio
	}
	if u.Policy.MinDetectionRatio == nil {
		r := DefaultMinDetectionRatio
		u.Policy.MinDetectionRatio = &r
	}
	fw := &c.Firmware
	if len(fw.Keys) == 0 {
		fw.Keys = slices.Clone(u.Keys)
	}
	if fw.MaxBoots == 0 {
		fw.MaxBoots = DefaultFirmwareMaxBoots
	}
	for i := range c.Cameras {
		cam := &c.Cameras[i]
		if cam.FPS == 0 && !cam.fpsSet {
			cam.FPS = DefaultFPS
		}
		if cam.Width == 0 && cam.Height == 0 {
			cam.Width, cam.Height = DefaultWidth, DefaultHeight
		}
		if cam.Source == SourceV4L2 && cam.Format == "" {
			cam.Format = "mjpeg"
		}
		cam.analyticsDefaults()
	}
}

// Validate checks every field and returns all problems, one per line, each
// starting with the key it is about.
func (c *Config) Validate() error {
	var p problems
	c.validateTop(&p)
	c.validateModel(&p)
	c.validateCameras(&p)
	c.validateSpool(&p)
	c.validateFleet(&p)
	c.validateUpdate(&p)
	c.validateFirmware(&p)
	return errors.Join(p...)
}

// problems collects what Validate finds, each naming its key.
type problems []error

func (p *problems) bad(key, format string, args ...any) {
	*p = append(*p, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
}

func (c *Config) validateTop(p *problems) {
	bad := p.bad
	if err := api.ValidateID(c.DeviceID); err != nil {
		bad("device_id", "%v", err)
	}
	for k := range c.Labels {
		if k == "" {
			bad("labels", "empty label name")
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log_level", "must be debug, info, warn or error, not %q", c.LogLevel)
	}
	if c.MemoryLimit != "auto" && c.MemoryLimit != "off" {
		bad("memory_limit", "must be auto or off, not %q", c.MemoryLimit)
	}
	if c.TelemetryInterval < 100*time.Millisecond {
		bad("telemetry_interval", "must be >= 100ms, not %v", c.TelemetryInterval)
	}

	if c.HTTP.Listen != "off" {
		if _, _, err := net.SplitHostPort(c.HTTP.Listen); err != nil {
			bad("http.listen", "must be host:port or off, not %q", c.HTTP.Listen)
		}
	}
}

func (c *Config) validateModel(p *problems) {
	bad := p.bad
	m := c.Model
	if m.Path == "" {
		bad("model.path", "required")
	}
	switch m.Backend {
	case "auto", "go", "native":
	default:
		bad("model.backend", "must be auto, go or native, not %q", m.Backend)
	}
	switch m.Delegate {
	case "", "none", "xnnpack", "gpu":
	default:
		bad("model.delegate", "must be none, xnnpack or gpu, not %q", m.Delegate)
	}
	if m.Threads < 1 || m.Threads > 256 {
		bad("model.threads", "must be 1..256, not %d", m.Threads)
	}
	if !(m.Conf > 0 && m.Conf < 1) {
		bad("model.conf", "must be between 0 and 1, not %v", m.Conf)
	}
	if !(m.IoU > 0 && m.IoU <= 1) {
		bad("model.iou", "must be in (0, 1], not %v", m.IoU)
	}
	if m.Batch < 1 || m.Batch > 64 {
		bad("model.batch", "must be 1..64, not %d", m.Batch)
	}

	if m.Library != "" && strings.TrimSpace(m.Library) == "" {
		bad("model.library", "blank path")
	}
	if m.Backend == "go" {
		if m.Library != "" {
			bad("model.library", "is for the native backend; model.backend is go")
		}
	}
}

func (c *Config) validateCameras(p *problems) {
	bad := p.bad
	if len(c.Cameras) == 0 {
		bad("cameras", "at least one camera is required")
	}
	seen := map[string]int{}
	for i, cam := range c.Cameras {
		key := fmt.Sprintf("cameras[%d]", i)
		if err := api.ValidateID(cam.ID); err != nil {
			bad(key+".id", "%v", err)
		} else if j, dup := seen[cam.ID]; dup {
			bad(key+".id", "%q already used by cameras[%d]", cam.ID, j)
		} else {
			seen[cam.ID] = i
		}
		cam.validate(p, key)
	}
}

// validate checks one camera's settings but its id.
func (cam *Camera) validate(p *problems, key string) {
	bad := p.bad
	switch cam.Source {
	case SourceV4L2:
		if cam.Device == "" {
			bad(key+".device", "required for source v4l2")
		}
		switch cam.Format {
		case "mjpeg", "yuyv":
		default:
			bad(key+".format", "must be mjpeg or yuyv, not %q", cam.Format)
		}
	case SourceFiles:
		if cam.Path == "" {
			bad(key+".path", "required for source files")
		}
	case SourceMJPEG:
		u, err := url.Parse(cam.URL)
		if cam.URL == "" {
			bad(key+".url", "required for source mjpeg")
		} else if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad(key+".url", "must be an http:// or https:// URL, not %q", cam.URL)
		}
	case SourceSynth:
		if cam.Speed < 0 || cam.Speed > cam.Width {
			bad(key+".speed", "must be 0 (default) or 1..width pixels per frame, not %d", cam.Speed)
		}
	case "":
		bad(key+".source", "required (v4l2, files, mjpeg or synth)")
	default:
		bad(key+".source", "must be v4l2, files, mjpeg or synth, not %q", cam.Source)
	}
	if !(cam.FPS > 0) || cam.FPS > 1000 {
		bad(key+".fps", "must be > 0 and <= 1000, not %v", cam.FPS)
	}
	if cam.Width < 16 || cam.Width > 8192 {
		bad(key+".width", "must be 16..8192, not %d", cam.Width)
	}
	if cam.Height < 16 || cam.Height > 8192 {
		bad(key+".height", "must be 16..8192, not %d", cam.Height)
	}
	if n := len(cam.Region); n != 0 && n < 3 {
		bad(key+".region", "a polygon needs at least 3 points, not %d", n)
	}
	for j, p := range cam.Region {
		if p[0] < 0 || p[0] > 1 || p[1] < 0 || p[1] > 1 {
			bad(fmt.Sprintf("%s.region[%d]", key, j), "coordinates must be within 0..1 (fractions of the frame), not %v", p)
		}
	}
	for j, cl := range cam.Classes {
		if strings.TrimSpace(cl) == "" {
			bad(fmt.Sprintf("%s.classes[%d]", key, j), "empty class name")
		}
	}
	if cam.MinScore < 0 || cam.MinScore > 1 {
		bad(key+".min_score", "must be within 0..1, not %v", cam.MinScore)
	}
	cam.validateAnalytics(p, key)
}

func (c *Config) validateSpool(p *problems) {
	bad := p.bad
	if c.Spool.Path == "" {
		bad("spool.path", "required")
	}
	if c.Spool.MaxBytes < 1<<20 {
		bad("spool.max_bytes", "must be >= 1048576 (1 MiB), not %d", c.Spool.MaxBytes)
	}
	if c.Spool.MaxAge < 0 {
		bad("spool.max_age", "must not be negative")
	}
}

func (c *Config) validateFleet(p *problems) {
	bad := p.bad
	f := c.Fleet
	if f.Broker != "" {
		u, err := url.Parse(f.Broker)
		if err != nil || u.Host == "" {
			bad("fleet.broker", "must be a URL such as tcp://host:1883, not %q", f.Broker)
		} else {
			switch u.Scheme {
			case "tcp", "mqtt", "ssl", "tls", "mqtts", "ws", "wss":
			default:
				bad("fleet.broker", "scheme must be tcp, ssl, tls, mqtts, ws or wss, not %q", u.Scheme)
			}
		}
	}
	if (f.CertFile == "") != (f.KeyFile == "") {
		bad("fleet.cert_file", "cert_file and key_file go together")
	}
	if f.Password != "" && f.Token != "" {
		bad("fleet.token", "set password or token, not both")
	}
	if f.Server != "" {
		if u, err := url.Parse(f.Server); err != nil || u.Scheme != "https" || u.Host == "" {
			bad("fleet.server", "must be an https:// URL such as https://fleet.local:8443, not %q", f.Server)
		}
	}
}

func (c *Config) validateUpdate(p *problems) {
	bad := p.bad
	u := c.Update
	for i, k := range u.Keys {
		if strings.TrimSpace(k) == "" {
			bad(fmt.Sprintf("update.keys[%d]", i), "empty path")
		}
	}
	if u.Enabled() && u.Dir == "" {
		bad("update.dir", "required (or spool.path, which it defaults beside)")
	}
	if u.ArtifactURL != "" {
		p, err := url.Parse(u.ArtifactURL)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			bad("update.artifact_url", "must be an http:// or https:// URL, not %q", u.ArtifactURL)
		}
	}
	if u.HealthWindow < 100*time.Millisecond || u.HealthWindow > 24*time.Hour {
		bad("update.health_window", "must be 100ms..24h, not %v", u.HealthWindow)
	}
	if u.SmokeBudget < 10*time.Millisecond || u.SmokeBudget > 10*time.Minute {
		bad("update.smoke_budget", "must be 10ms..10m, not %v", u.SmokeBudget)
	}
	if u.StallTimeout < 100*time.Millisecond || u.StallTimeout > time.Hour {
		bad("update.stall_timeout", "must be 100ms..1h, not %v", u.StallTimeout)
	}
	if u.MaxAttempts < 1 || u.MaxAttempts > 1000 {
		bad("update.max_attempts", "must be 1..1000, not %d", u.MaxAttempts)
	}
	if !(u.Policy.MaxLatencyRatio >= 1) || u.Policy.MaxLatencyRatio > 1000 {
		bad("update.policy.max_latency_ratio", "must be 1..1000, not %v", u.Policy.MaxLatencyRatio)
	}
	if r := u.Policy.MinDetectionRatio; r != nil && !(*r >= 0 && *r <= 1) {
		bad("update.policy.min_detection_ratio", "must be within 0..1 (0 turns the check off), not %v", *r)
	}
}

func (c *Config) validateFirmware(p *problems) {
	bad := p.bad
	fw := c.Firmware
	for i, k := range fw.Keys {
		if strings.TrimSpace(k) == "" {
			bad(fmt.Sprintf("firmware.keys[%d]", i), "empty path")
		}
	}
	if fw.MaxBoots < 1 || fw.MaxBoots > 100 {
		bad("firmware.max_boots", "must be 1..100, not %d", fw.MaxBoots)
	}
	if fw.DataDir != "" && strings.TrimSpace(fw.DataDir) == "" {
		bad("firmware.data_dir", "blank path")
	}
}

// CheckDevices reports the first V4L2 camera whose device does not exist, as
// an error naming the camera key and the device path.
func (c *Config) CheckDevices() error {
	for i, cam := range c.Cameras {
		if cam.Source != SourceV4L2 {
			continue
		}
		if _, err := os.Stat(cam.Device); err != nil {
			return fmt.Errorf("cameras[%d].device: camera %s: device %s: %w", i, cam.ID, cam.Device, err)
		}
	}
	return nil
}
