package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"edgefleet/agent/capture"
	"edgefleet/fleet/api"
	"edgefleet/models"
)

// SpoolStatus is what telemetry reports about the spool.
type SpoolStatus struct {
	Depth   uint64
	Oldest  time.Duration
	Dropped uint64
}

// TelemetryPublisher sends telemetry to the fleet (agent/link.Link).
type TelemetryPublisher interface {
	PublishTelemetry(ctx context.Context, t *api.Telemetry) error
}

// Options configure an Agent. Detector, Spool and Cameras are required.
type Options struct {
	DeviceID string
	Cameras  []Camera
	Detector models.Detector
	Spool    Spool
	// SpoolStatus, if set, feeds the spool's depth and age into telemetry.
	SpoolStatus func() SpoolStatus
	// SpoolDir is where disk free space is measured; "" skips it.
	SpoolDir string
	// Model, ModelVersion and Engine describe the detector for events,
	// telemetry and metrics.
	Model, ModelVersion string
	Engine              models.EngineInfo
	// ModelInfo, if set, names the model serving now (a detector whose
	// model is replaced at run time, agent/update.Serving); it is asked for
	// every Detect call, telemetry report and metrics scrape, and replaces
	// Model and ModelVersion there.
	ModelInfo func() (name, version string)
	// EngineInfo, if set, says what the engine serving now runs (it may
	// change with the model); it replaces Engine in telemetry and metrics.
	EngineInfo func() models.EngineInfo
	// Batch is the most frames per Detect call (see PipelineOptions.Batch).
	Batch int
	// Tap sees every served frame (see PipelineOptions.Tap).
	Tap func(camera string, f capture.Frame, dets []models.Detection, took time.Duration)
	// Telemetry, if set, receives api.Telemetry every TelemetryInterval
	// (default 10s).
	Telemetry         TelemetryPublisher
	TelemetryInterval time.Duration
	// Listener, if set, serves Handler (/healthz, /metrics, /snapshot/<camera>.jpg).
	Listener net.Listener
	// Registry collects the metrics served on /metrics; nil makes a new one.
	// Register other parts' collectors (spool, link) in it too.
	Registry *prometheus.Registry
	// Version is the agent version reported in telemetry.
	Version string
	Logger  *slog.Logger
}

// Agent runs the cameras, the shared detector and the spool writer, and
// serves the local endpoints and telemetry. Safe for concurrent use.
type Agent struct {
	opts    Options
	log     *slog.Logger
	pipe    *Pipeline
	reg     *prometheus.Registry
	started time.Time

	mu         sync.Mutex // guards the previous telemetry counters, for fps
	prevAt     time.Time
	prevFrames map[string]uint64
}

// New checks the options and builds an Agent; Run starts it.
func New(opts Options) (*Agent, error) {
	if err := api.ValidateID(opts.DeviceID); err != nil {
		return nil, fmt.Errorf("agent: device id: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.TelemetryInterval <= 0 {
		opts.TelemetryInterval = 10 * time.Second
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	m := NewMetrics(opts.Registry)
	for _, c := range opts.Cameras {
		m.camera(c.ID)
	}
	pipe, err := NewPipeline(PipelineOptions{
		Cameras: opts.Cameras, Detector: opts.Detector, Spool: opts.Spool,
		Model: opts.Model, ModelVersion: opts.ModelVersion, ModelInfo: opts.ModelInfo, Batch: opts.Batch,
		Tap: opts.Tap, Metrics: m, Logger: opts.Logger,
	})
	if err != nil {
		return nil, err
	}
	a := &Agent{opts: opts, log: opts.Logger, pipe: pipe, reg: opts.Registry, started: time.Now()}
	up := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "edgefleet_agent_camera_up", Help: "1 while the camera delivers frames.",
	}, []string{"camera"})
	info := prometheus.NewDesc("edgefleet_agent_info", "Always 1; labels say what runs.",
		[]string{"version", "model", "model_version", "engine", "delegate"}, nil)
	opts.Registry.MustRegister(&infoCollector{a: a, desc: info}, &upCollector{a: a, desc: up}, newCountsCollector(a))
	if opts.SpoolStatus != nil {
		opts.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "edgefleet_agent_spool_depth", Help: "Events in the spool not yet acknowledged by the fleet.",
		}, func() float64 { return float64(opts.SpoolStatus().Depth) }))
	}
	return a, nil
}

// infoCollector reports edgefleet_agent_info with the model serving at
// scrape time.
type infoCollector struct {
	a    *Agent
	desc *prometheus.Desc
}

func (c *infoCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }
func (c *infoCollector) Collect(ch chan<- prometheus.Metric) {
	o := c.a.opts
	name, version := c.a.Model()
	e := c.a.Engine()
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, 1, o.Version, name, version, e.Engine, e.Delegate)
}

// Engine says what the engine serving now runs.
func (a *Agent) Engine() models.EngineInfo {
	if a.opts.EngineInfo != nil {
		return a.opts.EngineInfo()
	}
	return a.opts.Engine
}

