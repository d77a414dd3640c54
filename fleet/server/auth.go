package server

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"edgefleet/fleet/api"
	"edgefleet/fleet/api/rest"
	"edgefleet/fleet/audit"
	"edgefleet/fleet/operator"
)

// Operators authenticates operator tokens and manages them for the token
// routes (operator.Store satisfies it).
type Operators interface {
	Create(ctx context.Context, name string, role operator.Role) (string, operator.Token, error)
	Authenticate(ctx context.Context, token string) (operator.Identity, error)
	List(ctx context.Context) ([]operator.Token, error)
	Revoke(ctx context.Context, name string) error
}

// AuditLog records operator actions (audit.Log satisfies it).
type AuditLog interface {
	Record(ctx context.Context, e audit.Entry) (audit.Entry, error)
	List(ctx context.Context, q audit.Query) ([]audit.Entry, error)
}

var (
	_ Operators = operator.Store(nil)
	_ AuditLog  = audit.Log(nil)
)

// access is what a route needs of its caller, and how it is audited.
type access struct {
	role operator.Role
	// action names the route in the audit log; "" leaves it out (reads,
	// tickets). ".{action}" at its end is replaced by that path value.
	action string
	// ticket lets a live-feed ticket stand in for the token.
	ticket bool
	// target reads the audited target and detail from the request and the
	// answer's body; nil means the path values.
	target func(r *http.Request, body []byte) (target, detail string)
}

// routeAccess is the role each operator route needs. Reads need a viewer;
// pushes, deletes and rollouts an operator; tokens, devices and keys an
// admin. A route missing here needs a viewer for GET and an admin for
// anything else, and is audited under its pattern (a test insists that
// every route is listed).
var routeAccess = map[string]access{
	"GET /api/v1/whoami":                                 {role: operator.Viewer},
	"GET /api/v1/fleet":                                  {role: operator.Viewer},
	"GET /api/v1/devices":                                {role: operator.Viewer},
	"GET /api/v1/devices/{id}":                           {role: operator.Viewer},
	"GET /api/v1/devices/{id}/telemetry":                 {role: operator.Viewer},
	"GET /api/v1/devices/{id}/cameras/{camera}/snapshot": {role: operator.Viewer},
	"GET /api/v1/devices/{id}/jobs":                      {role: operator.Viewer},
	"DELETE /api/v1/devices/{id}":                        {role: operator.Admin, action: "device.decommission"},
	"POST /api/v1/devices":                               {role: operator.Admin, action: "device.add", target: deviceAddTarget}, // extra.go
	"POST /api/v1/devices/{id}/revoke":                   {role: operator.Admin, action: "device.revoke"},
	"GET /api/v1/detections":                             {role: operator.Viewer},
	"GET /api/v1/detections/count":                       {role: operator.Viewer},
	"GET /api/v1/detections/export":                      {role: operator.Viewer},
	"GET /api/v1/detections/stream":                      {role: operator.Viewer, ticket: true},
	"POST /api/v1/live/ticket":                           {role: operator.Viewer},
	"GET /api/v1/events":                                 {role: operator.Viewer}, // events.go
	"GET /api/v1/events/{device}/{seq}/snapshot":         {role: operator.Viewer},
	"GET /api/v1/counts":                                 {role: operator.Viewer},
	"GET /api/v1/models":                                 {role: operator.Viewer},
	"GET /api/v1/models/{name}/{version}":                {role: operator.Viewer},
	"POST /api/v1/models":                                {role: operator.Operator, action: "model.push", target: pushTarget},
	"DELETE /api/v1/models/{name}/{version}":             {role: operator.Operator, action: "model.delete", target: artifactTarget},
	"GET /api/v1/firmware":                               {role: operator.Viewer},
	"GET /api/v1/firmware/{name}/{version}":              {role: operator.Viewer},
	"POST /api/v1/firmware":                              {role: operator.Operator, action: "firmware.push", target: pushTarget},
	"DELETE /api/v1/firmware/{name}/{version}":           {role: operator.Operator, action: "firmware.delete", target: artifactTarget},
	// The public keys agents pin are no secret; changing keys needs an admin.
	"GET /api/v1/keys":                                              {role: operator.Viewer},
	"GET /api/v1/keys/{id}":                                         {role: operator.Viewer},
	"POST /api/v1/keys/rotate":                                      {role: operator.Admin, action: "key.rotate", target: keyTarget},
	"GET /api/v1/rollouts":                                          {role: operator.Viewer},
	"GET /api/v1/rollouts/{id}":                                     {role: operator.Viewer},
	"POST /api/v1/rollouts":                                         {role: operator.Operator, action: "rollout.create", target: rolloutTarget},
	"POST /api/v1/rollouts/{id}/{action}":                           {role: operator.Operator, action: "rollout.{action}", target: rolloutTarget},
	"GET /api/v1/rollouts/{id}/shadow":                              {role: operator.Viewer},
	"GET /api/v1/rollouts/{id}/devices/{device}/shadow/samples/{n}": {role: operator.Viewer},
	"GET /api/v1/tokens":                                            {role: operator.Admin},
	"POST /api/v1/tokens":                                           {role: operator.Admin, action: "token.create", target: tokenTarget},
	"DELETE /api/v1/tokens/{name}":                                  {role: operator.Admin, action: "token.revoke"},
	// Operators see who did what to their rollouts; the log holds no secret.
	"GET /api/v1/audit": {role: operator.Operator},
}

