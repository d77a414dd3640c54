// Package server is fleetd's HTTP face: the REST JSON API for operators
// (devices, telemetry history, detections query/count/CSV export), a
// server-sent-events feed of live detections, the model registry and
// rollout routes with the artifact downloads (ota.go, when Options.OTA is
// set), the embedded web console, /metrics and /healthz, and the OpenAPI
// description at /api/openapi.json.
//
// Every /api/v1 route needs an operator bearer token (Authorization: Bearer
// <token>) whose role allows the route (auth.go: viewers read, operators
// also push and run rollouts, admins also manage tokens, devices and
// keys). A token in the URL (?access_token=, ?token=) is refused with 401.
// The live feed also takes ?ticket=, a single-use ticket from POST
// /api/v1/live/ticket valid 30 s, because browsers cannot set headers on
// EventSource; a ticket is not a token. Every call that changes something
// is recorded in the audit log (GET /api/v1/audit) with who, what, when
// and the outcome. Errors are JSON: {"error": "...", "status": N}: 401 for
// a missing, unknown or misplaced token, 403 naming the role needed.
package server

import (
	"context"
	"embed"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"edgefleet/fleet/api"
	"edgefleet/fleet/api/rest"
	"edgefleet/fleet/audit"
	"edgefleet/fleet/operator"
	"edgefleet/fleet/store"
)

//go:embed console
var consoleFS embed.FS

// Options configures New. Store and Registry are required.
type Options struct {
	Store    Detections
	Registry Devices
	// Events serves the analytics routes (events.go); nil means Store when
	// it implements Events, else those routes answer 503.
	Events Events
	// Operators authenticates operator tokens and keeps those the token
	// routes make; nil means the fixed Tokens in front of an in-memory store.
	Operators Operators
	// Tokens maps fixed operator bearer tokens to operator names, all
	// admins; used when Operators is nil (tests, small setups).
	Tokens map[string]string
	// Audit records operator actions; nil means an in-memory log.
	Audit AuditLog
	// Tickets issues and redeems the live feed's tickets; nil means in
	// this process's memory (replicas share operator.PostgresTickets).
	Tickets operator.TicketOffice
	// Gatherer serves /metrics; nil means prometheus.DefaultGatherer.
	Gatherer prometheus.Gatherer
	// Registerer receives the server's own metrics; nil means none.
	Registerer prometheus.Registerer
	// Ready reports whether fleetd is healthy, for /healthz; nil means always.
	Ready  func(ctx context.Context) error
	Logger *slog.Logger
	// MaxExport caps the rows of one CSV export; default 1,000,000.
	MaxExport int
	// OTA enables the model registry and rollout routes (ota.go); nil leaves them out.
	OTA *OTA
	// Snapshots asks devices for camera snapshots (snapshot.go); nil
	// answers that route with 503.
	Snapshots Snapshots
	// Provisioned lists the devices fleetd's configuration knows (password
	// logins); those the registry has not seen are listed with status never.
	Provisioned []string

	// Extra are routes other parts of fleetd mount (extra.go).
	Extra []Route
}

// Server is an http.Handler; it is safe for concurrent use.
type Server struct {
	opt Options
	mux *http.ServeMux
	hub *Hub
	ops Operators
	log *slog.Logger

	auditLog   AuditLog
	tickets    operator.TicketOffice
	authRoutes []string // patterns of the routes that need a token

	requests *prometheus.CounterVec
}

// New returns a Server.
func New(opt Options) (*Server, error) {
	if opt.Store == nil || opt.Registry == nil {
		return nil, errors.New("server: new: Store and Registry are required")
	}
	if opt.Gatherer == nil {
		opt.Gatherer = prometheus.DefaultGatherer
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.MaxExport <= 0 {
		opt.MaxExport = 1_000_000
	}
	if ev, ok := opt.Store.(Events); ok && opt.Events == nil {
		opt.Events = ev
	}
	s := &Server{opt: opt, mux: http.NewServeMux(), hub: NewHub(), log: opt.Logger,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgefleet_http_requests_total", Help: "HTTP requests by route and status."}, []string{"route", "code"}),
	}
	s.ops, s.auditLog, s.tickets = opt.Operators, opt.Audit, opt.Tickets
	if s.tickets == nil {
		s.tickets = operator.NewTickets(operator.TicketTTL, operator.Options{})
	}
	if s.ops == nil {
		var fixed []operator.Fixed
		for tok, name := range opt.Tokens {
			fixed = append(fixed, operator.Fixed{Name: name, Role: operator.Admin, Token: tok})
		}
		ops, err := operator.WithFixed(operator.NewMem(operator.Options{}), operator.Options{}, fixed...)
		if err != nil {
			return nil, fmt.Errorf("server: new: Tokens: %w", err)
		}
		s.ops = ops
	}
	if s.auditLog == nil {
		s.auditLog = audit.NewMem(audit.Options{})
	}
	if opt.Registerer != nil {
		if err := opt.Registerer.Register(s.requests); err != nil {
			return nil, fmt.Errorf("server: register metrics: %w", err)
		}
		if err := opt.Registerer.Register(s.hub.dropped); err != nil {
			return nil, fmt.Errorf("server: register metrics: %w", err)
		}
	}
	s.routes()
	return s, nil
}

// Hub returns the live detection feed; ingest publishes into it.
func (s *Server) Hub() *Hub { return s.hub }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, s.bodyLimit(r))
	s.mux.ServeHTTP(w, r)
}

