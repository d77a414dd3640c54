package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const good = `
device_id: box-1
labels: {site: plant-a, line: "3"}
model:
  path: /models/yolov8n.tflite
  version: "7"
  threads: 2
cameras:
  - id: belt-a
    source: synth
    seed: 42
    fps: 4
    region: [[0, 0], [1, 0], [1, 1], [0, 1]]
    classes: [person, cup]
    min_score: 0.5
    lines:
      - id: exit
        points: [[0.5, 1], [0.5, 0]]
        classes: [cup]
      - id: side
        points: [[0, 0.5], [1, 0.5]]
    zones:
      - id: cell
        polygon: [[0.2, 0.2], [0.8, 0.2], [0.8, 0.9], [0.2, 0.9]]
        min_dwell: 2s
    tracker: {track_buffer: 20}
    detections: sampled
  - id: belt-b
    source: files
    path: /images
spool:
  path: /var/lib/edgefleet/spool.db
  max_bytes: 1048576
  max_age: 72h
fleet:
  broker: tcp://127.0.0.1:1883
  username: box-1
  password: secret
telemetry_interval: 5s
http:
  listen: 127.0.0.1:0
`

func TestParseGood(t *testing.T) {
	c, err := Parse(strings.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	if c.Model.Name != "yolov8n" || c.Model.Backend != "auto" || c.Model.Conf != 0.25 || c.Model.Batch != 1 {
		t.Errorf("model defaults: %+v", c.Model)
	}
	if c.Spool.MaxAge != 72*time.Hour || c.TelemetryInterval != 5*time.Second {
		t.Errorf("durations: %v %v", c.Spool.MaxAge, c.TelemetryInterval)
	}
	if c.Cameras[1].FPS != DefaultFPS || c.Cameras[1].Width != DefaultWidth {
		t.Errorf("camera defaults: %+v", c.Cameras[1])
	}
	if len(c.Cameras[0].Region) != 4 || c.Cameras[0].Region[2] != [2]float64{1, 1} {
		t.Errorf("region: %v", c.Cameras[0].Region)
	}
	cam := c.Cameras[0]
	if len(cam.Lines) != 2 || cam.Lines[0].Points[1] != [2]float64{0.5, 0} || cam.Zones[0].MinDwell != 2*time.Second {
		t.Errorf("lines and zones: %+v %+v", cam.Lines, cam.Zones)
	}
	if tc := cam.TrackConfig(); tc.Buffer != 20 || tc.MinHits != 2 || tc.High != 0.5 {
		t.Errorf("tracker: %+v", tc)
	}
	if cam.Detections != DetectionsSampled || cam.DetectionsEvery != time.Second || cam.Anchor != "bottom" {
		t.Errorf("detections %q every %v anchor %q", cam.Detections, cam.DetectionsEvery, cam.Anchor)
	}
	if a := cam.Analytics(); len(a.Lines) != 2 || !a.Lines[0].Classes["cup"] || len(a.Zones) != 1 {
		t.Errorf("analytics config: %+v", a)
	}
	if !cam.Tracking() || c.Cameras[1].Tracking() {
		t.Errorf("tracking: %v %v", cam.Tracking(), c.Cameras[1].Tracking())
	}
	if c.Cameras[1].Detections != DetectionsAll || c.Cameras[1].DetectionsEvery != 0 {
		t.Errorf("detections default: %q %v", c.Cameras[1].Detections, c.Cameras[1].DetectionsEvery)
	}
	if c.Labels["line"] != "3" {
		t.Errorf("labels: %v", c.Labels)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		old  string // replaced in good by new
		new  string
		want string // substring of the error
	}{
		{"unknown top key", "device_id: box-1", "device_id: box-1\ncolour: red", "colour: unknown key (line 3)"},
		{"unknown nested key", "    seed: 42", "    seed: 42\n    fpss: 3", "cameras[0].fpss: unknown key"},
		{"unknown key in second camera", "    path: /images", "    path: /images\n    regoin: []", "cameras[1].regoin: unknown key"},
		{"unknown model key", "  threads: 2", "  threads: 2\n  gpu: yes", "model.gpu: unknown key"},
		{"negative belt speed", "    seed: 42", "    seed: 42\n    speed: -3", "cameras[0].speed: must be 0 (default) or 1..width"},
		{"bad fps", "    fps: 4", "    fps: -1", "cameras[0].fps: must be > 0"},
		{"zero fps", "    fps: 4", "    fps: 0", "cameras[0].fps: must be > 0"},
		{"bad fps type", "    fps: 4", "    fps: fast", `cameras[0].fps: cannot use "fast" as a number`},
		{"bad duration", "max_age: 72h", "max_age: forever", "forever"},
		{"missing device id", "device_id: box-1", "device_id: ''", "device_id: empty id"},
		{"bad device id", "device_id: box-1", "device_id: box/1", "device_id: id \"box/1\" has character '/'"},
		{"bad source", "    source: files", "    source: webcam", "cameras[1].source: must be v4l2, files, mjpeg or synth"},
		{"v4l2 without device", "    source: files", "    source: v4l2", "cameras[1].device: required"},
		{"duplicate camera", "  - id: belt-b", "  - id: belt-a", "cameras[1].id: \"belt-a\" already used by cameras[0]"},
		{"small region", "    region: [[0, 0], [1, 0], [1, 1], [0, 1]]", "    region: [[0, 0], [1, 0]]", "cameras[0].region: a polygon needs at least 3 points"},
		{"region out of frame", "[1, 1], [0, 1]]", "[2, 1], [0, 1]]", "cameras[0].region[2]: coordinates must be within 0..1"},
		{"bad min score", "min_score: 0.5", "min_score: 1.5", "cameras[0].min_score: must be within 0..1"},
		{"bad conf", "  threads: 2", "  threads: 2\n  conf: 2", "model.conf: must be between 0 and 1"},
		{"bad backend", "  threads: 2", "  threads: 2\n  backend: cuda", "model.backend: must be auto, go or native"},
		{"no model", "  path: /models/yolov8n.tflite", "  name: x", "model.path: required"},
		{"bad broker", "tcp://127.0.0.1:1883", "http://127.0.0.1:1883", "fleet.broker: scheme must be"},
		{"cert without key", "  password: secret", "  password: secret\n  cert_file: /c.pem", "fleet.cert_file: cert_file and key_file go together"},
		{"bad memory limit", "telemetry_interval: 5s", "telemetry_interval: 5s\nmemory_limit: 40MiB", `memory_limit: must be auto or off, not "40MiB"`},
		{"bad listen", "listen: 127.0.0.1:0", "listen: localhost", "http.listen: must be host:port"},
		{"small spool", "max_bytes: 1048576", "max_bytes: 10", "spool.max_bytes: must be >= 1048576"},
		{"mjpeg bad url", "    source: files", "    source: mjpeg\n    url: ftp://x", "cameras[1].url: must be an http"},
		{"not a mapping", "device_id: box-1", "device_id: [box-1]", "cannot unmarshal"},
		{"unknown update key", "telemetry_interval: 5s", "telemetry_interval: 5s\nupdate: {keys: [k.pub], helth_window: 1m}", "update.helth_window: unknown key"},
		{"unknown policy key", "telemetry_interval: 5s", "telemetry_interval: 5s\nupdate: {policy: {max_errorz: 1}}", "update.policy.max_errorz: unknown key"},
		{"empty key path", "telemetry_interval: 5s", "telemetry_interval: 5s\nupdate: {keys: [k.pub, ' ']}", "update.keys[1]: empty path"},
		{"bad artifact url", "telemetry_interval: 5s", "telemetry_interval: 5s\nupdate: {artifact_url: 'fleet.local:8443'}", "update.artifact_url: must be an http"},
		{"bad health window", "telemetry_interval: 5s", "telemetry_interval: 5s\nupdate: {health_window: -1s}", "update.health_window: must be 100ms..24h"},
		{"bad smoke budget", "telemetry_interval: 5s", "telemetry_interval: 5s\nupdate: {smoke_budget: 1h}", "update.smoke_budget: must be 10ms..10m"},
		{"bad stall timeout", "telemetry_interval: 5s", "telemetry_interval: 5s\nupdate: {stall_timeout: 1ms}", "update.stall_timeout: must be 100ms..1h"},
		{"bad attempts", "telemetry_interval: 5s", "telemetry_interval: 5s\nupdate: {max_attempts: -3}", "update.max_attempts: must be 1..1000"},
		{"bad latency ratio", "telemetry_interval: 5s", "telemetry_interval: 5s\nupdate: {policy: {max_latency_ratio: 0.5}}", "update.policy.max_latency_ratio: must be 1..1000"},
		{"bad detection ratio", "telemetry_interval: 5s", "telemetry_interval: 5s\nupdate: {policy: {min_detection_ratio: 1.5}}", "update.policy.min_detection_ratio: must be within 0..1"},
		{"unknown firmware key", "telemetry_interval: 5s", "telemetry_interval: 5s\nfirmware: {keys: [k.pub], data: /x}", "firmware.data: unknown key"},
		{"empty firmware key path", "telemetry_interval: 5s", "telemetry_interval: 5s\nfirmware: {keys: [' ']}", "firmware.keys[0]: empty path"},
		{"bad max boots", "telemetry_interval: 5s", "telemetry_interval: 5s\nfirmware: {max_boots: 101}", "firmware.max_boots: must be 1..100"},
		{"negative max boots", "telemetry_interval: 5s", "telemetry_interval: 5s\nfirmware: {max_boots: -1}", "firmware.max_boots: must be 1..100"},
		{"blank data dir", "telemetry_interval: 5s", "telemetry_interval: 5s\nfirmware: {data_dir: ' '}", "firmware.data_dir: blank path"},
		{"strict not a bool", "  threads: 2", "  threads: 2\n  strict: maybe", `model.strict: cannot use "maybe" as true or false`},
		{"library with the go backend", "  threads: 2", "  threads: 2\n  backend: go\n  library: /usr/lib/libtensorflowlite_c.so", "model.library: is for the native backend"},
		{"line with one point", "points: [[0.5, 1], [0.5, 0]]", "points: [[0.5, 1]]", "cameras[0].lines[0].points: a line needs 2 points, not 1"},
		{"degenerate line", "points: [[0.5, 1], [0.5, 0]]", "points: [[0.5, 0.5], [0.5, 0.5]]", "cameras[0].lines[0].points: degenerate line"},
		{"line out of frame", "points: [[0, 0.5], [1, 0.5]]", "points: [[0, 0.5], [1.2, 0.5]]", "cameras[0].lines[1].points[1]: coordinates must be within 0..1"},
		{"duplicate line id", "      - id: side", "      - id: exit", `cameras[0].lines[1].id: "exit" already used by lines[0]`},
		{"bad line id", "      - id: side", "      - id: 'si de'", "cameras[0].lines[1].id: id"},
		{"empty line class", "classes: [cup]", "classes: [cup, '']", "cameras[0].lines[0].classes[1]: empty class name"},
		{"twice a class", "classes: [cup]", "classes: [cup, cup]", `cameras[0].lines[0].classes[1]: "cup" twice`},
		{"unknown line key", "        classes: [cup]", "        classes: [cup]\n        colour: red", "cameras[0].lines[0].colour: unknown key"},
		{"small polygon", "polygon: [[0.2, 0.2], [0.8, 0.2], [0.8, 0.9], [0.2, 0.9]]", "polygon: [[0.2, 0.2], [0.8, 0.2]]", "cameras[0].zones[0].polygon: a polygon needs at least 3 points, not 2"},
		{"self-intersecting polygon", "polygon: [[0.2, 0.2], [0.8, 0.2], [0.8, 0.9], [0.2, 0.9]]", "polygon: [[0.2, 0.2], [0.8, 0.9], [0.8, 0.2], [0.2, 0.9]]", "cameras[0].zones[0].polygon: the polygon's edges cross"},
		{"flat polygon", "polygon: [[0.2, 0.2], [0.8, 0.2], [0.8, 0.9], [0.2, 0.9]]", "polygon: [[0.2, 0.2], [0.5, 0.2], [0.8, 0.2]]", "cameras[0].zones[0].polygon: degenerate polygon"},
		{"polygon out of frame", "[0.8, 0.9], [0.2, 0.9]]", "[0.8, 0.9], [-0.2, 0.9]]", "cameras[0].zones[0].polygon[3]: coordinates must be within 0..1"},
		{"negative min dwell", "min_dwell: 2s", "min_dwell: -2s", "cameras[0].zones[0].min_dwell: must be 0..24h"},
		{"bad detections", "detections: sampled", "detections: some", "cameras[0].detections: must be all, sampled or off"},
		{"sampling without sampled", "detections: sampled", "detections: all\n    detections_every: 2s", "cameras[0].detections_every: is for detections: sampled"},
		{"bad anchor", "detections: sampled", "detections: sampled\n    anchor: top", "cameras[0].anchor: must be bottom or center"},
		{"bad track buffer", "tracker: {track_buffer: 20}", "tracker: {track_buffer: -1}", "cameras[0].tracker.track_buffer: must be 1..10000"},
		{"low above high", "tracker: {track_buffer: 20}", "tracker: {low_score: 0.7}", "cameras[0].tracker.low_score: must be below high_score"},
		{"new track below high", "tracker: {track_buffer: 20}", "tracker: {new_track_score: 0.3}", "cameras[0].tracker.new_track_score: must be at least high_score"},
		{"unknown tracker key", "tracker: {track_buffer: 20}", "tracker: {buffer: 20}", "cameras[0].tracker.buffer: unknown key"},
		{"negative min frames", "telemetry_interval: 5s", "telemetry_interval: 5s\nupdate: {policy: {min_frames: -1}}", `update.policy.min_frames: cannot use "-1" as a whole number`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(good, tt.old) {
				t.Fatalf("test broken: %q not in the good config", tt.old)
			}
			_, err := Parse(strings.NewReader(strings.Replace(good, tt.old, tt.new, 1)))
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q\ndoes not contain %q", err, tt.want)
			}
		})
	}
}

