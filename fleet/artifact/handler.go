package artifact

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"edgefleet/models/manifest"
)

// DeviceAuth checks a device's credentials: its id and its token (the same
// pair it uses for MQTT). fleetd adapts its broker authenticator to it.
type DeviceAuth interface {
	AuthenticateDevice(ctx context.Context, deviceID string, token []byte) error
}

// AuthFunc adapts a function to DeviceAuth.
type AuthFunc func(ctx context.Context, deviceID string, token []byte) error

// AuthenticateDevice implements DeviceAuth.
func (f AuthFunc) AuthenticateDevice(ctx context.Context, id string, token []byte) error {
	return f(ctx, id, token)
}

// RequestAuth is implemented by a DeviceAuth that can also identify a
// device by the request's TLS client certificate (fleetd's HTTPS
// listener). ok is false, with no error, for a request without one; its
// basic credentials are checked then. A request with a certificate and a
// basic user other than the certificate's device is refused.
type RequestAuth interface {
	RequestDevice(r *http.Request) (deviceID string, ok bool, err error)
}

// Scope is implemented by a DeviceAuth that limits what each device may
// download (fleetd: artifacts of jobs addressed to it, or the version it
// runs). A refusal is answered 403.
type Scope interface {
	MayDownload(ctx context.Context, deviceID string, m Meta) error
}

// Handler serves GET and HEAD /artifacts/<sha256> to authenticated devices,
// with Range requests (so an interrupted download resumes) and an ETag of the
// sha256. Devices prove who they are with a client certificate (when the
// DeviceAuth implements RequestAuth) or HTTP basic credentials: user =
// device id, password = token; when the DeviceAuth implements Scope, it
// decides which artifacts each device may have. Errors are JSON
// {"error": "...", "status": N}. It is safe for concurrent use.
type Handler struct {
	store Store
	auth  DeviceAuth
	log   *slog.Logger
}

// NewHandler returns a Handler; a nil logger means slog.Default().
func NewHandler(st Store, auth DeviceAuth, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.Default()
	}
	return &Handler{store: st, auth: auth, log: log}
}

// PathPrefix is where Handler expects to be mounted.
const PathPrefix = "/artifacts/"

// URL returns the path under which the artifact with sha256 sum is served.
func URL(sum string) string { return PathPrefix + sum }

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "method %s not allowed", r.Method)
		return
	}
	id, err := h.device(r)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Basic realm="edgefleet artifacts"`)
		msg := "bad device credentials"
		if errors.Is(err, errNoCredentials) {
			msg = "device credentials required"
		}
		writeError(w, http.StatusUnauthorized, "%s", msg)
		h.log.Warn("artifact download refused", "device_id", id, "err", err)
		return
	}
	sum, ok := strings.CutPrefix(r.URL.Path, PathPrefix)
	if !ok || manifest.CheckSHA256(sum) != nil {
		writeError(w, http.StatusNotFound, "no artifact at %s (want %s<sha256>)", r.URL.Path, PathPrefix)
		return
	}
	f, m, err := h.store.Open(r.Context(), sum)
	if err != nil {
		writeError(w, http.StatusNotFound, "artifact %s not found", sum)
		return
	}
	defer f.Close()
	if sc, ok := h.auth.(Scope); ok {
		if err := sc.MayDownload(r.Context(), id, m); err != nil {
			writeError(w, http.StatusForbidden, "artifact %s is not for device %s", sum, id)
			h.log.Warn("artifact download refused", "device_id", id, "sha256", sum, "err", err)
			return
		}
	}
	w.Header().Set("ETag", `"`+m.SHA256+`"`)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("X-Edgefleet-SHA256", m.SHA256)
	if r.Header.Get("Range") == "" {
		h.log.Info("artifact download", "device_id", id, "sha256", sum, "name", m.Name, "version", m.Version)
	}
	// A server-wide write timeout is made for small answers; a device on a
	// slow link needs longer (and resumes with Range if cut off anyway).
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(30 * time.Minute))
	// ServeContent handles Range, If-Range (against the ETag) and HEAD.
	http.ServeContent(w, r, "", m.CreatedAt, f)
}

var errNoCredentials = errors.New("artifact: no device credentials")

// device identifies the requesting device: its client certificate, else
// its basic credentials.
func (h *Handler) device(r *http.Request) (string, error) {
	if h.auth == nil {
		return "", fmt.Errorf("%w: no device authentication configured", errNoCredentials)
	}
	user, tok, basic := r.BasicAuth()
	if ra, ok := h.auth.(RequestAuth); ok {
		id, ok, err := ra.RequestDevice(r)
		if err != nil {
			return user, err
		}
		if ok {
			if basic && user != "" && user != id {
				return user, fmt.Errorf("artifact: basic user %q differs from the certificate's device %s", user, id)
			}
			return id, nil
		}
	}
	if !basic {
		return "", errNoCredentials
	}
	if err := h.auth.AuthenticateDevice(r.Context(), user, []byte(tok)); err != nil {
		return user, err
	}
	return user, nil
}

func writeError(w http.ResponseWriter, code int, format string, args ...any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(struct {
		Error  string `json:"error"`
		Status int    `json:"status"`
	}{fmt.Sprintf(format, args...), code})
}
