package server

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"edgefleet/fleet/api/rest"
	"edgefleet/fleet/registry"
	"edgefleet/fleet/rollout"
	"edgefleet/fleet/store"
)

// The device routes:
//
//	GET    /api/v1/devices            DeviceQuery: filter, sort, offset/limit; DevicePage with the total
//	GET    /api/v1/devices/{id}       DeviceRow with jobs and rollouts; a provisioned, never seen device has status never
//	GET    /api/v1/devices/{id}/jobs  the recent job history
//	DELETE /api/v1/devices/{id}       decommission: the registry forgets it; ?purge=true deletes its detections too
//
// A decommissioned device that connects again is registered again.
func (s *Server) deviceRoutes() {
	s.handle("GET /api/v1/devices", true, s.devices)
	s.handle("GET /api/v1/devices/{id}", true, s.device)
	s.handle("GET /api/v1/devices/{id}/jobs", true, s.deviceJobs)
	s.handle("DELETE /api/v1/devices/{id}", true, s.deviceDelete)
}

// deviceDeleter is the registry's Delete (*registry.Registry and *registry.Postgres).
type deviceDeleter interface {
	Delete(id string) (bool, error)
}

func parseDeviceQuery(r *http.Request) (rest.DeviceQuery, registry.Filter, error) {
	v := r.URL.Query()
	q := rest.DeviceQuery{Q: strings.TrimSpace(v.Get("q")), Site: v.Get("site"), Line: v.Get("line"), Status: v.Get("status"),
		Health: v.Get("health"), Model: v.Get("model"), Version: v.Get("version"), Sort: v.Get("sort")}
	f := registry.Filter{Q: q.Q, Site: q.Site, Line: q.Line, Status: q.Status, Health: q.Health, Model: q.Model, Version: q.Version}
	if o := v.Get("online"); o != "" { // the old form of status
		b, err := strconv.ParseBool(o)
		if err != nil {
			return q, f, errBadRequest("online: %q is not true or false", o)
		}
		f.Online = &b
	}
	if err := f.Check(); err != nil {
		return q, f, errBadRequest("status: %q is not online, offline or never", q.Status)
	}
	if q.Sort != "" && !slices.Contains(rest.DeviceSorts, strings.TrimPrefix(q.Sort, "-")) {
		return q, f, errBadRequest("sort: %q is not one of %s (- first for descending)", q.Sort, strings.Join(rest.DeviceSorts, ", "))
	}
	for _, p := range []struct {
		k   string
		n   *int
		max int
	}{{"offset", &q.Offset, 1 << 30}, {"limit", &q.Limit, rest.MaxDeviceLimit}} {
		if s := v.Get(p.k); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 || n > p.max {
				return q, f, errBadRequest("%s: %q is not in 0..%d", p.k, s, p.max)
			}
			*p.n = n
		}
	}
	return q, f, nil
}

type badRequest string

func (e badRequest) Error() string { return string(e) }

func errBadRequest(format string, args ...any) error {
	return badRequest(fmt.Sprintf(format, args...))
}

