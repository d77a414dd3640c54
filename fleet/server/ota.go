package server

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"edgefleet/fleet/api"
	"edgefleet/fleet/api/rest"
	"edgefleet/fleet/artifact"
	"edgefleet/fleet/rollout"
	"edgefleet/models/manifest"
	"edgefleet/models/meta"
)

// OTA holds what the model registry and rollout routes need; Options.OTA
// nil leaves them out. Routes (operator token unless noted):
//
//	POST   /api/v1/models                    multipart: name, version, [labels], file (last)
//	GET    /api/v1/models                    list
//	GET    /api/v1/models/{name}/{version}   one model with its manifest
//	DELETE /api/v1/models/{name}/{version}   409 while a rollout uses it
//	...    /api/v1/firmware[/{name}/{version}] the same for agent bundles (multipart: name, version, os, arch, file)
//	...    /api/v1/keys[/...]                the signing keys (KeyRing, keys.go)
//	POST   /api/v1/rollouts                  CreateRollout
//	GET    /api/v1/rollouts                  summaries
//	GET    /api/v1/rollouts/{id}             summary and per-device jobs
//	POST   /api/v1/rollouts/{id}/{action}    pause, resume, abort ({"reason"}), rollback, accept ({"device"}: shadow.go)
//	GET    /api/v1/rollouts/{id}/shadow      every device's shadow reports (shadow.go)
//	GET    /api/v1/rollouts/{id}/devices/{device}/shadow/samples/{n}  a disagreement sample, image/jpeg
//	GET    /artifacts/{sha256}               device credentials (HTTP basic), Range
type OTA struct {
	Artifacts artifact.Store
	Rollouts  Rollouts
	// Keys are fleetd's signing keys, for the key routes; nil leaves them out.
	Keys KeyRing
	// DeviceAuth gates artifact downloads; nil refuses every download.
	DeviceAuth artifact.DeviceAuth
	// ArtifactBase prefixes the artifact path in commands, e.g.
	// "http://fleetd.plant-a:8080"; empty sends the bare path.
	ArtifactBase string
	// MaxUpload caps one upload; 0 means 1 GiB.
	MaxUpload int64
	// HealthWindow and JobTimeout apply to rollouts created without them;
	// zero leaves them to the rollout engine's defaults.
	HealthWindow, JobTimeout time.Duration
}

// bodyLimit is the request body cap: uploads get OTA.MaxUpload, the rest 1 MiB.
func (s *Server) bodyLimit(r *http.Request) int64 {
	if o := s.opt.OTA; o != nil && r.Method == http.MethodPost && (r.URL.Path == "/api/v1/models" || r.URL.Path == "/api/v1/firmware") {
		if o.MaxUpload > 0 {
			return o.MaxUpload + 64<<10
		}
		return 1<<30 + 64<<10
	}
	return 1 << 20
}

func (s *Server) otaRoutes() {
	o := s.opt.OTA
	if o == nil {
		return
	}
	if o.Artifacts == nil || o.Rollouts == nil {
		s.log.Error("OTA routes disabled: OTA.Artifacts and OTA.Rollouts are required")
		return
	}
	s.handle("POST /api/v1/models", true, s.modelPush)
	s.handle("GET /api/v1/models", true, s.modelList)
	s.handle("GET /api/v1/models/{name}/{version}", true, s.modelShow)
	s.handle("DELETE /api/v1/models/{name}/{version}", true, s.modelDelete)
	s.handle("POST /api/v1/firmware", true, s.modelPush)
	s.handle("GET /api/v1/firmware", true, s.modelList)
	s.handle("GET /api/v1/firmware/{name}/{version}", true, s.modelShow)
	s.handle("DELETE /api/v1/firmware/{name}/{version}", true, s.modelDelete)
	if o.Keys != nil {
		s.handle("GET /api/v1/keys", true, s.keyList)
		s.handle("GET /api/v1/keys/{id}", true, s.keyShow)
		s.handle("POST /api/v1/keys/rotate", true, s.keyRotate)
	}
	s.handle("POST /api/v1/rollouts", true, s.rolloutCreate)
	s.handle("GET /api/v1/rollouts", true, s.rolloutList)
	s.handle("GET /api/v1/rollouts/{id}", true, s.rolloutShow)
	s.handle("POST /api/v1/rollouts/{id}/{action}", true, s.rolloutAction)
	s.handle("GET /api/v1/rollouts/{id}/shadow", true, s.rolloutShadow)
	s.handle("GET /api/v1/rollouts/{id}/devices/{device}/shadow/samples/{n}", true, s.rolloutShadowSample)
	h := artifact.NewHandler(o.Artifacts, o.DeviceAuth, s.log)
	s.handle("GET "+artifact.PathPrefix+"{sha}", false, h.ServeHTTP)
}