func (s *Server) routes() {
	static, _ := fs.Sub(consoleFS, "console")
	files := http.FileServerFS(static)
	s.handle("GET /{$}", false, files.ServeHTTP)
	s.handle("GET /console/", false, http.StripPrefix("/console/", files).ServeHTTP)
	s.handle("GET /api/openapi.json", false, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		b, _ := fs.ReadFile(static, "openapi.json")
		w.Write(b)
	})
	s.handle("GET /healthz", false, s.healthz)
	s.handle("GET /metrics", false, promhttp.HandlerFor(s.opt.Gatherer, promhttp.HandlerOpts{}).ServeHTTP)
	s.handle("GET /api/v1/fleet", true, s.fleet)
	s.deviceRoutes() // devices.go
	s.handle("GET /api/v1/devices/{id}/telemetry", true, s.telemetry)

	s.handle("GET /api/v1/devices/{id}/cameras/{camera}/snapshot", true, s.snapshot) // snapshot.go

	s.handle("GET /api/v1/detections", true, s.detections)
	s.handle("GET /api/v1/detections/count", true, s.count)
	s.handle("GET /api/v1/detections/export", true, s.export)
	s.handle("GET /api/v1/detections/stream", true, s.stream)
	s.eventRoutes() // events.go
	s.otaRoutes()
	s.identityRoutes()
	s.mountExtra()
	s.handle("/api/", false, func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no route %s %s", r.Method, r.URL.Path)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, format string, args ...any) {
	writeJSON(w, code, rest.Error{Error: fmt.Sprintf(format, args...), Status: code})
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	if s.opt.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.opt.Ready(ctx); err != nil {
			writeError(w, http.StatusServiceUnavailable, "not ready: %v", err)
			return
		}
	}
	writeJSON(w, http.StatusOK, rest.Health{Status: "ok"})
}

func (s *Server) fleet(w http.ResponseWriter, r *http.Request) {
	v := rest.Fleet{Groups: restGroups(s.opt.Registry.Summarize())}
	for _, g := range v.Groups {
		v.Devices += g.Online + g.Offline
		v.Online += g.Online
		v.Unhealthy += g.Unhealthy
		v.DetectionsPerMin += g.DetectionsPerMin
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) telemetry(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	since, err := parseTime(r.URL.Query().Get("since"), time.Now())
	if err != nil {
		writeError(w, http.StatusBadRequest, "since: %v", err)
		return
	}
	h, ok := s.opt.Registry.History(id, since)
	if !ok {
		writeError(w, http.StatusNotFound, "device %q not found", id)
		return
	}
	writeJSON(w, http.StatusOK, rest.Telemetry{DeviceID: id, Points: restPoints(h)})
}

// parseTime accepts RFC 3339, unix milliseconds, or a negative duration
// relative to now ("-1h"). Empty means zero.
func parseTime(v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if strings.HasPrefix(v, "-") {
		d, err := time.ParseDuration(v)
		if err != nil {
			return time.Time{}, fmt.Errorf("%q is not a duration like -1h", v)
		}
		return now.Add(d), nil
	}
	if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.UnixMilli(ms), nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not RFC 3339, unix milliseconds or -duration", v)
	}
	return t, nil
}

