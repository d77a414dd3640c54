package server

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"edgefleet/fleet/api"
	"edgefleet/fleet/api/rest"
	"edgefleet/fleet/rollout"
)

// rolloutShadow answers every device's shadow reports, their sample JPEGs
// left out and named by URL.
func (s *Server) rolloutShadow(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	ro, err := s.opt.OTA.Rollouts.Get(id)
	if err != nil {
		writeError(w, rolloutStatus(err), "%v", err)
		return
	}
	recs, err := s.opt.OTA.Rollouts.Shadow(r.Context(), id)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	writeJSON(w, http.StatusOK, restShadow(ro, recs))
}

// restShadow joins the jobs with their reports, in the jobs' order.
func restShadow(ro *rollout.Rollout, recs []rollout.ShadowRecord) rest.RolloutShadow {
	out := rest.RolloutShadow{ID: ro.ID, Spec: ro.Spec.Shadow, Devices: []rest.ShadowDevice{}}
	for _, j := range ro.Jobs {
		i := slices.IndexFunc(recs, func(rec rollout.ShadowRecord) bool { return rec.DeviceID == j.DeviceID })
		if j.Shadow == nil && i < 0 {
			continue
		}
		d := rest.ShadowDevice{DeviceID: j.DeviceID, JobID: j.JobID, State: j.State, Shadow: restJobShadow(j.Shadow)}
		if i >= 0 {
			d.Latest = withoutJPEG(recs[i].Latest)
			d.Final = withoutJPEG(recs[i].Final)
			if f := recs[i].Final; f != nil {
				for n := range f.Samples {
					d.SampleURLs = append(d.SampleURLs, sampleURL(ro.ID, j.DeviceID, n))
				}
			}
		}
		out.Devices = append(out.Devices, d)
	}
	return out
}

func sampleURL(id, device string, n int) string {
	return fmt.Sprintf("%s/rollouts/%s/devices/%s/shadow/samples/%d", rest.Prefix, url.PathEscape(id), url.PathEscape(device), n)
}

// withoutJPEG copies a report with its samples' bytes left out.
func withoutJPEG(rep *api.ShadowReport) *api.ShadowReport {
	if rep == nil {
		return nil
	}
	c := *rep
	c.Samples = slices.Clone(rep.Samples)
	for i := range c.Samples {
		c.Samples[i].JPEG = nil
	}
	return &c
}

// rolloutShadowSample serves sample n of a device's final shadow report.
func (s *Server) rolloutShadowSample(w http.ResponseWriter, r *http.Request) {
	id, dev := r.PathValue("id"), r.PathValue("device")
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil || n < 0 {
		writeError(w, http.StatusBadRequest, "sample %q is not a number", r.PathValue("n"))
		return
	}
	recs, err := s.opt.OTA.Rollouts.Shadow(r.Context(), id)
	if err != nil {
		writeError(w, rolloutStatus(err), "%v", err)
		return
	}
	i := slices.IndexFunc(recs, func(rec rollout.ShadowRecord) bool { return rec.DeviceID == dev })
	if i < 0 || recs[i].Final == nil || n >= len(recs[i].Final.Samples) {
		writeError(w, http.StatusNotFound, "rollout %s: device %s has no shadow sample %d", id, dev, n)
		return
	}
	w.Header().Set("Content-Type", "image/jpeg")
	w.Header().Set("Cache-Control", "private, max-age=3600")
	w.Write(recs[i].Final.Samples[n].JPEG)
}