// TestTrackerHighScoreAlone: raising high_score alone moves the default
// new_track_score with it (ByteTrack's high + 0.1), not into an error.
func TestTrackerHighScoreAlone(t *testing.T) {
	c, err := Parse(strings.NewReader(strings.Replace(good, "tracker: {track_buffer: 20}", "tracker: {high_score: 0.7}", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if tc := c.Cameras[0].TrackConfig(); tc.High != 0.7 || tc.NewTrack < 0.79 || tc.NewTrack > 0.81 {
		t.Errorf("tracker %+v", tc)
	}
}

func TestParseEmpty(t *testing.T) {
	if _, err := Parse(strings.NewReader("")); err == nil {
		t.Fatal("empty config accepted")
	}
}

func TestCheckDevices(t *testing.T) {
	dir := t.TempDir()
	dev := filepath.Join(dir, "video0")
	if err := os.WriteFile(dev, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	c := &Config{Cameras: []Camera{
		{ID: "a", Source: SourceV4L2, Device: dev},
		{ID: "b", Source: SourceV4L2, Device: filepath.Join(dir, "video9")},
	}}
	err := c.CheckDevices()
	if err == nil || !strings.Contains(err.Error(), "cameras[1].device") || !strings.Contains(err.Error(), "video9") {
		t.Fatalf("CheckDevices = %v, want an error naming cameras[1].device and video9", err)
	}
	c.Cameras = c.Cameras[:1]
	if err := c.CheckDevices(); err != nil {
		t.Fatal(err)
	}
}

func TestLoadNamesFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(p, []byte("bogus: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(p)
	if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "bogus: unknown key") {
		t.Fatalf("Load = %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(good)
	f.Add("cameras: [{id: a, region: [[0,0]]}]")
	f.Add("a: &x {b: *x}")
	f.Add("cameras: [{id: a, lines: [{id: l, points: [[0,0],[.nan,1]]}], zones: [{id: z, polygon: [[0,0],[1,1],[1,0],[0,1]]}]}]")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Parse(strings.NewReader(s))
		if err == nil && c.Validate() != nil {
			t.Fatal("Parse accepted a config that does not validate")
		}
		if err == nil {
			for _, cam := range c.Cameras {
				cam.Analytics() // valid geometry converts without a panic
			}
		}
	})
}

func TestLoadDemoResolvesPaths(t *testing.T) {
	c, err := Load(filepath.Join("testdata", "demo.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	wantModel, _ := filepath.Abs(filepath.Join("testdata", "../../../../shared/testdata/models/yolov8n_full_integer_quant.tflite"))
	if got, _ := filepath.Abs(c.Model.Path); got != wantModel {
		t.Errorf("model path %s, want %s", got, wantModel)
	}
	if c.Spool.Path != "/tmp/edgefleet-demo/spool.db" {
		t.Errorf("absolute spool path changed to %s", c.Spool.Path)
	}
	if len(c.Cameras) != 2 || len(c.Cameras[1].Region) != 4 || c.Cameras[1].MinScore != 0.4 {
		t.Errorf("cameras %+v", c.Cameras)
	}
}

func TestUpdateDefaults(t *testing.T) {
	c, err := Parse(strings.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	u := c.Update
	if u.Enabled() {
		t.Error("updates enabled without keys")
	}
	if u.Dir != "/var/lib/edgefleet/update" || u.HealthWindow != DefaultHealthWindow || u.SmokeBudget != DefaultSmokeBudget ||
		u.StallTimeout != DefaultStallTimeout || u.MaxAttempts != DefaultMaxAttempts || u.ArtifactURL != "" {
		t.Errorf("update defaults: %+v", u)
	}
	p := u.Policy
	if p.MaxErrors != 0 || p.MinFrames != 1 || p.MaxLatencyRatio != 2 || p.MinDetectionRatio == nil || *p.MinDetectionRatio != 0.5 {
		t.Errorf("policy defaults: %+v", p)
	}
}

func TestUpdateLoad(t *testing.T) {
	dir := t.TempDir()
	body := strings.Replace(good, "telemetry_interval: 5s", `telemetry_interval: 5s
update:
  keys: [keys/fleet.pub, /etc/edgefleet/keys]
  dir: data/update
  artifact_url: https://fleet.local:8443
  health_window: 2m
  smoke_budget: 3s
  stall_timeout: 5s
  max_attempts: 9
  policy:
    max_errors: 2
    min_frames: 10
    max_latency_ratio: 1.5
    min_detection_ratio: 0
`, 1)
	p := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	u := c.Update
	if !u.Enabled() || len(u.Keys) != 2 || u.Keys[0] != filepath.Join(dir, "keys/fleet.pub") || u.Keys[1] != "/etc/edgefleet/keys" {
		t.Errorf("keys %v (relative paths resolve against the config's folder)", u.Keys)
	}
	if u.Dir != filepath.Join(dir, "data/update") {
		t.Errorf("dir %s", u.Dir)
	}
	if u.ArtifactURL != "https://fleet.local:8443" || u.HealthWindow != 2*time.Minute || u.SmokeBudget != 3*time.Second ||
		u.StallTimeout != 5*time.Second || u.MaxAttempts != 9 {
		t.Errorf("update %+v", u)
	}
	pol := u.Policy
	if pol.MaxErrors != 2 || pol.MinFrames != 10 || pol.MaxLatencyRatio != 1.5 || pol.MinDetectionRatio == nil || *pol.MinDetectionRatio != 0 {
		t.Errorf("policy %+v (min_detection_ratio 0 must stay 0: the check off)", pol)
	}

	// The default dir sits beside a relative spool path, resolved like it.
	body = strings.Replace(good, "/var/lib/edgefleet/spool.db", "state/spool.db", 1)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if c, err = Load(p); err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "state", "update"); c.Update.Dir != want {
		t.Errorf("default dir %s, want %s", c.Update.Dir, want)
	}
}

func TestFirmwareAndEngineLoad(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "agent.yaml")
	load := func(t *testing.T, body string) *Config {
		t.Helper()
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(p)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	tests := []struct {
		name     string
		extra    string
		keys     []string
		dataDir  string
		maxBoots int
	}{
		{"off by default", "", nil, "", DefaultFirmwareMaxBoots},
		{"keys from update.keys", "update: {keys: [keys/fleet.pub]}", []string{filepath.Join(dir, "keys/fleet.pub")}, "", DefaultFirmwareMaxBoots},
		{"own keys and data dir", "update: {keys: [keys/fleet.pub]}\nfirmware: {keys: [fw.pub, /etc/fw], data_dir: slots, max_boots: 2}",
			[]string{filepath.Join(dir, "fw.pub"), "/etc/fw"}, filepath.Join(dir, "slots"), 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := load(t, strings.Replace(good, "telemetry_interval: 5s", "telemetry_interval: 5s\n"+tt.extra, 1))
			f := c.Firmware
			if f.Enabled() != (len(tt.keys) > 0) || strings.Join(f.Keys, ",") != strings.Join(tt.keys, ",") {
				t.Errorf("keys %v (enabled %v), want %v", f.Keys, f.Enabled(), tt.keys)
			}
			if f.DataDir != tt.dataDir || f.MaxBoots != tt.maxBoots {
				t.Errorf("firmware %+v, want data_dir %q, max_boots %d", f, tt.dataDir, tt.maxBoots)
			}
			if len(c.Update.Keys) > 0 && &c.Update.Keys[0] == &f.Keys[0] {
				t.Error("firmware.keys shares update.keys' array")
			}
		})
	}

	c := load(t, strings.Replace(good, "  threads: 2", "  threads: 2\n  backend: native\n  delegate: xnnpack\n  strict: true\n  library: lib/libtensorflowlite_c.so", 1))
	if m := c.Model; !m.Strict || m.Library != filepath.Join(dir, "lib/libtensorflowlite_c.so") || m.Delegate != "xnnpack" {
		t.Errorf("model %+v", m)
	}
	c = load(t, good)
	if m := c.Model; m.Strict || m.Library != "" {
		t.Errorf("model defaults %+v: strict off, library found at run time", m)
	}
}
