package server

import (
	"encoding/csv"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"edgefleet/fleet/api"
	"edgefleet/fleet/api/rest"
	"edgefleet/fleet/store"
)

// The analytics routes of fleet/api/rest/events.go: stored analytics events,
// their snapshots, and line crossing counts.

func (s *Server) eventRoutes() {
	s.handle("GET /api/v1/events", true, s.events)
	s.handle("GET /api/v1/events/{device}/{seq}/snapshot", true, s.eventSnapshot)
	s.handle("GET /api/v1/counts", true, s.counts)
}

// eventTypes are the values the type parameter takes.
var eventTypes = []string{api.TypeTrackEnd, api.TypeLineCross, api.TypeZoneEnter, api.TypeZoneExit}

// parseEventQuery reads the query of GET /api/v1/events; errors name the parameter.
func parseEventQuery(r *http.Request) (store.EventQuery, error) {
	dq, err := parseQuery(r) // device, camera, label, from, to, limit, cursor
	if err != nil {
		return store.EventQuery{}, err
	}
	v := r.URL.Query()
	q := store.EventQuery{Device: dq.Device, Camera: dq.Camera, Label: dq.Label, From: dq.From, To: dq.To,
		Limit: dq.Limit, Cursor: dq.Cursor, Type: v.Get("type"), Line: v.Get("line"), Zone: v.Get("zone")}
	if q.Type != "" && !slices.Contains(eventTypes, q.Type) {
		return q, fmt.Errorf("type: %q is not one of %v", q.Type, eventTypes)
	}
	for _, id := range []struct{ k, v string }{{"line", q.Line}, {"zone", q.Zone}} {
		if id.v != "" {
			if err := api.ValidateID(id.v); err != nil {
				return q, fmt.Errorf("%s: %v", id.k, err)
			}
		}
	}
	return q, nil
}

// checkFormat reads format=: "" (JSON) or "csv".
func checkFormat(r *http.Request) (csvOut bool, err error) {
	switch f := r.URL.Query().Get("format"); f {
	case "", "json":
		return false, nil
	case "csv":
		return true, nil
	default:
		return false, fmt.Errorf("format: %q is not supported (json or csv)", f)
	}
}

// eventsPreamble checks that events are stored and reads format=; false
// means it has answered.
func (s *Server) eventsPreamble(w http.ResponseWriter, r *http.Request) (csvOut, ok bool) {
	if !s.eventsStore(w) {
		return false, false
	}
	csvOut, err := checkFormat(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return false, false
	}
	return csvOut, true
}

func (s *Server) eventsStore(w http.ResponseWriter) bool {
	if s.opt.Events == nil {
		writeError(w, http.StatusServiceUnavailable, "this fleetd does not store analytics events")
		return false
	}
	return true
}

func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	csvOut, ok := s.eventsPreamble(w, r)
	if !ok {
		return
	}
	q, err := parseEventQuery(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	if !csvOut {
		p, err := s.opt.Events.QueryEvents(r.Context(), q)
		if err != nil {
			s.storeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, restEventPage(p))
		return
	}
	s.exportEvents(w, r, q)
}

