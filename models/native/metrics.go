package native

import "github.com/prometheus/client_golang/prometheus"

// DelegateFallbacks counts delegates that could not be loaded or applied and
// left a model on the CPU path, by delegate and stage ("load" or "apply").
// It is registered with prometheus.DefaultRegisterer.
var DelegateFallbacks = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "edgefleet_native_delegate_fallbacks_total",
	Help: "Native TFLite delegates that failed to load or apply; the model ran on the CPU instead.",
}, []string{"delegate", "stage"})

func init() {
	prometheus.MustRegister(DelegateFallbacks)
}
