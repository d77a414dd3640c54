package rollout

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	commands       *prometheus.CounterVec // by command kind
	dispatchErrors prometheus.Counter
	finished       *prometheus.CounterVec // jobs by final state
	rollouts       *prometheus.GaugeVec   // by state
	shadow         *prometheus.CounterVec // final shadow reports by outcome
	stale          prometheus.Counter     // job reports ignored: an earlier phase than the job's
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgefleet_rollout_commands_total",
			Help: "Commands the rollout engine sent to devices, by kind."}, []string{"kind"}),
		dispatchErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "edgefleet_rollout_dispatch_errors_total",
			Help: "Commands that could not be sent (retried at the next step)."}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgefleet_rollout_jobs_finished_total",
			Help: "Rollout jobs that ended, by final state."}, []string{"state"}),
		rollouts: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "edgefleet_rollouts",
			Help: "Rollouts by state."}, []string{"state"}),
		shadow: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgefleet_rollout_shadow_total",
			Help: "Final shadow-phase reports judged against the rollout's min agreement, by outcome (passed, failed)."}, []string{"outcome"}),
		stale: prometheus.NewCounter(prometheus.CounterOpts{Name: "edgefleet_rollout_stale_reports_total",
			Help: "Job reports ignored because they came after a report of a later phase (reports delivered out of order)."}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.commands, m.dispatchErrors, m.finished, m.rollouts, m.shadow, m.stale} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *metrics) setRollouts(rs map[string]*Rollout) {
	counts := map[State]int{}
	for _, r := range rs {
		counts[r.State]++
	}
	for _, st := range []State{StatePending, StateCanary, StateWave, StatePaused, StateAborted, StateCompleted, StateRolledBack} {
		m.rollouts.WithLabelValues(string(st)).Set(float64(counts[st]))
	}
}