// exportEvents writes every matching event (up to MaxExport) as CSV.
func (s *Server) exportEvents(w http.ResponseWriter, r *http.Request, q store.EventQuery) {
	q.Limit = store.MaxLimit
	p, err := s.opt.Events.QueryEvents(r.Context(), q)
	if err != nil {
		s.storeError(w, err)
		return
	}
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(10 * time.Minute))
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="events.csv"`)
	cw := csv.NewWriter(w)
	cw.Write(rest.EventCSVHeader)
	n := 0
	for {
		for _, e := range p.Events {
			cw.Write(EventCSVRow(e))
			n++
		}
		if p.Next == "" || n >= s.opt.MaxExport {
			break
		}
		q.Cursor = p.Next
		if p, err = s.opt.Events.QueryEvents(r.Context(), q); err != nil {
			s.log.Warn("events export interrupted", "rows", n, "err", err)
			break
		}
	}
	cw.Flush()
}

// EventCSVRow formats one analytics event as a row under rest.EventCSVHeader.
func EventCSVRow(e store.EventRecord) []string {
	us := func(t int64) string { return time.UnixMicro(t).UTC().Format(time.RFC3339Nano) }
	row := []string{e.Device, strconv.FormatUint(e.Seq, 10), e.CameraID, us(e.Time), e.Type, e.Label,
		strconv.FormatFloat(float64(e.Score), 'f', -1, 32), "", "", "", "", "", "", "", ""}
	if t := e.Track; t != nil {
		row[7], row[12], row[13], row[14] = strconv.FormatUint(t.ID, 10), us(t.FirstUs), us(t.LastUs), strconv.Itoa(t.Frames)
	}
	if l := e.Line; l != nil {
		row[8], row[9] = l.Line, l.Direction
	}
	if z := e.Zone; z != nil {
		row[10], row[11] = z.Zone, strconv.FormatInt(z.DwellMs, 10)
	}
	return row
}

func restEventPage(p store.EventPage) rest.EventPage {
	out := rest.EventPage{Events: make([]rest.EventRecord, len(p.Events)), Next: p.Next}
	for i, e := range p.Events {
		out.Events[i] = rest.EventRecord{Device: e.Device, Event: e.Event, Crop: e.Crop, Thumb: e.Thumb}
	}
	return out
}

func (s *Server) eventSnapshot(w http.ResponseWriter, r *http.Request) {
	if !s.eventsStore(w) {
		return
	}
	device := r.PathValue("device")
	if err := api.ValidateID(device); err != nil {
		writeError(w, http.StatusBadRequest, "device: %v", err)
		return
	}
	seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, "seq: %q is not an unsigned integer", r.PathValue("seq"))
		return
	}
	part := r.URL.Query().Get("part")
	if part == "" {
		part = rest.PartCrop
	}
	if part != rest.PartCrop && part != rest.PartThumb {
		writeError(w, http.StatusBadRequest, "part: %q is neither %q nor %q", part, rest.PartCrop, rest.PartThumb)
		return
	}
	b, err := s.opt.Events.EventSnapshot(r.Context(), device, seq, part)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "event %s/%d has no %s snapshot (none sent, or expired)", device, seq, part)
		return
	}
	if err != nil {
		s.storeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "image/jpeg")
	w.Header().Set("Cache-Control", "private, max-age=3600") // a stored snapshot never changes
	w.Write(b)
}

func (s *Server) counts(w http.ResponseWriter, r *http.Request) {
	csvOut, ok := s.eventsPreamble(w, r)
	if !ok {
		return
	}
	dq, err := parseQuery(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	q := store.CountQuery{Device: dq.Device, Camera: dq.Camera, Line: r.URL.Query().Get("line"), From: dq.From, To: dq.To}
	if q.Line != "" {
		if err := api.ValidateID(q.Line); err != nil {
			writeError(w, http.StatusBadRequest, "line: %v", err)
			return
		}
	}
	if q.To.IsZero() {
		q.To = time.Now()
	}
	if q.From.IsZero() {
		q.From = q.To.Add(-24 * time.Hour)
	}
	width := time.Hour
	if b := r.URL.Query().Get("bucket"); b != "" {
		if width, err = time.ParseDuration(b); err != nil || width <= 0 {
			writeError(w, http.StatusBadRequest, "bucket: %q is not a positive duration like 1h", b)
			return
		}
	}
	rows, err := s.opt.Events.CountLines(r.Context(), q, width)
	if err != nil {
		s.storeError(w, err)
		return
	}
	out := rest.CountPage{From: q.From.UTC(), To: q.To.UTC(), Bucket: width.String(), Rows: make([]rest.CountRow, len(rows))}
	for i, c := range rows {
		out.Rows[i] = rest.CountRow{Start: c.Start, Line: c.Line, Direction: c.Direction, Label: c.Label, Count: c.Count}
		out.Total += c.Count
	}
	if !csvOut {
		writeJSON(w, http.StatusOK, out)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="counts.csv"`)
	cw := csv.NewWriter(w)
	cw.Write(rest.CountCSVHeader)
	for _, c := range out.Rows {
		cw.Write([]string{c.Start.Format(time.RFC3339), c.Line, c.Direction, c.Label, strconv.Itoa(c.Count)})
	}
	cw.Flush()
}