func parseQuery(r *http.Request) (store.Query, error) {
	v := r.URL.Query()
	now := time.Now()
	q := store.Query{Device: v.Get("device"), Camera: v.Get("camera"), Label: v.Get("label"), Cursor: v.Get("cursor")}
	for _, id := range []struct{ k, v string }{{"device", q.Device}, {"camera", q.Camera}} {
		if id.v != "" {
			if err := api.ValidateID(id.v); err != nil {
				return q, fmt.Errorf("%s: %v", id.k, err)
			}
		}
	}
	var err error
	if q.From, err = parseTime(v.Get("from"), now); err != nil {
		return q, fmt.Errorf("from: %v", err)
	}
	if q.To, err = parseTime(v.Get("to"), now); err != nil {
		return q, fmt.Errorf("to: %v", err)
	}
	if l := v.Get("limit"); l != "" {
		if q.Limit, err = strconv.Atoi(l); err != nil || q.Limit < 1 || q.Limit > store.MaxLimit {
			return q, fmt.Errorf("limit: %q is not in 1..%d", l, store.MaxLimit)
		}
	}
	return q, nil
}

func (s *Server) storeError(w http.ResponseWriter, err error) {
	if errors.Is(err, store.ErrBadCursor) || errors.Is(err, store.ErrBadQuery) {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	s.log.Error("store", "err", err)
	writeError(w, http.StatusInternalServerError, "store: %v", err)
}

func (s *Server) detections(w http.ResponseWriter, r *http.Request) {
	q, err := parseQuery(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	p, err := s.opt.Store.Query(r.Context(), q)
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, restPage(p))
}

func (s *Server) count(w http.ResponseWriter, r *http.Request) {
	q, err := parseQuery(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	if q.To.IsZero() {
		q.To = time.Now()
	}
	if q.From.IsZero() {
		q.From = q.To.Add(-time.Hour)
	}
	width := time.Minute
	if b := r.URL.Query().Get("bucket"); b != "" {
		if width, err = time.ParseDuration(b); err != nil || width <= 0 {
			writeError(w, http.StatusBadRequest, "bucket: %q is not a positive duration like 1m", b)
			return
		}
	}
	bs, err := s.opt.Store.Count(r.Context(), q, width)
	if err != nil {
		s.storeError(w, err)
		return
	}
	out := rest.Counts{From: q.From.UTC(), To: q.To.UTC(), Bucket: width.String(), Buckets: make([]rest.Bucket, len(bs))}
	for i, b := range bs {
		out.Buckets[i] = rest.Bucket{Start: b.Start, Count: b.Count}
		out.Total += b.Count
	}
	writeJSON(w, http.StatusOK, out)
}

// CSVHeader is the first row of a CSV export.
var CSVHeader = rest.CSVHeader

// CSVRow formats one record as a CSV export row.
func CSVRow(r store.Record) []string {
	f := func(v float32) string { return strconv.FormatFloat(float64(v), 'f', -1, 32) }
	return []string{r.Device, strconv.FormatUint(r.Seq, 10), r.CameraID, time.UnixMicro(r.Time).UTC().Format(time.RFC3339Nano),
		r.Label, strconv.Itoa(r.ClassID), f(r.Score), f(r.Box[0]), f(r.Box[1]), f(r.Box[2]), f(r.Box[3]), r.Model, r.ModelVersion}
}

func (s *Server) export(w http.ResponseWriter, r *http.Request) {
	if f := r.URL.Query().Get("format"); f != "" && f != "csv" {
		writeError(w, http.StatusBadRequest, "format: %q is not supported (csv)", f)
		return
	}
	q, err := parseQuery(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	q.Limit = store.MaxLimit
	p, err := s.opt.Store.Query(r.Context(), q)
	if err != nil {
		s.storeError(w, err)
		return
	}
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(10 * time.Minute))
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="detections.csv"`)
	cw := csv.NewWriter(w)
	cw.Write(CSVHeader)
	n := 0
	for {
		for _, rec := range p.Records {
			cw.Write(CSVRow(rec))
			n++
		}
		if p.Next == "" || n >= s.opt.MaxExport {
			break
		}
		q.Cursor = p.Next
		if p, err = s.opt.Store.Query(r.Context(), q); err != nil {
			s.log.Warn("export interrupted", "rows", n, "err", err)
			break
		}
	}
	cw.Flush()
}

func (s *Server) stream(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := Filter{Device: q.Get("device"), Label: q.Get("label")}
	rc := http.NewResponseController(w)
	rc.SetWriteDeadline(time.Time{}) // a feed runs until the client leaves
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	sub := s.hub.Subscribe(f)
	defer s.hub.Unsubscribe(sub)
	fmt.Fprint(w, ": edgefleet live detections\n\n")
	rc.Flush()
	tick := time.NewTicker(15 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
			if _, err := fmt.Fprint(w, ": keepalive\n\n"); err != nil {
				return
			}
		case rec := <-sub.C:
			b, _ := json.Marshal(rec)
			if _, err := fmt.Fprintf(w, "event: detection\ndata: %s\n\n", b); err != nil {
				return
			}
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}
