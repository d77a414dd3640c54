package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"time"

	"edgefleet/fleet/api"
	"edgefleet/fleet/api/rest"
	"edgefleet/fleet/artifact"
	"edgefleet/fleet/broker"
	"edgefleet/fleet/enroll"
	"edgefleet/fleet/enroll/enrollapi"
	"edgefleet/fleet/pki"
	"edgefleet/fleet/registry"
	"edgefleet/fleet/server"
	"edgefleet/models/manifest"
)

// CAConfig is the fleet CA that issues device certificates.
type CAConfig struct {
	// Cert and Key are the CA's PEM files (the key 0600). Empty: the CA
	// kept in data_dir/pki, created at first start.
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// EnrollConfig tunes device enrollment.
type EnrollConfig struct {
	// TokenTTL is how long an enrollment token is valid; default 24h.
	TokenTTL time.Duration `yaml:"token_ttl"`
	// Lifetime of device certificates; default 2160h (90 days). Devices
	// renew at two thirds of it.
	Lifetime time.Duration `yaml:"lifetime"`
}

func validateIdentity(c *Config, bad func(key, format string, args ...any)) {
	if (c.CA.Cert == "") != (c.CA.Key == "") {
		bad("ca.cert", "ca.cert and ca.key go together")
	}
	if c.Enroll.TokenTTL < 0 || c.Enroll.Lifetime < 0 {
		bad("enroll", "token_ttl and lifetime must not be negative")
	}
	if l := c.Enroll.Lifetime; l != 0 && l < 3*time.Second {
		bad("enroll.lifetime", "%v is below 3s", l)
	}
	t := c.HTTP.TLS
	if (t.Cert == "") != (t.Key == "") {
		bad("http.tls.cert", "http.tls.cert and http.tls.key go together")
	}
	if t.Cert != "" && len(t.Hosts) > 0 {
		bad("http.tls.hosts", "set hosts (a certificate from the fleet CA) or cert and key, not both")
	}
	b := c.Broker
	if (b.TLSCert == "") != (b.TLSKey == "") {
		bad("broker.tls_cert", "tls_cert and tls_key go together")
	}
}

// identity is the fleet's device identity: the CA, the enrollment store
// (which is also the revocation list), and the gate every device login and
// download passes.
type identity struct {
	ca     *pki.CA
	store  enroll.Store
	ttl    time.Duration
	gate   *gate
	enroll *enroll.Handler
}

// openIdentity opens the CA and the enrollment store; the gate starts with
// the devices listed in the config (password logins).
func (c *Controller) openIdentity(ctx context.Context) error {
	cfg := c.cfg
	var err error
	id := &identity{ttl: cfg.Enroll.TokenTTL}
	if cfg.CA.Cert != "" {
		id.ca, err = pki.LoadCA(cfg.CA.Cert, cfg.CA.Key)
	} else {
		id.ca, err = pki.OpenCA(filepath.Join(cfg.DataDir, "pki"))
	}
	if err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	if id.ttl <= 0 {
		id.ttl = enroll.DefaultTTL
	}
	// With a database the enrollments (and so the revocations) are shared
	// by every replica; else they live in data_dir.
	if pool := c.pool(); pool != nil {
		id.store, err = enroll.OpenPostgres(ctx, pool, enroll.Options{TTL: id.ttl})
	} else {
		id.store, err = enroll.OpenBolt(filepath.Join(cfg.DataDir, "enroll.db"), enroll.Options{TTL: id.ttl})
	}
	if err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	c.closers = append(c.closers, id.store.Close)
	static, err := c.deviceAuth()
	if err != nil {
		return err
	}
	id.gate = &gate{static: static, revoked: id.store, verifier: id.ca.Verifier(id.store), registry: c.registry}
	id.enroll = enroll.NewHandler(enroll.HandlerOptions{CA: id.ca, Store: id.store, Lifetime: cfg.Enroll.Lifetime, Log: c.log})
	c.id = id
	return nil
}

// routes are the enrollment endpoints (devices authenticate themselves
// with a token or their certificate) and the operator's device
// registration and revocation.
func (c *Controller) identityRoutes() []server.Route {
	return []server.Route{
		{Pattern: "POST " + enrollapi.PathEnroll, Handler: c.id.enroll},
		{Pattern: "POST " + enrollapi.PathRenew, Handler: c.id.enroll},
		{Pattern: "POST /api/v1/devices", Operator: true, Handler: http.HandlerFunc(c.addDevice)},
		{Pattern: "POST /api/v1/devices/{id}/revoke", Operator: true, Handler: http.HandlerFunc(c.revokeDevice)},
	}
}

func (c *Controller) addDevice(w http.ResponseWriter, r *http.Request) {
	var req rest.DeviceAdd
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		replyError(w, http.StatusBadRequest, "bad request body: %v", err)
		return
	}
	tok, err := c.id.store.Add(r.Context(), req.ID, req.Labels)
	switch {
	case errors.Is(err, enroll.ErrRevoked):
		replyError(w, http.StatusConflict, "device %s is revoked: enroll it under a new id", req.ID)
		return
	case err != nil && errors.Is(err, enroll.ErrClosed):
		replyError(w, http.StatusServiceUnavailable, "%v", err)
		return
	case err != nil:
		replyError(w, http.StatusBadRequest, "%v", err)
		return
	}
	c.log.Info("device registered for enrollment", "device_id", req.ID, "labels", req.Labels)
	replyJSON(w, http.StatusCreated, rest.DeviceAdded{ID: req.ID, Token: tok, ExpiresAt: time.Now().Add(c.id.ttl).UTC()})
}

