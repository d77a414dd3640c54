package broker

import (
	"errors"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	authRefused *prometheus.CounterVec
	aclRefused  *prometheus.CounterVec
	tooLarge    prometheus.Counter
	all         []prometheus.Collector
}

func newMetrics(srv *mqtt.Server) *metrics {
	m := &metrics{
		authRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgefleet_broker_auth_refused_total",
			Help: "Connections refused at login, by reason (credentials, client_id).",
		}, []string{"reason"}),
		aclRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgefleet_broker_acl_refused_total",
			Help: "Publishes, subscriptions and last wills refused by the topic ACL, by operation.",
		}, []string{"op"}),
		tooLarge: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgefleet_broker_packets_too_large_total",
			Help: "Clients disconnected for sending a packet above the size limit.",
		}),
	}
	info := srv.Info
	m.all = []prometheus.Collector{
		m.authRefused, m.aclRefused, m.tooLarge,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "edgefleet_broker_clients_connected",
			Help: "MQTT clients currently connected.",
		}, func() float64 { return float64(atomic.LoadInt64(&info.ClientsConnected)) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "edgefleet_broker_messages_received_total",
			Help: "PUBLISH messages received by the broker.",
		}, func() float64 { return float64(atomic.LoadInt64(&info.MessagesReceived)) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "edgefleet_broker_messages_sent_total",
			Help: "PUBLISH messages sent by the broker to clients.",
		}, func() float64 { return float64(atomic.LoadInt64(&info.MessagesSent)) }),
	}
	// Make the labelled series visible at zero.
	m.authRefused.WithLabelValues("credentials")
	m.authRefused.WithLabelValues("client_id")
	for _, op := range []string{"publish", "subscribe", "will"} {
		m.aclRefused.WithLabelValues(op)
	}
	return m
}

func (m *metrics) register(r prometheus.Registerer) error {
	var errs []error
	for _, c := range m.all {
		errs = append(errs, r.Register(c))
	}
	return errors.Join(errs...)
}