// Model returns the name and version of the model serving now.
func (a *Agent) Model() (name, version string) { return a.pipe.Model() }

// countsCollector reports the line and zone counters of tracking cameras
// at scrape time.
type countsCollector struct {
	a                      *Agent
	lines, present, enters *prometheus.Desc
}

func newCountsCollector(a *Agent) *countsCollector {
	return &countsCollector{a: a,
		lines: prometheus.NewDesc("edgefleet_agent_line_crossings_total", "Tracks that crossed a line, by direction and class.",
			[]string{"camera", "line", "direction", "label"}, nil),
		present: prometheus.NewDesc("edgefleet_agent_zone_present", "Tracks in a zone now, by class.",
			[]string{"camera", "zone", "label"}, nil),
		enters: prometheus.NewDesc("edgefleet_agent_zone_entries_total", "Tracks that entered a zone, by class.",
			[]string{"camera", "zone", "label"}, nil),
	}
}

func (c *countsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.lines
	ch <- c.present
	ch <- c.enters
}

func (c *countsCollector) Collect(ch chan<- prometheus.Metric) {
	for _, cc := range c.a.pipe.Counters() {
		for _, l := range cc.Lines {
			ch <- prometheus.MustNewConstMetric(c.lines, prometheus.CounterValue, float64(l.Count), cc.ID, l.Line, l.Direction, l.Label)
		}
		for _, z := range cc.Zones {
			ch <- prometheus.MustNewConstMetric(c.present, prometheus.GaugeValue, float64(z.Present), cc.ID, z.Zone, z.Label)
			ch <- prometheus.MustNewConstMetric(c.enters, prometheus.CounterValue, float64(z.Entered), cc.ID, z.Zone, z.Label)
		}
	}
}

// upCollector reports camera_up from the pipeline at scrape time.
type upCollector struct {
	a    *Agent
	desc *prometheus.GaugeVec
}

func (u *upCollector) Describe(ch chan<- *prometheus.Desc) { u.desc.Describe(ch) }
func (u *upCollector) Collect(ch chan<- prometheus.Metric) {
	for _, c := range u.a.pipe.Counters() {
		v := 0.0
		if c.Up {
			v = 1
		}
		u.desc.WithLabelValues(c.ID).Set(v)
	}
	u.desc.Collect(ch)
}

// Pipeline is the agent's capture and inference pipeline.
func (a *Agent) Pipeline() *Pipeline { return a.pipe }

// Run runs the agent until ctx is done (nil) or a part fails.
func (a *Agent) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	pipeDone := make(chan struct{})
	g.Go(func() error {
		defer close(pipeDone)
		if err := a.pipe.Run(gctx); err != nil {
			return fmt.Errorf("agent: pipeline: %w", err)
		}
		return nil
	})
	if a.opts.Telemetry != nil {
		g.Go(func() error { a.telemetryLoop(gctx); return nil })
	}
	g.Go(func() error { a.watchCameras(gctx, time.Second); return nil })
	if l := a.opts.Listener; l != nil {
		srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 5 * time.Second}
		g.Go(func() error {
			<-gctx.Done()
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			return srv.Shutdown(sctx)
		})
		g.Go(func() error {
			if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("agent: http: %w", err)
			}
			return nil
		})
	}
	name, version := a.Model()
	a.log.Info("agent running", "device_id", a.opts.DeviceID, "cameras", len(a.opts.Cameras),
		"model", name, "model_version", version, "engine", a.Engine().Engine)
	err := g.Wait()
	a.log.Info("agent stopped", "events", a.pipe.Events(), "lost", a.pipe.Lost())
	return err
}

// watchCameras logs when a camera goes down or comes back (sources that
// reconnect on their own report it only through their status).
func (a *Agent) watchCameras(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	up := map[string]bool{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, c := range a.pipe.Counters() {
			was, seen := up[c.ID]
			up[c.ID] = c.Up
			switch {
			case c.Up && seen && !was:
				a.log.Info("camera up", "camera_id", c.ID)
			case !c.Up && (was || !seen):
				a.log.Warn("camera down", "camera_id", c.ID, "err", c.Err)
			}
		}
	}
}

func (a *Agent) telemetryLoop(ctx context.Context) {
	t := time.NewTicker(a.opts.TelemetryInterval)
	defer t.Stop()
	failed := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		tm := a.Telemetry()
		pctx, cancel := context.WithTimeout(ctx, a.opts.TelemetryInterval)
		err := a.opts.Telemetry.PublishTelemetry(pctx, &tm)
		cancel()
		if err != nil && !failed {
			a.log.Warn("telemetry not sent", "err", err)
		}
		failed = err != nil
	}
}