// pathKind is the artifact kind a route serves: firmware under /api/v1/firmware, else model.
func pathKind(r *http.Request) string {
	if strings.HasPrefix(r.URL.Path, "/api/v1/firmware") {
		return manifest.KindFirmware
	}
	return manifest.KindModel
}

func (s *Server) modelView(m artifact.Meta, full bool) rest.Model {
	v := rest.Model{Kind: m.Kind, OS: m.OS, Arch: m.Arch, Name: m.Name, Version: m.Version, SHA256: m.SHA256, Size: m.Size, CreatedAt: m.CreatedAt, KeyID: m.KeyID,
		Labels: len(m.Labels), InUse: s.opt.OTA.Rollouts.ArtifactInUse(m.SHA256)}
	if man, err := manifest.Parse(m.Manifest); err == nil {
		v.Inputs, v.Outputs = restTensors(man.Inputs), restTensors(man.Outputs)
	}
	if full {
		v.Manifest, v.Signature = m.Manifest, m.Sig
	}
	return v
}

// modelPush streams a multipart upload into the artifact store; the store's
// sealer reads the model's tensors and signs the manifest.
func (s *Server) modelPush(w http.ResponseWriter, r *http.Request) {
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "multipart/form-data" {
		writeError(w, http.StatusUnsupportedMediaType, "send multipart/form-data with fields name, version, labels (or os, arch) and then file")
		return
	}
	// fleetd's server-wide read and write timeouts are for small requests;
	// a model upload on a slow link takes longer.
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Now().Add(time.Hour))
	rc.SetWriteDeadline(time.Now().Add(time.Hour + time.Minute))
	mr, err := r.MultipartReader()
	if err != nil {
		writeError(w, http.StatusBadRequest, "multipart: %v", err)
		return
	}
	m := artifact.Meta{Kind: pathKind(r)}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			writeError(w, http.StatusBadRequest, "no file part")
			return
		}
		if err != nil {
			writeError(w, http.StatusBadRequest, "multipart: %v", err)
			return
		}
		switch part.FormName() {
		case "name", "version", "labels", "os", "arch":
			b, err := io.ReadAll(io.LimitReader(part, 1<<20))
			if err != nil {
				writeError(w, http.StatusBadRequest, "multipart %s: %v", part.FormName(), err)
				return
			}
			switch part.FormName() {
			case "name":
				m.Name = strings.TrimSpace(string(b))
			case "version":
				m.Version = strings.TrimSpace(string(b))
			case "labels":
				m.Labels = meta.ParseLabels(b)
			case "os":
				m.OS = strings.TrimSpace(string(b))
			case "arch":
				m.Arch = strings.TrimSpace(string(b))
			}
		case "file":
			if err := api.ValidateID(m.Name); err != nil {
				writeError(w, http.StatusBadRequest, "name: %v", err)
				return
			}
			if err := api.ValidateID(m.Version); err != nil {
				writeError(w, http.StatusBadRequest, "version: %v", err)
				return
			}
			if (m.Kind == manifest.KindFirmware) != (m.OS != "" && m.Arch != "") || m.Kind == manifest.KindModel && (m.OS != "" || m.Arch != "") {
				writeError(w, http.StatusBadRequest, "os and arch are required for firmware and only for firmware")
				return
			}
			got, err := s.opt.OTA.Artifacts.Put(r.Context(), part, m)
			if err != nil {
				writeError(w, artifactStatus(err), "%v", err)
				return
			}
			op, _ := s.operator(r)
			s.log.Info("artifact pushed", "kind", got.Kind, "name", got.Name, "version", got.Version, "sha256", got.SHA256, "size", got.Size, "operator", op)
			writeJSON(w, http.StatusCreated, s.modelView(got, true))
			return
		default:
			writeError(w, http.StatusBadRequest, "unknown multipart field %q", part.FormName())
			return
		}
	}
}

func artifactStatus(err error) int {
	var mbe *http.MaxBytesError
	switch {
	case errors.Is(err, artifact.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, artifact.ErrExists), errors.Is(err, artifact.ErrInUse):
		return http.StatusConflict
	case errors.Is(err, artifact.ErrTooLarge), errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, artifact.ErrClosed):
		return http.StatusServiceUnavailable
	}
	return http.StatusBadRequest
}

