package link

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	connected       prometheus.Gauge
	connects        prometheus.Counter
	connectFailures prometheus.Counter
	decodeErrors    *prometheus.CounterVec
	dropped         *prometheus.CounterVec
	batches         prometheus.Counter
	eventsSent      prometheus.Counter
	eventsAcked     prometheus.Counter
	resends         *prometheus.CounterVec
	publishErrors   prometheus.Counter
	outboxErrors    prometheus.Counter
}

func newMetrics() *metrics {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "edgefleet_link_" + name, Help: help})
	}
	m := &metrics{
		connected:       prometheus.NewGauge(prometheus.GaugeOpts{Name: "edgefleet_link_connected", Help: "1 while an MQTT session with the fleet is up."}),
		connects:        c("connects_total", "MQTT sessions established."),
		connectFailures: c("connect_failures_total", "Failed connection attempts."),
		decodeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgefleet_link_decode_errors_total",
			Help: "Messages from the fleet that failed to decode or check, by kind (acks, commands, topic).",
		}, []string{"kind"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgefleet_link_dropped_total",
			Help: "Messages dropped by the link: acks or commands on a full queue, outbox events too large or corrupt.",
		}, []string{"kind"}),
		batches:       c("batches_sent_total", "Detection batches acknowledged by the broker (PUBACK)."),
		eventsSent:    c("events_sent_total", "Events in those batches, resends included."),
		eventsAcked:   c("events_acked_total", "Events acknowledged by the fleet."),
		resends:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgefleet_link_resends_total", Help: "Times the sender went back to the oldest unacknowledged event, by reason."}, []string{"reason"}),
		publishErrors: c("publish_errors_total", "Detection batch publishes that failed."),
		outboxErrors:  c("outbox_errors_total", "Outbox reads that failed."),
	}
	return m
}

func (m *metrics) register(r prometheus.Registerer) error {
	var errs []error
	for _, c := range []prometheus.Collector{m.connected, m.connects, m.connectFailures, m.decodeErrors, m.dropped,
		m.batches, m.eventsSent, m.eventsAcked, m.resends, m.publishErrors, m.outboxErrors} {
		errs = append(errs, r.Register(c))
	}
	return errors.Join(errs...)
}