func (s *Server) devices(w http.ResponseWriter, r *http.Request) {
	q, f, err := parseDeviceQuery(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	rows := []rest.DeviceRow{}
	if q.Status != rest.StatusNever {
		for _, d := range s.opt.Registry.List(f) {
			d.Jobs = nil // on the device's own page only
			rows = append(rows, deviceRow(d))
		}
	}
	rows = append(rows, s.neverSeen(q, f)...)
	sortDevices(rows, q.Sort)
	page := rest.DevicePage{Total: len(rows), Offset: q.Offset, Limit: q.Limit}
	rows = rows[min(q.Offset, len(rows)):]
	if q.Limit > 0 && len(rows) > q.Limit {
		rows = rows[:q.Limit]
	}
	page.Devices = rows
	writeJSON(w, http.StatusOK, page)
}

// neverSeen returns the provisioned devices the registry does not know
// that match the query (they have no labels, model or health).
func (s *Server) neverSeen(q rest.DeviceQuery, f registry.Filter) []rest.DeviceRow {
	if q.Status != "" && q.Status != rest.StatusNever || f.Online != nil && *f.Online || q.Site != "" || q.Line != "" ||
		q.Model != "" || q.Version != "" || q.Health != "" && q.Health != registry.HealthUnhealthy {
		return nil
	}
	var out []rest.DeviceRow
	for _, id := range s.opt.Provisioned {
		if q.Q != "" && !strings.Contains(strings.ToLower(id), strings.ToLower(q.Q)) {
			continue
		}
		if _, ok := s.opt.Registry.Get(id); !ok {
			out = append(out, neverRow(id))
		}
	}
	return out
}

func neverRow(id string) rest.DeviceRow {
	return rest.DeviceRow{Device: rest.Device{ID: id, Health: []string{"never_seen"}}, Status: rest.StatusNever}
}

func deviceRow(d registry.Device) rest.DeviceRow {
	st := rest.StatusOffline
	if d.Online {
		st = rest.StatusOnline
	}
	return rest.DeviceRow{Device: restDevice(d), Status: st}
}

// sortDevices sorts rows by key ("-key" descending), ties by id.
func sortDevices(rows []rest.DeviceRow, key string) {
	desc := strings.HasPrefix(key, "-")
	key = strings.TrimPrefix(key, "-")
	by := func(a, b *rest.DeviceRow) int {
		switch key {
		case "site", "line":
			return cmp.Compare(a.Labels[key], b.Labels[key])
		case "status":
			return cmp.Compare(a.Status, b.Status)
		case "model":
			return cmp.Compare(a.Model, b.Model)
		case "version":
			return cmp.Compare(a.ModelVersion, b.ModelVersion)
		case "health":
			return cmp.Compare(len(a.Health), len(b.Health))
		case "detections":
			return cmp.Compare(a.Detections, b.Detections)
		case "rate":
			return cmp.Compare(a.DetectionsPerMin, b.DetectionsPerMin)
		case "last_seen":
			return a.LastSeen.Compare(b.LastSeen)
		}
		return 0
	}
	slices.SortStableFunc(rows, func(a, b rest.DeviceRow) int {
		c := by(&a, &b)
		if c == 0 {
			c = cmp.Compare(a.ID, b.ID)
		}
		if desc {
			return -c
		}
		return c
	})
}

func (s *Server) device(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	d, ok := s.opt.Registry.Get(id)
	if !ok {
		if slices.Contains(s.opt.Provisioned, id) {
			writeJSON(w, http.StatusOK, neverRow(id))
			return
		}
		writeError(w, http.StatusNotFound, "device %q not found", id)
		return
	}
	row := deviceRow(d)
	row.Rollouts = s.deviceRollouts(id)
	writeJSON(w, http.StatusOK, row)
}

// deviceRollouts returns the device's jobs in the rollouts, newest first, at most 10.
func (s *Server) deviceRollouts(id string) []rest.DeviceRollout {
	if s.opt.OTA == nil || s.opt.OTA.Rollouts == nil {
		return nil
	}
	sums := s.opt.OTA.Rollouts.List()
	slices.SortFunc(sums, func(a, b rollout.Summary) int { return b.CreatedAt.Compare(a.CreatedAt) })
	var out []rest.DeviceRollout
	for _, sum := range sums {
		ro, err := s.opt.OTA.Rollouts.Get(sum.ID)
		if err != nil {
			continue
		}
		for _, j := range ro.Jobs {
			if j.DeviceID == id {
				out = append(out, rest.DeviceRollout{ID: sum.ID, Artifact: sum.Kind + " " + sum.Name + "@" + sum.Version,
					State: string(sum.State), Job: restJob(j)})
				break
			}
		}
		if len(out) == 10 {
			break
		}
	}
	return out
}

func (s *Server) deviceJobs(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	d, ok := s.opt.Registry.Get(id)
	if !ok {
		writeError(w, http.StatusNotFound, "device %q not found", id)
		return
	}
	writeJSON(w, http.StatusOK, rest.DeviceJobs{DeviceID: id, Jobs: nonNil(d.Jobs)})
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// deviceDelete decommissions a device: the registry forgets it, and with
// purge=true the store deletes its detections.
func (s *Server) deviceDelete(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	purge := false
	if p := r.URL.Query().Get("purge"); p != "" {
		var err error
		if purge, err = strconv.ParseBool(p); err != nil {
			writeError(w, http.StatusBadRequest, "purge: %q is not true or false", p)
			return
		}
	}
	del, ok := s.opt.Registry.(deviceDeleter)
	if !ok {
		writeError(w, http.StatusNotImplemented, "this registry cannot delete devices")
		return
	}
	var sd store.DeviceDeleter
	if purge {
		if sd, ok = s.opt.Store.(store.DeviceDeleter); !ok {
			writeError(w, http.StatusNotImplemented, "this store cannot purge a device's detections")
			return
		}
	}
	known, err := del.Delete(id)
	if err != nil {
		s.log.Error("decommission", "device_id", id, "err", err)
		writeError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	if !known && !purge {
		writeError(w, http.StatusNotFound, "device %q not found", id)
		return
	}
	out := rest.Decommissioned{Deleted: id, Purge: purge}
	if purge {
		if out.Purged, err = sd.DeleteDevice(r.Context(), id); err != nil {
			s.storeError(w, err)
			return
		}
	}
	op, _ := s.operator(r)
	s.log.Info("device decommissioned", "device_id", id, "purge", purge, "purged", out.Purged, "operator", op)
	writeJSON(w, http.StatusOK, out)
}