func (s *Server) modelList(w http.ResponseWriter, r *http.Request) {
	all, err := s.opt.OTA.Artifacts.List(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	kind := pathKind(r)
	out := []rest.Model{}
	for _, m := range all {
		if m.Kind == kind {
			out = append(out, s.modelView(m, false))
		}
	}
	if kind == manifest.KindFirmware {
		writeJSON(w, http.StatusOK, rest.FirmwareList{Firmware: out})
		return
	}
	writeJSON(w, http.StatusOK, rest.ModelList{Models: out})
}

func (s *Server) modelShow(w http.ResponseWriter, r *http.Request) {
	m, err := s.opt.OTA.Artifacts.Find(r.Context(), pathKind(r), r.PathValue("name"), r.PathValue("version"))
	if err != nil {
		writeError(w, artifactStatus(err), "%v", err)
		return
	}
	writeJSON(w, http.StatusOK, s.modelView(m, true))
}

func (s *Server) modelDelete(w http.ResponseWriter, r *http.Request) {
	st := s.opt.OTA.Artifacts
	m, err := st.Find(r.Context(), pathKind(r), r.PathValue("name"), r.PathValue("version"))
	if err == nil {
		err = st.Delete(r.Context(), m.SHA256)
	}
	if err != nil {
		writeError(w, artifactStatus(err), "%v", err)
		return
	}
	writeJSON(w, http.StatusOK, rest.Deleted{Deleted: m.Name + "@" + m.Version, SHA256: m.SHA256})
}

// rolloutSpec resolves a create request against the artifact store.
func rolloutSpec(r *http.Request, o *OTA, c *rest.CreateRollout) (rollout.Spec, int, error) {
	var sp rollout.Spec
	kind, ref := manifest.KindModel, c.Model
	switch {
	case c.Model != "" && c.Firmware != "":
		return sp, http.StatusBadRequest, errors.New("give model or firmware, not both")
	case c.Firmware != "":
		kind, ref = manifest.KindFirmware, c.Firmware
	}
	name, version, ok := strings.Cut(ref, "@")
	if !ok || name == "" || version == "" {
		return sp, http.StatusBadRequest, fmt.Errorf("%s: %q is not name@version", kind, ref)
	}
	m, err := o.Artifacts.Find(r.Context(), kind, name, version)
	if err != nil {
		return sp, artifactStatus(err), err
	}
	if len(m.Manifest) == 0 || len(m.Sig) == 0 {
		return sp, http.StatusConflict, fmt.Errorf("%s %s@%s has no signed manifest", kind, name, version)
	}
	sp.Artifact = api.Artifact{Kind: m.Kind, Name: m.Name, Version: m.Version, SHA256: m.SHA256, Size: m.Size,
		URL: strings.TrimSuffix(o.ArtifactBase, "/") + artifact.URL(m.SHA256), Manifest: m.Manifest, Sig: m.Sig, KeyID: m.KeyID}
	if sp.Selector, err = rollout.ParseSelector(c.Selector); err != nil {
		return sp, http.StatusBadRequest, err
	}
	sp.Canary = c.Canary
	sp.MaxFailureRate, sp.MinExecutions = c.MaxFailureRate, c.MinExecutions
	if c.RollbackOnAbort != nil {
		v := *c.RollbackOnAbort
		sp.RollbackOnAbort = &v
	}
	if c.Waves == "" {
		c.Waves = "100%"
	}
	if sp.Waves, err = rollout.ParseWaves(c.Waves); err != nil {
		return sp, http.StatusBadRequest, err
	}
	if sp.Shadow, err = c.ShadowSpec(); err != nil {
		return sp, http.StatusBadRequest, err
	}
	if c.MaxFailures != "" {
		if sp.MaxFailures, err = rollout.ParseThreshold(c.MaxFailures); err != nil {
			return sp, http.StatusBadRequest, err
		}
	}
	for _, d := range []struct {
		name string
		in   string
		out  *time.Duration
		def  time.Duration
	}{{"health_window", c.HealthWindow, &sp.HealthWindow, o.HealthWindow}, {"job_timeout", c.JobTimeout, &sp.JobTimeout, o.JobTimeout}} {
		if d.in == "" {
			*d.out = d.def
			continue
		}
		if *d.out, err = time.ParseDuration(d.in); err != nil {
			return sp, http.StatusBadRequest, fmt.Errorf("%s: %q is not a duration like 2m", d.name, d.in)
		}
	}
	need := sp.HealthWindow
	if sp.Shadow != nil {
		need += time.Duration(sp.Shadow.DurationS * float64(time.Second))
	}
	if c.JobTimeout == "" && need >= sp.JobTimeout {
		sp.JobTimeout = 0 // a default shorter than the asked health window (and shadow phase): the engine's (twice those)
	}
	return sp, 0, nil
}

func (s *Server) rolloutCreate(w http.ResponseWriter, r *http.Request) {
	var c rest.CreateRollout
	b, err := io.ReadAll(r.Body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "read body: %v", err)
		return
	}
	if err := api.Decode(b, &c); err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	sp, code, err := rolloutSpec(r, s.opt.OTA, &c)
	if err != nil {
		writeError(w, code, "%v", err)
		return
	}
	sum, err := s.opt.OTA.Rollouts.CreateBy(r.Context(), sp, s.operatorName(r))
	if err != nil {
		writeError(w, rolloutStatus(err), "%v", err)
		return
	}
	writeJSON(w, http.StatusCreated, restSummary(sum))
}

