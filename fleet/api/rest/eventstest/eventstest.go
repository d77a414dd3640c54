// Package eventstest serves the analytics routes of fleetd's REST contract
// (fleet/api/rest/events.go: GET /api/v1/events, the event snapshots and
// GET /api/v1/counts) from a fixed list of events, so that their clients
// (fleet/client, fleetctl, the console) are tested against the contract
// apart from fleetd's own implementation. Any other request goes to Next.
package eventstest

import (
	"cmp"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"edgefleet/fleet/api"
	"edgefleet/fleet/api/rest"
)

// Event is a stored event: the device that sent it and the event, its
// snapshot included.
type Event struct {
	Device string
	api.Event
}

// Handler serves the analytics routes from Events to requests that carry
// Token as a bearer token.
type Handler struct {
	Token  string
	Events []Event
	// Next serves every other route; nil answers 404.
	Next http.Handler
	mux  *http.ServeMux
}

// New returns a Handler of events in front of next.
func New(token string, next http.Handler, events []Event) *Handler {
	h := &Handler{Token: token, Events: events, Next: next, mux: http.NewServeMux()}
	h.mux.HandleFunc("GET "+rest.Prefix+"/events", h.events)
	h.mux.HandleFunc("GET "+rest.Prefix+"/events/{device}/{seq}/snapshot", h.snapshot)
	h.mux.HandleFunc("GET "+rest.Prefix+"/counts", h.counts)
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if h.Next == nil {
			http.NotFound(w, r)
			return
		}
		h.Next.ServeHTTP(w, r)
	})
	return h
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, pattern := h.mux.Handler(r)
	if pattern != "/" && r.Header.Get("Authorization") != "Bearer "+h.Token {
		fail(w, http.StatusUnauthorized, "missing or unknown operator token")
		return
	}
	h.mux.ServeHTTP(w, r)
}

func fail(w http.ResponseWriter, status int, format string, a ...any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(rest.Error{Error: fmt.Sprintf(format, a...)})
}

// span reads from and to: RFC 3339, unix ms or -duration; to defaults to
// now, from to a day before to.
func span(r *http.Request) (from, to time.Time, err error) {
	now := time.Now()
	at := func(k string, def time.Time) (time.Time, error) {
		v := r.URL.Query().Get(k)
		if v == "" {
			return def, nil
		}
		if d, err := time.ParseDuration(v); err == nil && d < 0 {
			return now.Add(d), nil
		}
		if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
			return time.UnixMilli(ms), nil
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return t, fmt.Errorf("%s: %q is not RFC 3339, unix milliseconds or -duration", k, v)
		}
		return t, nil
	}
	if to, err = at("to", now); err == nil {
		from, err = at("from", to.Add(-24*time.Hour))
	}
	return from, to, err
}

// match returns the events that the query's filters select, newest first.
func (h *Handler) match(r *http.Request, types ...string) ([]Event, error) {
	from, to, err := span(r)
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	var out []Event
	for _, e := range h.Events {
		line, zone := "", ""
		if e.Line != nil {
			line = e.Line.Line
		}
		if e.Zone != nil {
			zone = e.Zone.Zone
		}
		t := time.UnixMicro(e.Time)
		ok := (len(types) == 0 || slices.Contains(types, e.Type)) && e.IsAnalytics() && !t.Before(from) && t.Before(to)
		for _, f := range [][2]string{{"device", e.Device}, {"camera", e.CameraID}, {"type", e.Type}, {"label", e.Label}, {"line", line}, {"zone", zone}} {
			ok = ok && (q.Get(f[0]) == "" || q.Get(f[0]) == f[1])
		}
		if ok {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b Event) int {
		return cmp.Or(cmp.Compare(b.Time, a.Time), strings.Compare(a.Device, b.Device), cmp.Compare(b.Seq, a.Seq))
	})
	return out, nil
}

