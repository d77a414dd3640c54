package spool

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the spool's Prometheus collectors; the caller registers them
// (Collectors), so several spools in one test binary do not collide.
type metrics struct {
	appended    prometheus.Counter
	acked       prometheus.Counter
	dropped     *prometheus.CounterVec
	commits     prometheus.Counter
	compactions prometheus.Counter
	commitSec   prometheus.Histogram
	batch       prometheus.Histogram
	gauges      []prometheus.Collector
}

func newMetrics(s *Spool) *metrics {
	m := &metrics{
		appended: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgefleet_spool_appended_events_total", Help: "Events appended to the spool.",
		}),
		acked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgefleet_spool_acked_events_total", Help: "Events deleted from the spool because the fleet acknowledged them.",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgefleet_spool_dropped_events_total", Help: "Events dropped unacknowledged, oldest first, by reason (cap, age, full).",
		}, []string{"reason"}),
		commits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgefleet_spool_commits_total", Help: "Spool transactions committed (each one fsync).",
		}),
		compactions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgefleet_spool_compactions_total", Help: "Spool file compactions.",
		}),
		commitSec: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "edgefleet_spool_commit_seconds", Help: "Time to commit one spool batch, fsync included.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "edgefleet_spool_batch_events", Help: "Events appended per spool commit.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8),
		}),
	}
	// Pre-create the reason series so dashboards see zeros.
	for _, r := range []string{"cap", "age", "full"} {
		m.dropped.WithLabelValues(r)
	}
	gauge := func(name, help string, f func(Stats) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return f(s.Stats()) })
	}
	m.gauges = []prometheus.Collector{
		gauge("edgefleet_spool_depth_events", "Events in the spool, not yet acknowledged.", func(st Stats) float64 { return float64(st.Depth) }),
		gauge("edgefleet_spool_bytes", "Bytes of events in the spool.", func(st Stats) float64 { return float64(st.Bytes) }),
		gauge("edgefleet_spool_budget_bytes", "Byte budget of the spool's events.", func(st Stats) float64 { return float64(st.BudgetBytes) }),
		gauge("edgefleet_spool_file_bytes", "Size of the spool file on disk.", func(st Stats) float64 { return float64(st.FileBytes) }),
		gauge("edgefleet_spool_oldest_age_seconds", "Age of the oldest event in the spool.", func(st Stats) float64 { return st.OldestAge.Seconds() }),
	}
	return m
}

func (m *metrics) observe(o outcome, took time.Duration) {
	if o.appended > 0 {
		m.appended.Add(float64(o.appended))
		m.batch.Observe(float64(o.appended))
	}
	if o.acked > 0 {
		m.acked.Add(float64(o.acked))
	}
	if o.dropCap > 0 {
		m.dropped.WithLabelValues("cap").Add(float64(o.dropCap))
	}
	if o.dropAge > 0 {
		m.dropped.WithLabelValues("age").Add(float64(o.dropAge))
	}
	if o.dropF > 0 {
		m.dropped.WithLabelValues("full").Add(float64(o.dropF))
	}
	if took > 0 {
		m.commits.Inc()
		m.commitSec.Observe(took.Seconds())
	}
}

// Collectors returns the spool's Prometheus collectors, for the caller to
// register (e.g. prometheus.MustRegister(s.Collectors()...)).
func (s *Spool) Collectors() []prometheus.Collector {
	return append([]prometheus.Collector{
		s.m.appended, s.m.acked, s.m.dropped, s.m.commits, s.m.compactions, s.m.commitSec, s.m.batch,
	}, s.m.gauges...)
}
