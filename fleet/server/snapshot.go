package server

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"time"

	"edgefleet/fleet/api"
)

// Snapshots asks a device for a camera snapshot over MQTT
// (*ingest.Snapshots satisfies it). A device error comes back as a reply
// with Header.Error set; an error means no reply came before ctx ended
// (it then wraps ctx's error) or the request could not be sent.
type Snapshots interface {
	Snapshot(ctx context.Context, device, camera string, maxBytes int) (api.SnapshotReply, error)
}

// SnapshotTimeout is how long GET .../snapshot waits for the device.
const SnapshotTimeout = 5 * time.Second

// snapshot serves GET /api/v1/devices/{id}/cameras/{camera}/snapshot: it
// asks the device over MQTT for the newest frame of the camera and serves
// it as image/jpeg, never cached. 404: unknown device or camera; 504: the
// device is offline or did not answer in SnapshotTimeout; 502: the device
// answered with an error; 429: it was asked too often.
func (s *Server) snapshot(w http.ResponseWriter, r *http.Request) {
	id, camera := r.PathValue("id"), r.PathValue("camera")
	d, ok := s.opt.Registry.Get(id)
	if !ok {
		writeError(w, http.StatusNotFound, "no device %q", id)
		return
	}
	if api.ValidateID(camera) != nil || (len(d.Cameras) > 0 && !slices.Contains(d.Cameras, camera)) {
		writeError(w, http.StatusNotFound, "device %s has no camera %q (cameras: %v)", id, camera, d.Cameras)
		return
	}
	if s.opt.Snapshots == nil {
		writeError(w, http.StatusServiceUnavailable, "snapshots are not available on this fleetd")
		return
	}
	if !d.Online {
		writeError(w, http.StatusGatewayTimeout, "device %s is offline", id)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), SnapshotTimeout)
	defer cancel()
	rep, err := s.opt.Snapshots.Snapshot(ctx, id, camera, 0)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusGatewayTimeout, "device %s did not answer within %v", id, SnapshotTimeout)
		return
	case err != nil:
		s.log.Warn("snapshot", "device_id", id, "camera_id", camera, "err", err)
		writeError(w, http.StatusBadGateway, "snapshot request to device %s failed: %v", id, err)
		return
	}
	if code := rep.Header.Error; code != "" {
		status := http.StatusBadGateway
		switch code {
		case api.SnapshotUnknownCamera:
			status = http.StatusNotFound
		case api.SnapshotRateLimited:
			status = http.StatusTooManyRequests
			w.Header().Set("Retry-After", "1")
		}
		writeError(w, status, "device %s camera %s: %s: %s", id, camera, code, rep.Header.Reason)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "image/jpeg")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(rep.JPEG)))
	if rep.Header.Time != 0 {
		h.Set("X-Capture-Time", time.UnixMilli(rep.Header.Time).UTC().Format(time.RFC3339Nano))
	}
	w.WriteHeader(http.StatusOK)
	w.Write(rep.JPEG)
}