func rolloutStatus(err error) int {
	switch {
	case errors.Is(err, rollout.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, rollout.ErrState):
		return http.StatusConflict
	case errors.Is(err, rollout.ErrNoTargets):
		return http.StatusUnprocessableEntity
	case errors.Is(err, rollout.ErrClosed):
		return http.StatusServiceUnavailable
	}
	return http.StatusBadRequest
}

func (s *Server) rolloutList(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, rest.RolloutList{Rollouts: restSummaries(s.opt.OTA.Rollouts.List())})
}

func (s *Server) rolloutShow(w http.ResponseWriter, r *http.Request) {
	ro, err := s.opt.OTA.Rollouts.Get(r.PathValue("id"))
	if err != nil {
		writeError(w, rolloutStatus(err), "%v", err)
		return
	}
	writeJSON(w, http.StatusOK, restRollout(ro))
}

// operatorName is who the request's token belongs to, for a rollout's
// history: the operator's name, or rollout.ActorOperator if it has none.
func (s *Server) operatorName(r *http.Request) string {
	if op, ok := s.operator(r); ok && op != "" {
		return op
	}
	return rollout.ActorOperator
}

// rolloutAction applies pause, resume, abort or rollback for the operator
// the token names. Every action takes an optional {"reason"} body, kept in
// the rollout's history (and, for abort, as its reason); accept takes
// {"device", "reason"} and answers rest.Accepted.
func (s *Server) rolloutAction(w http.ResponseWriter, r *http.Request) {
	var kind rollout.ActionKind
	switch a := r.PathValue("action"); a {
	case rest.ActionPause, rest.ActionResume, rest.ActionAbort, rest.ActionRollback, rest.ActionAccept:
		kind = rollout.ActionKind(a)
	default:
		writeError(w, http.StatusNotFound, "unknown action %q (pause, resume, abort, rollback, accept)", a)
		return
	}
	var body rest.Accept // rest.Abort's reason, and an accept's device
	b, err := io.ReadAll(r.Body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "read body: %v", err)
		return
	}
	if len(strings.TrimSpace(string(b))) > 0 {
		if kind == rollout.ActionAccept {
			err = api.Decode(b, &body)
		} else {
			var ab rest.Abort
			err = api.Decode(b, &ab)
			body.Reason = ab.Reason
		}
		if err != nil {
			writeError(w, http.StatusBadRequest, "%v", err)
			return
		}
	}
	if kind == rollout.ActionAccept && body.Device == "" {
		writeError(w, http.StatusBadRequest, "accept: the body must name the device: {\"device\": \"box-17\"}")
		return
	}
	sum, err := s.opt.OTA.Rollouts.Act(r.Context(), r.PathValue("id"),
		rollout.Action{Kind: kind, By: s.operatorName(r), Reason: strings.TrimSpace(body.Reason), Device: body.Device})
	if err != nil {
		writeError(w, rolloutStatus(err), "%v", err)
		return
	}
	if kind == rollout.ActionAccept {
		writeJSON(w, http.StatusOK, rest.Accepted{RolloutSummary: restSummary(sum), Device: body.Device})
		return
	}
	writeJSON(w, http.StatusOK, restSummary(sum))
}