// accessFor returns a route's access, with the default for one not listed.
func accessFor(pattern string) (access, bool) {
	if a, ok := routeAccess[pattern]; ok {
		return a, true
	}
	method, _, _ := strings.Cut(pattern, " ")
	if method == http.MethodGet || method == http.MethodHead {
		return access{role: operator.Viewer}, false
	}
	return access{role: operator.Admin, action: pattern}, false
}

// statusWriter records the status for metrics, and the start of the
// body for the audit log when keep > 0.
type statusWriter struct {
	http.ResponseWriter
	code int
	keep int
	body bytes.Buffer
}

func (w *statusWriter) WriteHeader(c int) { w.code = c; w.ResponseWriter.WriteHeader(c) }
func (w *statusWriter) Write(b []byte) (int, error) {
	if n := min(len(b), w.keep-w.body.Len()); n > 0 {
		w.body.Write(b[:n])
	}
	return w.ResponseWriter.Write(b)
}
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// handle registers h under pattern; with auth it first authenticates the
// operator and checks the role routeAccess names, then audits the call.
func (s *Server) handle(pattern string, auth bool, h http.HandlerFunc) {
	route := pattern
	if auth {
		s.authRoutes = append(s.authRoutes, pattern)
	}
	acc, _ := accessFor(pattern)
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, code: 200}
		defer func() { s.requests.WithLabelValues(route, strconv.Itoa(sw.code)).Inc() }()
		if !auth {
			h(sw, r)
			return
		}
		id, ok := s.authenticate(sw, r, acc)
		if !ok {
			return
		}
		if acc.action != "" {
			sw.keep = 256 << 10 // a model's view with its manifest fits
		}
		if !id.Role.Allows(acc.role) {
			writeError(sw, http.StatusForbidden, "this needs the %s role; %s is %s", acc.role, id.Name, id.Role)
			s.audit(r, id, acc, sw)
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), identityKey{}, id))
		h(sw, r)
		s.audit(r, id, acc, sw)
	})
}

type identityKey struct{}

// queryTokens are query parameters a token must never come in.
var queryTokens = []string{"access_token", "token"}