func (h *Handler) events(w http.ResponseWriter, r *http.Request) {
	evs, err := h.match(r)
	if err != nil {
		fail(w, http.StatusBadRequest, "%v", err)
		return
	}
	q := r.URL.Query()
	limit, off := rest.DefaultLimit, 0
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > rest.MaxLimit {
			fail(w, http.StatusBadRequest, "limit: %q is not in 1..%d", v, rest.MaxLimit)
			return
		}
	} else if q.Get("format") == "csv" {
		limit = rest.MaxLimit
	}
	if v := q.Get("cursor"); v != "" {
		if off, err = strconv.Atoi(v); err != nil || off < 0 {
			fail(w, http.StatusBadRequest, "cursor: %q is not a cursor of this server", v)
			return
		}
	}
	evs = evs[min(off, len(evs)):]
	p := rest.EventPage{Events: []rest.EventRecord{}}
	if len(evs) > limit {
		evs, p.Next = evs[:limit], strconv.Itoa(off+limit)
	}
	for _, e := range evs {
		rec := rest.EventRecord{Device: e.Device, Event: e.Event}
		if s := e.Snapshot; s != nil {
			rec.Crop, rec.Thumb = len(s.Crop) > 0, len(s.Thumb) > 0
		}
		rec.Snapshot = nil
		p.Events = append(p.Events, rec)
	}
	if q.Get("format") == "csv" {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		cw := csv.NewWriter(w)
		cw.Write(rest.EventCSVHeader)
		for _, e := range p.Events {
			cw.Write(csvRow(e))
		}
		cw.Flush()
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(p)
}

// csvRow is e as a row under rest.EventCSVHeader.
func csvRow(e rest.EventRecord) []string {
	us := func(v int64) string { return time.UnixMicro(v).UTC().Format(time.RFC3339Nano) }
	row := []string{e.Device, strconv.FormatUint(e.Seq, 10), e.CameraID, us(e.Time), e.Type, e.Label,
		strconv.FormatFloat(float64(e.Score), 'f', -1, 32), "", "", "", "", "", "", "", ""}
	if t := e.Track; t != nil {
		row[7] = strconv.FormatUint(t.ID, 10)
		if t.Frames > 0 {
			row[12], row[13], row[14] = us(t.FirstUs), us(t.LastUs), strconv.Itoa(t.Frames)
		}
	}
	if l := e.Line; l != nil {
		row[8], row[9] = l.Line, l.Direction
	}
	if z := e.Zone; z != nil {
		row[10], row[11] = z.Zone, strconv.FormatInt(z.DwellMs, 10)
	}
	return row
}

func (h *Handler) snapshot(w http.ResponseWriter, r *http.Request) {
	part := r.URL.Query().Get("part")
	if part != rest.PartCrop && part != rest.PartThumb {
		fail(w, http.StatusBadRequest, "part: %q is neither crop nor thumb", part)
		return
	}
	for _, e := range h.Events {
		if e.Device != r.PathValue("device") || strconv.FormatUint(e.Seq, 10) != r.PathValue("seq") || e.Snapshot == nil {
			continue
		}
		b := e.Snapshot.Crop
		if part == rest.PartThumb {
			b = e.Snapshot.Thumb
		}
		if len(b) == 0 {
			break
		}
		w.Header().Set("Content-Type", "image/jpeg")
		w.Write(b)
		return
	}
	fail(w, http.StatusNotFound, "event %s/%s has no %s snapshot", r.PathValue("device"), r.PathValue("seq"), part)
}

func (h *Handler) counts(w http.ResponseWriter, r *http.Request) {
	bucket := time.Hour
	if v := r.URL.Query().Get("bucket"); v != "" {
		var err error
		if bucket, err = time.ParseDuration(v); err != nil || bucket <= 0 {
			fail(w, http.StatusBadRequest, "bucket: %q is not a positive duration like 1h", v)
			return
		}
	}
	evs, err := h.match(r, api.TypeLineCross)
	if err != nil {
		fail(w, http.StatusBadRequest, "%v", err)
		return
	}
	from, to, _ := span(r)
	p := rest.CountPage{From: from.UTC(), To: to.UTC(), Bucket: bucket.String(), Rows: []rest.CountRow{}}
	idx := map[rest.CountRow]int{}
	for _, e := range evs {
		k := rest.CountRow{Start: time.UnixMicro(e.Time).Truncate(bucket).UTC(), Line: e.Line.Line, Direction: e.Line.Direction, Label: e.Label}
		if i, ok := idx[k]; ok {
			p.Rows[i].Count++
		} else {
			idx[k] = len(p.Rows)
			k.Count = 1
			p.Rows = append(p.Rows, k)
		}
		p.Total++
	}
	slices.SortFunc(p.Rows, func(a, b rest.CountRow) int {
		return cmp.Or(a.Start.Compare(b.Start), strings.Compare(a.Line, b.Line), strings.Compare(a.Direction, b.Direction), strings.Compare(a.Label, b.Label))
	})
	if r.URL.Query().Get("format") == "csv" {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		cw := csv.NewWriter(w)
		cw.Write(rest.CountCSVHeader)
		for _, c := range p.Rows {
			cw.Write([]string{c.Start.Format(time.RFC3339), c.Line, c.Direction, c.Label, strconv.Itoa(c.Count)})
		}
		cw.Flush()
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(p)
}