// Telemetry builds the current telemetry message; per-camera fps is
// measured since the previous call.
func (a *Agent) Telemetry() api.Telemetry {
	now := time.Now()
	p50, p99 := a.pipe.InferenceQuantiles()
	name, version := a.Model()
	eng := a.Engine()
	t := api.Telemetry{
		DeviceID:      a.opts.DeviceID,
		Time:          now.UnixMilli(),
		UptimeS:       now.Sub(a.started).Seconds(),
		AgentVersion:  a.opts.Version,
		Model:         name,
		ModelVersion:  version,
		Engine:        eng.Engine,
		Delegate:      eng.Delegate,
		EngineVersion: eng.Version,
		InferP50Ms:    float64(p50.Microseconds()) / 1000,
		InferP99Ms:    float64(p99.Microseconds()) / 1000,
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	since := now.Sub(a.prevAt)
	if a.prevAt.IsZero() {
		since = now.Sub(a.started)
	}
	frames := map[string]uint64{}
	for _, c := range a.pipe.Counters() {
		fps := 0.0
		if since > 0 {
			fps = float64(c.Frames-a.prevFrames[c.ID]) / since.Seconds()
		}
		frames[c.ID] = c.Frames
		t.Cameras = append(t.Cameras, api.CameraStats{
			ID: c.ID, Up: c.Up, FPS: math.Round(fps*100) / 100, Dropped: c.Dropped, Error: c.Err,
			Lines: c.Lines, Zones: c.Zones,
		})
	}
	a.prevAt, a.prevFrames = now, frames
	if a.opts.SpoolStatus != nil {
		st := a.opts.SpoolStatus()
		t.SpoolDepth, t.SpoolOldestS, t.SpoolDropped = st.Depth, st.Oldest.Seconds(), st.Dropped
	}
	if a.opts.SpoolDir != "" {
		var fs syscall.Statfs_t
		if err := syscall.Statfs(a.opts.SpoolDir, &fs); err == nil {
			t.DiskFreeBytes = fs.Bavail * uint64(fs.Bsize)
		}
	}
	return t
}

// Handler serves /healthz, /metrics and /snapshot/<camera>.jpg.
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", a.healthz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /snapshot/{file}", a.snapshot)
	return mux
}

// healthz answers 200 while at least one camera is up, else 503, with the
// cameras' state as JSON.
func (a *Agent) healthz(w http.ResponseWriter, r *http.Request) {
	type cam struct {
		ID      string `json:"id"`
		Up      bool   `json:"up"`
		Frames  uint64 `json:"frames"`
		Dropped uint64 `json:"dropped"`
		Error   string `json:"error,omitempty"`
	}
	body := struct {
		Status   string  `json:"status"`
		DeviceID string  `json:"device_id"`
		UptimeS  float64 `json:"uptime_s"`
		Events   uint64  `json:"events"`
		Cameras  []cam   `json:"cameras"`
	}{Status: "ok", DeviceID: a.opts.DeviceID, UptimeS: time.Since(a.started).Seconds(), Events: a.pipe.Events()}
	anyUp := false
	for _, c := range a.pipe.Counters() {
		anyUp = anyUp || c.Up
		body.Cameras = append(body.Cameras, cam{c.ID, c.Up, c.Frames, c.Dropped, c.Err})
	}
	code := http.StatusOK
	if !anyUp {
		body.Status, code = "no camera up", http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(body)
}

func (a *Agent) snapshot(w http.ResponseWriter, r *http.Request) {
	id, ok := strings.CutSuffix(r.PathValue("file"), ".jpg")
	if !ok {
		http.NotFound(w, r)
		return
	}
	img, captured, err := a.annotated(id)
	if err != nil {
		http.Error(w, fmt.Sprintf("no frame from camera %q yet", id), http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "image/jpeg")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Capture-Time", captured.UTC().Format(time.RFC3339Nano))
	if err := jpeg.Encode(w, img, &jpeg.Options{Quality: 85}); err != nil {
		a.log.Debug("snapshot write", "camera_id", id, "err", err)
	}
}

// drawPolygon outlines a normalized polygon on img.
func drawPolygon(img *image.RGBA, poly [][2]float64, c color.RGBA) {
	if len(poly) < 3 {
		return
	}
	w, h := float64(img.Rect.Dx()-1), float64(img.Rect.Dy()-1)
	for i := range poly {
		p, q := poly[i], poly[(i+1)%len(poly)]
		x0, y0, x1, y1 := p[0]*w, p[1]*h, q[0]*w, q[1]*h
		steps := int(math.Max(math.Abs(x1-x0), math.Abs(y1-y0))) + 1
		for s := 0; s <= steps; s++ {
			t := float64(s) / float64(steps)
			x, y := int(x0+(x1-x0)*t), int(y0+(y1-y0)*t)
			for dx := -1; dx <= 1; dx++ {
				for dy := -1; dy <= 1; dy++ {
					if pt := image.Pt(x+dx, y+dy); pt.In(img.Rect) {
						img.SetRGBA(pt.X, pt.Y, c)
					}
				}
			}
		}
	}
}