// authenticate returns the identity of the request's bearer token (or
// live-feed ticket where acc allows one); otherwise it answers 401.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request, acc access) (operator.Identity, bool) {
	refuse := func(code int, format string, args ...any) (operator.Identity, bool) {
		if code == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="fleetd"`)
		}
		writeError(w, code, format, args...)
		return operator.Identity{}, false
	}
	q := r.URL.Query()
	for _, k := range queryTokens {
		if q.Has(k) {
			return refuse(http.StatusUnauthorized, "a token in the URL (%s=) is refused: send it in the Authorization header (Bearer); the live feed takes a ticket from POST /api/v1/live/ticket", k)
		}
	}
	tok, hasTok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !hasTok && acc.ticket && q.Has("ticket") {
		id, err := s.tickets.Redeem(r.Context(), q.Get("ticket"))
		if errors.Is(err, operator.ErrBadTicket) {
			return refuse(http.StatusUnauthorized, "unknown, used or expired live-feed ticket: get a new one from POST /api/v1/live/ticket")
		} else if err != nil {
			s.log.Error("live-feed tickets", "err", err)
			return refuse(http.StatusServiceUnavailable, "live-feed tickets unavailable: %v", err)
		}
		return id, true
	}
	id, err := s.ops.Authenticate(r.Context(), strings.TrimSpace(tok))
	switch {
	case errors.Is(err, operator.ErrUnknownToken):
		return refuse(http.StatusUnauthorized, "missing or unknown operator token")
	case err != nil:
		s.log.Error("operator tokens", "err", err)
		return refuse(http.StatusServiceUnavailable, "operator tokens unavailable: %v", err)
	}
	return id, true
}

// operator returns the name of the operator the request was authenticated as.
func (s *Server) operator(r *http.Request) (string, bool) {
	id, ok := r.Context().Value(identityKey{}).(operator.Identity)
	return id.Name, ok
}

// audit records an audited route's call with its outcome.
func (s *Server) audit(r *http.Request, id operator.Identity, acc access, sw *statusWriter) {
	if acc.action == "" {
		return
	}
	e := audit.Entry{Operator: id.Name, Role: string(id.Role), Action: acc.action, Status: sw.code, Outcome: audit.OK}
	if a, ok := strings.CutSuffix(e.Action, ".{action}"); ok {
		e.Action = a + "." + r.PathValue("action")
	}
	switch {
	case sw.code == http.StatusForbidden:
		e.Outcome = audit.Refused
	case sw.code >= 400:
		e.Outcome = audit.Failed
	}
	if e.Outcome != audit.OK {
		var re rest.Error
		if json.Unmarshal(sw.body.Bytes(), &re) == nil {
			e.Error = re.Error
		}
	}
	if acc.target != nil {
		e.Target, e.Detail = acc.target(r, sw.body.Bytes())
	}
	if e.Target == "" {
		e.Target = pathValues(r)
	}
	if _, err := s.auditLog.Record(context.WithoutCancel(r.Context()), e); err != nil {
		s.log.Error("audit log", "err", err, "operator", e.Operator, "action", e.Action, "target", e.Target, "status", e.Status)
	}
}

// pathValues joins the request's path wildcards: "yolov8n/2", "r3".
func pathValues(r *http.Request) string {
	var vs []string
	for p := r.Pattern; ; {
		i := strings.IndexByte(p, '{')
		j := strings.IndexByte(p[max(i, 0):], '}')
		if i < 0 || j < 0 {
			break
		}
		name := strings.TrimSuffix(p[i+1:i+j], "...")
		if name != "$" {
			vs = append(vs, r.PathValue(name))
		}
		p = p[i+j+1:]
	}
	return strings.Join(vs, "/")
}

func artifactTarget(r *http.Request, _ []byte) (string, string) {
	return r.PathValue("name") + "@" + r.PathValue("version"), ""
}

func pushTarget(_ *http.Request, body []byte) (string, string) {
	var m rest.Model
	if json.Unmarshal(body, &m) != nil || m.Name == "" {
		return "", ""
	}
	return m.Name + "@" + m.Version, "sha256 " + m.SHA256
}

func rolloutTarget(r *http.Request, body []byte) (string, string) {
	var sum rest.RolloutSummary
	json.Unmarshal(body, &sum)
	id := r.PathValue("id")
	if id == "" {
		id = sum.ID
	}
	detail := ""
	if sum.Name != "" {
		detail = sum.Name + "@" + sum.Version
	}
	if r.PathValue("action") != "" && sum.Reason != "" {
		detail = strings.TrimSpace(detail + " " + sum.State + ": " + sum.Reason)
	}
	if r.PathValue("action") == rest.ActionAccept {
		var acc rest.Accepted
		if json.Unmarshal(body, &acc) == nil && acc.Device != "" {
			detail = strings.TrimSpace(detail + " device " + acc.Device)
		}
	}
	return id, detail
}

// tokenTarget names the token made; the body's token itself is never kept.
func tokenTarget(_ *http.Request, body []byte) (string, string) {
	var c rest.TokenCreated
	if json.Unmarshal(body, &c) != nil || c.Name == "" {
		return "", ""
	}
	return c.Name, "role " + c.Role
}

// identityRoutes registers the routes of operator identity.
func (s *Server) identityRoutes() {
	s.handle("GET /api/v1/whoami", true, s.whoami)
	s.handle("POST /api/v1/live/ticket", true, s.liveTicket)
	s.handle("GET /api/v1/tokens", true, s.tokenList)
	s.handle("POST /api/v1/tokens", true, s.tokenCreate)
	s.handle("DELETE /api/v1/tokens/{name}", true, s.tokenRevoke)
	s.handle("GET /api/v1/audit", true, s.auditList)
}

func identity(r *http.Request) operator.Identity {
	id, _ := r.Context().Value(identityKey{}).(operator.Identity)
	return id
}

func (s *Server) whoami(w http.ResponseWriter, r *http.Request) {
	id := identity(r)
	writeJSON(w, http.StatusOK, rest.Whoami{Name: id.Name, Role: string(id.Role)})
}

func (s *Server) liveTicket(w http.ResponseWriter, r *http.Request) {
	tk, exp, err := s.tickets.Issue(r.Context(), identity(r))
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "%v", err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, rest.LiveTicket{Ticket: tk, ExpiresAt: exp.UTC()})
}

// decodeBody reads a JSON request body strictly into v (unknown fields,
// trailing data and over 1 MiB are errors).
func decodeBody(r *http.Request, v any) error {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	return api.Decode(b, v)
}

func operatorStatus(err error) int {
	switch {
	case errors.Is(err, operator.ErrExists), errors.Is(err, operator.ErrFixed):
		return http.StatusConflict
	case errors.Is(err, operator.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, operator.ErrBadName), errors.Is(err, operator.ErrBadRole), errors.Is(err, audit.ErrBadQuery):
		return http.StatusBadRequest
	case errors.Is(err, operator.ErrClosed), errors.Is(err, audit.ErrClosed):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func (s *Server) tokenCreate(w http.ResponseWriter, r *http.Request) {
	var c rest.CreateToken
	if err := decodeBody(r, &c); err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	if err := c.Check(); err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	tok, t, err := s.ops.Create(r.Context(), c.Name, operator.Role(c.Role))
	if err != nil {
		writeError(w, operatorStatus(err), "%v", err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, rest.TokenCreated{Name: t.Name, Role: string(t.Role), Token: tok, CreatedAt: t.Created})
}

func (s *Server) tokenList(w http.ResponseWriter, r *http.Request) {
	ts, err := s.ops.List(r.Context())
	if err != nil {
		writeError(w, operatorStatus(err), "%v", err)
		return
	}
	out := rest.TokenList{Tokens: []rest.TokenInfo{}}
	for _, t := range ts {
		out.Tokens = append(out.Tokens, rest.TokenInfo{Name: t.Name, Role: string(t.Role), CreatedAt: t.Created, LastUsed: t.LastUsed, Fixed: t.Fixed})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) tokenRevoke(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := s.ops.Revoke(r.Context(), name); err != nil {
		writeError(w, operatorStatus(err), "%v", err)
		return
	}
	writeJSON(w, http.StatusOK, rest.TokenRevoked{Revoked: name})
}

func (s *Server) auditList(w http.ResponseWriter, r *http.Request) {
	var q audit.Query
	v := r.URL.Query()
	var err error
	if b := v.Get("before"); b != "" {
		if q.Before, err = strconv.ParseUint(b, 10, 64); err != nil {
			writeError(w, http.StatusBadRequest, "before: %q is not an entry id", b)
			return
		}
	}
	if l := v.Get("limit"); l != "" {
		if q.Limit, err = strconv.Atoi(l); err != nil || q.Limit < 1 || q.Limit > audit.MaxLimit {
			writeError(w, http.StatusBadRequest, "limit: %q is not in 1..%d", l, audit.MaxLimit)
			return
		}
	}
	es, err := s.auditLog.List(r.Context(), q)
	if err != nil {
		writeError(w, operatorStatus(err), "%v", err)
		return
	}
	out := rest.AuditList{Entries: make([]rest.AuditEntry, len(es))}
	for i, e := range es {
		out.Entries[i] = rest.AuditEntry{ID: e.ID, Time: e.Time, Operator: e.Operator, Role: e.Role, Action: e.Action,
			Target: e.Target, Detail: e.Detail, Outcome: e.Outcome, Status: e.Status, Error: e.Error}
	}
	if limit := cmp.Or(q.Limit, audit.DefaultLimit); len(es) == limit {
		out.Next = es[len(es)-1].ID
	}
	writeJSON(w, http.StatusOK, out)
}