func (c *Controller) revokeDevice(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := c.id.store.Revoke(r.Context(), id); err != nil {
		replyError(w, http.StatusBadRequest, "%v", err)
		return
	}
	out := rest.DeviceRevoked{ID: id, RevokedAt: time.Now().UTC()}
	if d, err := c.id.store.Device(r.Context(), id); err == nil {
		out.RevokedAt = d.Revoked.UTC()
	}
	if c.broker != nil {
		out.Disconnected = c.broker.Disconnect(id)
	} else {
		c.log.Warn("device revoked: the external broker keeps its session until it reconnects", "device_id", id)
	}
	// The broker sends no last will for a session it ends: say it here.
	if _, known := c.registry.Get(id); known {
		if err := c.registry.UpdateState(api.State{DeviceID: id}); err != nil {
			c.log.Warn("revoked device not marked offline", "device_id", id, "err", err)
		}
	}
	c.log.Info("device revoked", "device_id", id, "disconnected", out.Disconnected)
	replyJSON(w, http.StatusOK, out)
}

func replyJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func replyError(w http.ResponseWriter, code int, format string, args ...any) {
	replyJSON(w, code, rest.Error{Error: fmt.Sprintf(format, args...), Status: code})
}

// gate decides who a device is and what it may do: the broker's password
// logins (refused for revoked devices), and artifact downloads by client
// certificate or password, limited to the artifacts of jobs addressed to
// the device or the version it runs. It is safe for concurrent use.
type gate struct {
	static   *broker.StaticAuth
	revoked  pki.Revocations
	verifier *pki.Verifier
	registry interface {
		Get(id string) (registry.Device, bool)
	}
	// jobs is the rollout engine (set once OTA is open).
	jobs server.Rollouts
}

// addressed reports whether a rollout has a job for device that sends the
// artifact: asked of the engine when it can say (rollout.Engine), else
// looked up in the rollouts that send it.
func (g *gate) addressed(device, sha256 string) bool {
	if g.jobs == nil {
		return false
	}
	if a, ok := g.jobs.(interface {
		Addressed(device, sha256 string) bool
	}); ok {
		return a.Addressed(device, sha256)
	}
	for _, s := range g.jobs.List() {
		if s.SHA256 != sha256 {
			continue
		}
		if r, err := g.jobs.Get(s.ID); err == nil {
			for _, j := range r.Jobs {
				if j.DeviceID == device {
					return true
				}
			}
		}
	}
	return false
}

var (
	_ broker.Authenticator = (*gate)(nil)
	_ artifact.RequestAuth = (*gate)(nil)
	_ artifact.Scope       = (*gate)(nil)
)

// Authenticate implements broker.Authenticator.
func (g *gate) Authenticate(ctx context.Context, user string, password []byte) (broker.Identity, error) {
	who, err := g.static.Authenticate(ctx, user, password)
	if err != nil || who.Role != broker.RoleDevice {
		return who, err
	}
	revoked, err := g.revoked.IsRevoked(ctx, who.DeviceID)
	if err != nil {
		return broker.Identity{}, fmt.Errorf("controller: %w", err)
	}
	if revoked {
		return broker.Identity{}, fmt.Errorf("%w: device %s is revoked", broker.ErrBadCredentials, who.DeviceID)
	}
	return who, nil
}

// AuthenticateDevice implements artifact.DeviceAuth: a device's password.
func (g *gate) AuthenticateDevice(ctx context.Context, id string, token []byte) error {
	who, err := g.Authenticate(ctx, id, token)
	if err != nil {
		return err
	}
	if who.Role != broker.RoleDevice || who.DeviceID != id {
		return fmt.Errorf("controller: %s is not a device", id)
	}
	return nil
}

// RequestDevice implements artifact.RequestAuth: the device a client
// certificate proves, checked again for revocation.
func (g *gate) RequestDevice(r *http.Request) (string, bool, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return "", false, nil
	}
	id, err := g.verifier.Device(r.Context(), r.TLS)
	return id, err == nil, err
}

// MayDownload implements artifact.Scope.
func (g *gate) MayDownload(_ context.Context, device string, m artifact.Meta) error {
	if g.addressed(device, m.SHA256) {
		return nil
	}
	if d, ok := g.registry.Get(device); ok {
		runs := d.Model == m.Name && d.ModelVersion == m.Version
		if m.Kind == manifest.KindFirmware {
			runs = d.AgentVersion == m.Version
		}
		if runs {
			return nil
		}
	}
	return fmt.Errorf("controller: %s %s@%s is not addressed to %s", m.Kind, m.Name, m.Version, device)
}
