package agent

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"edgefleet/models"
)

// Metrics are the agent's Prometheus metrics (edgefleet_agent_*). A nil
// *Metrics records nothing. Safe for concurrent use.
type Metrics struct {
	frames      *prometheus.CounterVec
	dropped     *prometheus.CounterVec
	detections  *prometheus.CounterVec
	filtered    *prometheus.CounterVec
	inference   prometheus.Histogram
	batch       prometheus.Histogram
	inferErrors prometheus.Counter
	lostEvents  prometheus.Counter
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		frames: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgefleet_agent_frames_total", Help: "Frames captured, per camera.",
		}, []string{"camera"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgefleet_agent_frames_dropped_total", Help: "Frames dropped unprocessed because inference was busy, per camera.",
		}, []string{"camera"}),
		detections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgefleet_agent_detections_total", Help: "Detections that passed the camera's filter and became events.",
		}, []string{"camera", "label"}),
		filtered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgefleet_agent_detections_filtered_total", Help: "Detections dropped by the camera's region, class or score filter.",
		}, []string{"camera"}),
		inference: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "edgefleet_agent_inference_seconds",
			Help:    "Time of one Detect call (one batch of frames).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "edgefleet_agent_inference_batch_frames", Help: "Frames per Detect call.",
			Buckets: []float64{1, 2, 4, 8, 16},
		}),
		inferErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgefleet_agent_inference_errors_total", Help: "Detect calls that failed.",
		}),
		lostEvents: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgefleet_agent_events_lost_total", Help: "Events the spool refused to append.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.frames, m.dropped, m.detections, m.filtered, m.inference, m.batch, m.inferErrors, m.lostEvents)
	}
	return m
}

func (m *Metrics) frame(cam string) {
	if m != nil {
		m.frames.WithLabelValues(cam).Inc()
	}
}

func (m *Metrics) drop(cam string) {
	if m != nil {
		m.dropped.WithLabelValues(cam).Inc()
	}
}

// camera makes a camera's series exist (at zero) from the start.
func (m *Metrics) camera(cam string) {
	if m != nil {
		m.frames.WithLabelValues(cam)
		m.dropped.WithLabelValues(cam)
		m.filtered.WithLabelValues(cam)
	}
}

func (m *Metrics) infer(d time.Duration, frames int) {
	if m != nil {
		m.inference.Observe(d.Seconds())
		m.batch.Observe(float64(frames))
	}
}

func (m *Metrics) inferError() {
	if m != nil {
		m.inferErrors.Inc()
	}
}

func (m *Metrics) lost(n int) {
	if m != nil {
		m.lostEvents.Add(float64(n))
	}
}

func (m *Metrics) detected(cam string, kept []models.Detection, filtered int) {
	if m == nil {
		return
	}
	for _, d := range kept {
		m.detections.WithLabelValues(cam, d.Label).Inc()
	}
	if filtered > 0 {
		m.filtered.WithLabelValues(cam).Add(float64(filtered))
	}
}
