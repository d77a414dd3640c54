package server

import (
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"edgefleet/fleet/store"
)

// Filter selects records for a live feed subscriber; zero fields match all.
type Filter struct {
	Device string
	Label  string
}

func (f Filter) match(r *store.Record) bool {
	return (f.Device == "" || f.Device == r.Device) && (f.Label == "" || strings.EqualFold(f.Label, r.Label))
}

// Sub is one live feed subscriber.
type Sub struct {
	C      chan store.Record
	filter Filter
}

// Hub fans stored detections out to live feed subscribers. A subscriber
// that does not keep up loses records (counted) rather than slowing ingest.
// It is safe for concurrent use.
type Hub struct {
	dropped prometheus.Counter

	mu   sync.RWMutex
	subs map[*Sub]struct{}
}

// NewHub returns an empty hub.
func NewHub() *Hub {
	return &Hub{
		subs:    map[*Sub]struct{}{},
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "edgefleet_live_feed_dropped_total", Help: "Detections not sent to a slow live feed client."}),
	}
}

// Subscribe adds a subscriber.
func (h *Hub) Subscribe(f Filter) *Sub {
	s := &Sub{C: make(chan store.Record, 1024), filter: f}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	return s
}

// Unsubscribe removes a subscriber.
func (h *Hub) Unsubscribe(s *Sub) {
	h.mu.Lock()
	delete(h.subs, s)
	h.mu.Unlock()
}

// Watched reports whether the hub has subscribers.
func (h *Hub) Watched() bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.subs) > 0
}

// Publish offers records to every matching subscriber without blocking.
func (h *Hub) Publish(recs []store.Record) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for s := range h.subs {
		for i := range recs {
			if !s.filter.match(&recs[i]) {
				continue
			}
			select {
			case s.C <- recs[i]:
			default:
				h.dropped.Inc()
			}
		}
	}
}
