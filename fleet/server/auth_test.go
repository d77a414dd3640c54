package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"edgefleet/fleet/api"
	"edgefleet/fleet/api/rest"
	"edgefleet/fleet/artifact"
	"edgefleet/fleet/audit"
	"edgefleet/fleet/operator"
	"edgefleet/fleet/registry"
	"edgefleet/fleet/rollout"
	"edgefleet/fleet/store"
	"edgefleet/models/manifest"
	"edgefleet/models/modeltest"
)

// The fixed tokens of the role tests, one per role.
const (
	viewerTok   = "viewer-token-0123456789"
	operatorTok = "operator-token-0123456789"
	adminTok    = "admin-token-0123456789"
)

type authFixture struct {
	s     *Server
	ts    *httptest.Server
	audit *audit.Mem
	eng   *rollout.Engine
}

// setupAuth runs a server with every route (OTA included), a viewer
// "vera", an operator "otto" and an admin "ada".
func setupAuth(t testing.TB) *authFixture {
	t.Helper()
	dir := t.TempDir()
	reg, err := registry.Open(filepath.Join(dir, "reg.db"), registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	for _, id := range []string{"cam-1", "cam-2"} {
		reg.UpdateState(api.State{DeviceID: id, Online: true, Labels: map[string]string{"site": "a"}, Model: "yolov8n", ModelVersion: "1"})
	}
	pub, priv, _ := ed25519.GenerateKey(nil)
	keys := manifest.KeySet{}
	keyID := keys.Add(pub)
	arts, err := artifact.Open(filepath.Join(dir, "artifacts"), artifact.Options{Seal: artifact.Signer(priv, keyID)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { arts.Close() })
	eng, err := rollout.Open(filepath.Join(dir, "rollouts.db"), rollout.Options{Devices: rollout.Registry{R: reg},
		Dispatcher: &recordDispatcher{cmds: map[string][]api.Command{}}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	arts.SetInUse(eng)
	ops, err := operator.WithFixed(operator.NewMem(operator.Options{}), operator.Options{},
		operator.Fixed{Name: "vera", Role: operator.Viewer, Token: viewerTok},
		operator.Fixed{Name: "otto", Role: operator.Operator, Token: operatorTok},
		operator.Fixed{Name: "ada", Role: operator.Admin, Token: adminTok})
	if err != nil {
		t.Fatal(err)
	}
	f := &authFixture{audit: audit.NewMem(audit.Options{}), eng: eng}
	f.s, err = New(Options{Store: store.NewMem(store.Retention{}), Registry: reg, Operators: ops, Audit: f.audit,
		Logger: slog.New(slog.DiscardHandler), OTA: &OTA{Artifacts: arts, Rollouts: eng, Keys: keys, MaxUpload: 8 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	f.ts = httptest.NewServer(f.s)
	t.Cleanup(f.ts.Close)
	return f
}

// call sends a request with a bearer token (none if empty) and returns
// the status and body; a live feed is cut off once its header is in.
func call(t testing.TB, base, method, path, token, ctype string, body io.Reader) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, base+path, body)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") == "text/event-stream" {
		return resp.StatusCode, nil
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// liveTicket gets a live-feed ticket with token.
func liveTicket(t testing.TB, base, token string) string {
	t.Helper()
	code, b := call(t, base, "POST", "/api/v1/live/ticket", token, "", nil)
	var lt rest.LiveTicket
	if code != http.StatusCreated || json.Unmarshal(b, &lt) != nil || !strings.HasPrefix(lt.Ticket, operator.TicketPrefix) {
		t.Fatalf("live ticket: %d %s", code, b)
	}
	return lt.Ticket
}

// samplePath fills a route pattern's wildcards.
func samplePath(pattern string) (method, path string) {
	method, path, _ = strings.Cut(pattern, " ")
	return method, strings.NewReplacer("{id}", "cam-1", "{name}", "nobody", "{version}", "1", "{action}", "pause").Replace(path)
}

// wantError checks an error answer is {error, status} naming want.
func wantError(t testing.TB, what string, code int, body []byte, wantCode int, want string) {
	t.Helper()
	var e rest.Error
	if code != wantCode || json.Unmarshal(body, &e) != nil || e.Status != wantCode || !strings.Contains(e.Error, want) {
		t.Errorf("%s: %d %s; want %d {error, status} containing %q", what, code, body, wantCode, want)
	}
}

// TestRouteRoles calls every route that needs a token with each role, no
// token, and the token in the query string.
func TestRouteRoles(t *testing.T) {
	f := setupAuth(t)
	if len(f.s.authRoutes) < 25 {
		t.Fatalf("only %d routes need a token: %v", len(f.s.authRoutes), f.s.authRoutes)
	}
	callers := []struct {
		name, token string
		role        operator.Role
	}{{"viewer", viewerTok, operator.Viewer}, {"operator", operatorTok, operator.Operator}, {"admin", adminTok, operator.Admin}}
	for _, pattern := range f.s.authRoutes {
		acc, listed := accessFor(pattern)
		if !listed {
			t.Errorf("route %q is not in routeAccess: say which role it needs", pattern)
		}
		method, path := samplePath(pattern)
		t.Run(pattern, func(t *testing.T) {
			code, b := call(t, f.ts.URL, method, path, "", "", nil)
			wantError(t, "no token", code, b, http.StatusUnauthorized, "missing or unknown operator token")
			code, b = call(t, f.ts.URL, method, path, "efo_"+strings.Repeat("A", 43), "", nil)
			wantError(t, "unknown token", code, b, http.StatusUnauthorized, "missing or unknown operator token")
			for _, k := range []string{"access_token", "token"} {
				q := "?"
				if strings.Contains(path, "?") {
					q = "&"
				}
				code, b = call(t, f.ts.URL, method, path+q+k+"="+adminTok, "", "", nil)
				wantError(t, k+" in the query", code, b, http.StatusUnauthorized, "Authorization header")
				code, b = call(t, f.ts.URL, method, path+q+k+"="+adminTok, adminTok, "", nil)
				wantError(t, k+" in the query beside the header", code, b, http.StatusUnauthorized, "Authorization header")
			}
			for _, c := range callers {
				code, b := call(t, f.ts.URL, method, path, c.token, "", nil)
				if c.role.Allows(acc.role) {
					if code == http.StatusUnauthorized || code == http.StatusForbidden {
						t.Errorf("%s: %d %s; the role allows it", c.name, code, b)
					}
					continue
				}
				wantError(t, c.name, code, b, http.StatusForbidden, "needs the "+string(acc.role)+" role")
			}
		})
	}
	// Routes outside the operator API keep their own rules.
	for _, path := range []string{"/healthz", "/metrics", "/api/openapi.json", "/"} {
		if code, b := call(t, f.ts.URL, "GET", path, "", "", nil); code != http.StatusOK {
			t.Errorf("GET %s without a token: %d %s", path, code, b)
		}
	}
	if code, _ := call(t, f.ts.URL, "GET", artifact.URL(strings.Repeat("a", 64)), adminTok, "", nil); code != http.StatusUnauthorized {
		t.Errorf("artifact download with an operator token and no device credentials: %d", code)
	}
}

// TestMustShow is issue 12's: a viewer creating a rollout gets 403, a
// token in a query string 401; the refusal is in the audit log.
func TestMustShow(t *testing.T) {
	f := setupAuth(t)
	body := `{"model":"yolov8n@2","selector":"site=a","canary":1,"waves":"100%"}`
	code, b := call(t, f.ts.URL, "POST", "/api/v1/rollouts", viewerTok, "application/json", strings.NewReader(body))
	wantError(t, "viewer creates a rollout", code, b, http.StatusForbidden, "this needs the operator role; vera is viewer")
	code, b = call(t, f.ts.URL, "GET", "/api/v1/rollouts?access_token="+operatorTok, "", "", nil)
	wantError(t, "token in the query string", code, b, http.StatusUnauthorized, "send it in the Authorization header")
	es, _ := f.audit.List(context.Background(), audit.Query{})
	if len(es) != 1 || es[0].Operator != "vera" || es[0].Role != "viewer" || es[0].Action != "rollout.create" ||
		es[0].Outcome != audit.Refused || es[0].Status != 403 || !strings.Contains(es[0].Error, "needs the operator role") {
		t.Fatalf("audit log %+v; want vera's refused rollout.create", es)
	}
}

func pushModel(t *testing.T, base, token string, model []byte) (int, []byte) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.WriteField("name", "yolov8n")
	mw.WriteField("version", "2")
	w, _ := mw.CreateFormFile("file", "model.tflite")
	w.Write(model)
	mw.Close()
	return call(t, base, "POST", "/api/v1/models", token, mw.FormDataContentType(), &buf)
}

// TestAuditLog makes each kind of change through the API and reads the
// audit log back over REST.
func TestAuditLog(t *testing.T) {
	model, err := os.ReadFile(modeltest.Path(t, "models", "yolov8n_int8.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	f := setupAuth(t)
	base := f.ts.URL
	must := func(what string, code int, b []byte, want int) {
		t.Helper()
		if code != want {
			t.Fatalf("%s: %d %s, want %d", what, code, b, want)
		}
	}
	code, b := pushModel(t, base, operatorTok, model)
	must("push", code, b, 201)
	var mv rest.Model
	json.Unmarshal(b, &mv)
	code, b = call(t, base, "POST", "/api/v1/rollouts", operatorTok, "application/json", strings.NewReader(`{"model":"yolov8n@2","canary":1,"waves":"100%"}`))
	must("create", code, b, 201)
	var sum rest.RolloutSummary
	json.Unmarshal(b, &sum)
	code, b = call(t, base, "POST", "/api/v1/rollouts/"+sum.ID+"/abort", operatorTok, "application/json", strings.NewReader(`{"reason":"wrong line"}`))
	must("abort", code, b, 200)
	code, b = call(t, base, "POST", "/api/v1/rollouts", operatorTok, "application/json", strings.NewReader(`{"model":"nothing@9"}`))
	must("create of a missing model", code, b, 404)
	code, b = call(t, base, "POST", "/api/v1/tokens", adminTok, "application/json", strings.NewReader(`{"name":"carol","role":"viewer"}`))
	must("token create", code, b, 201)
	var tc rest.TokenCreated
	json.Unmarshal(b, &tc)
	code, b = call(t, base, "DELETE", "/api/v1/tokens/carol", adminTok, "", nil)
	must("token revoke", code, b, 200)
	code, b = call(t, base, "DELETE", "/api/v1/models/yolov8n/2", viewerTok, "", nil)
	must("viewer delete", code, b, 403)
	call(t, base, "GET", "/api/v1/rollouts", operatorTok, "", nil) // reads are not audited

	code, b = call(t, base, "GET", "/api/v1/audit", viewerTok, "", nil)
	wantError(t, "viewer reads the audit log", code, b, 403, "needs the operator role")
	code, b = call(t, base, "GET", "/api/v1/audit?limit=50", operatorTok, "", nil)
	must("audit", code, b, 200)
	if bytes.Contains(b, []byte(tc.Token)) || bytes.Contains(b, []byte(adminTok)) {
		t.Fatalf("the audit log shows a token: %s", b)
	}
	var al rest.AuditList
	if err := json.Unmarshal(b, &al); err != nil {
		t.Fatal(err)
	}
	want := []rest.AuditEntry{
		{Operator: "vera", Role: "viewer", Action: "model.delete", Target: "yolov8n@2", Outcome: "refused", Status: 403},
		{Operator: "ada", Role: "admin", Action: "token.revoke", Target: "carol", Outcome: "ok", Status: 200},
		{Operator: "ada", Role: "admin", Action: "token.create", Target: "carol", Detail: "role viewer", Outcome: "ok", Status: 201},
		{Operator: "otto", Role: "operator", Action: "rollout.create", Outcome: "failed", Status: 404},
		{Operator: "otto", Role: "operator", Action: "rollout.abort", Target: sum.ID, Outcome: "ok", Status: 200},
		{Operator: "otto", Role: "operator", Action: "rollout.create", Target: sum.ID, Detail: "yolov8n@2", Outcome: "ok", Status: 201},
		{Operator: "otto", Role: "operator", Action: "model.push", Target: "yolov8n@2", Detail: "sha256 " + mv.SHA256, Outcome: "ok", Status: 201},
	}
	if len(al.Entries) != len(want) || al.Next != 0 {
		t.Fatalf("%d entries (next %d), want %d: %+v", len(al.Entries), al.Next, len(want), al.Entries)
	}
	for i, w := range want {
		g := al.Entries[i]
		if g.Operator != w.Operator || g.Role != w.Role || g.Action != w.Action || g.Outcome != w.Outcome || g.Status != w.Status ||
			(w.Target != "" && g.Target != w.Target) || (w.Detail != "" && !strings.HasPrefix(g.Detail, w.Detail)) || g.Time.IsZero() {
			t.Errorf("entry %d:\n got  %+v\n want %+v", i, g, w)
		}
		if (w.Outcome == "ok") != (g.Error == "") {
			t.Errorf("entry %d: error %q with outcome %s", i, g.Error, g.Outcome)
		}
	}
	if e := al.Entries[4]; !strings.Contains(e.Detail, "wrong line") {
		t.Errorf("abort entry %+v lacks the reason", e)
	}
	code, b = call(t, base, "GET", "/api/v1/audit?limit=2", adminTok, "", nil)
	json.Unmarshal(b, &al)
	if code != 200 || len(al.Entries) != 2 || al.Next != al.Entries[1].ID {
		t.Fatalf("first page: %d %s", code, b)
	}
	code, b = call(t, base, "GET", "/api/v1/audit?limit=2&before="+strconv.FormatUint(al.Next, 10), adminTok, "", nil)
	var page2 rest.AuditList
	json.Unmarshal(b, &page2)
	if code != 200 || len(page2.Entries) != 2 || page2.Entries[0].ID >= al.Next {
		t.Fatalf("second page: %d %s", code, b)
	}
	for _, q := range []string{"limit=0", "limit=1001", "limit=x", "before=-1"} {
		code, b = call(t, base, "GET", "/api/v1/audit?"+q, adminTok, "", nil)
		wantError(t, q, code, b, 400, strings.Split(q, "=")[0])
	}
}

// TestTokens makes, uses, lists and revokes a token over REST.
func TestTokens(t *testing.T) {
	f := setupAuth(t)
	base := f.ts.URL
	code, b := call(t, base, "POST", "/api/v1/tokens", operatorTok, "application/json", strings.NewReader(`{"name":"carol","role":"admin"}`))
	wantError(t, "an operator makes a token", code, b, 403, "needs the admin role")
	code, b = call(t, base, "POST", "/api/v1/tokens", adminTok, "application/json", strings.NewReader(`{"name":"carol","role":"operator"}`))
	var tc rest.TokenCreated
	if code != 201 || json.Unmarshal(b, &tc) != nil || !strings.HasPrefix(tc.Token, operator.Prefix) || tc.Role != "operator" {
		t.Fatalf("create: %d %s", code, b)
	}
	code, b = call(t, base, "GET", "/api/v1/whoami", tc.Token, "", nil)
	if code != 200 || !strings.Contains(string(b), `"name": "carol"`) || !strings.Contains(string(b), `"role": "operator"`) {
		t.Fatalf("whoami with the new token: %d %s", code, b)
	}
	for _, c := range []struct {
		body string
		code int
		want string
	}{
		{`{"name":"carol","role":"viewer"}`, 409, "already has a token"},
		{`{"name":"ada","role":"viewer"}`, 409, "in fleetd's configuration"},
		{`{"name":"x y","role":"viewer"}`, 400, "name"},
		{`{"name":"dave","role":"root"}`, 400, "role"},
		{`{"name":"dave","role":"viewer","token":"mine"}`, 400, "unknown field"},
		{`{"name":"dave"`, 400, "decode"},
	} {
		code, b = call(t, base, "POST", "/api/v1/tokens", adminTok, "application/json", strings.NewReader(c.body))
		wantError(t, c.body, code, b, c.code, c.want)
	}
	code, b = call(t, base, "GET", "/api/v1/tokens", adminTok, "", nil)
	var tl rest.TokenList
	if code != 200 || json.Unmarshal(b, &tl) != nil || len(tl.Tokens) != 4 || bytes.Contains(b, []byte(tc.Token)) {
		t.Fatalf("list: %d %s", code, b)
	}
	if c := tl.Tokens[1]; c.Name != "carol" || c.Fixed || c.LastUsed.IsZero() || c.CreatedAt.IsZero() || !tl.Tokens[0].Fixed {
		t.Errorf("listed %+v", tl.Tokens)
	}
	code, b = call(t, base, "DELETE", "/api/v1/tokens/ada", adminTok, "", nil)
	wantError(t, "revoke a fixed token", code, b, 409, "fleetd.yaml")
	if code, b = call(t, base, "DELETE", "/api/v1/tokens/carol", adminTok, "", nil); code != 200 {
		t.Fatalf("revoke: %d %s", code, b)
	}
	code, b = call(t, base, "GET", "/api/v1/whoami", tc.Token, "", nil)
	wantError(t, "a revoked token", code, b, 401, "unknown operator token")
}

// TestLiveTicket: the feed takes a ticket once, in place of the header;
// a ticket is no token anywhere else.
func TestLiveTicket(t *testing.T) {
	f := setupAuth(t)
	base := f.ts.URL
	tk := liveTicket(t, base, viewerTok)
	if code, b := call(t, base, "GET", "/api/v1/detections/stream?ticket="+tk, "", "", nil); code != 200 {
		t.Fatalf("feed with a ticket: %d %s", code, b)
	}
	code, b := call(t, base, "GET", "/api/v1/detections/stream?ticket="+tk, "", "", nil)
	wantError(t, "a used ticket", code, b, 401, "ticket")
	tk = liveTicket(t, base, viewerTok)
	code, b = call(t, base, "GET", "/api/v1/devices?ticket="+tk, "", "", nil)
	wantError(t, "a ticket on another route", code, b, 401, "missing or unknown operator token")
	code, b = call(t, base, "GET", "/api/v1/devices", tk, "", nil)
	wantError(t, "a ticket as a bearer token", code, b, 401, "missing or unknown operator token")
	code, b = call(t, base, "GET", "/api/v1/detections/stream?ticket="+tk+"&access_token="+viewerTok, "", "", nil)
	wantError(t, "a ticket beside a query token", code, b, 401, "Authorization header")
	if code, b := call(t, base, "GET", "/api/v1/detections/stream", viewerTok, "", nil); code != 200 {
		t.Fatalf("feed with the header (fleetctl): %d %s", code, b)
	}
	code, b = call(t, base, "POST", "/api/v1/live/ticket", "", "", nil)
	wantError(t, "a ticket without a token", code, b, 401, "operator token")
	if es, _ := f.audit.List(context.Background(), audit.Query{}); len(es) != 0 {
		t.Errorf("tickets are not audited actions: %+v", es)
	}
}

// FuzzDecodeBodies sends arbitrary bodies to every route that decodes a
// request body (JSON, and the multipart uploads): the answer is a 2xx or a 4xx with a JSON reason,
// never a panic or a 5xx.
func FuzzDecodeBodies(f *testing.F) {
	routes := []string{
		"POST /api/v1/rollouts",
		"POST /api/v1/rollouts/r1/pause",
		"POST /api/v1/rollouts/r1/resume",
		"POST /api/v1/rollouts/r1/abort",
		"POST /api/v1/rollouts/r1/rollback",
		"POST /api/v1/tokens",
		"POST /api/v1/models", // multipart, boundary fuzzb
		"POST /api/v1/firmware",
	}
	part := func(name, v string) string {
		return "--fuzzb\r\nContent-Disposition: form-data; name=\"" + name + "\"\r\n\r\n" + v + "\r\n"
	}
	seeds := []string{
		part("name", "m") + part("version", "2") + part("labels", "a\nb") + "--fuzzb\r\nContent-Disposition: form-data; name=\"file\"; filename=\"m.tflite\"\r\n\r\nTFL3\x00\x01\r\n--fuzzb--\r\n",
		part("name", "agent") + part("version", "3") + part("os", "linux") + part("arch", "arm64") + "--fuzzb--\r\n",
		part("bogus", "x") + "--fuzzb--\r\n",
		`{"model":"yolov8n@2","selector":"site=a","canary":1,"waves":"10%,100%","max_failures":"5%","health_window":"2m","job_timeout":"30m"}`,
		`{"firmware":"agent@3","max_failure_rate":0.05,"min_executions":10,"rollback_on_abort":false}`,
		`{"reason":"bad model"}`,
		`{"name":"carol","role":"viewer"}`,
		`{"name":"a@b.c","role":"admin"}`,
		``, `null`, `[]`, `{"model":1}`, `{"name":"x"} {}`, "{\"name\":\"\xff\"}", `{"canary":-1,"waves":"0%"}`,
	}
	for i := range routes {
		for _, s := range seeds {
			f.Add(uint8(i), []byte(s))
		}
	}
	fx := setupAuth(f)
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		method, path, _ := strings.Cut(routes[int(route)%len(routes)], " ")
		req := httptest.NewRequest(method, path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+adminTok)
		req.Header.Set("Content-Type", "application/json")
		if strings.HasSuffix(path, "/models") || strings.HasSuffix(path, "/firmware") {
			req.Header.Set("Content-Type", "multipart/form-data; boundary=fuzzb")
		}
		rec := httptest.NewRecorder()
		fx.s.ServeHTTP(rec, req)
		if rec.Code >= 500 || rec.Code < 200 {
			t.Fatalf("%s %s %q: %d %s", method, path, body, rec.Code, rec.Body)
		}
		if rec.Code >= 300 {
			var e rest.Error
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Status != rec.Code || e.Error == "" {
				t.Fatalf("%s %s %q: %d answer %q is not {error, status}", method, path, body, rec.Code, rec.Body)
			}
		}
		// The contract's own checks take whatever decodes.
		var c rest.CreateRollout
		if api.Decode(body, &c) == nil {
			c.Check()
		}
		var ct rest.CreateToken
		if api.Decode(body, &ct) == nil && ct.Check() == nil {
			if operator.CheckName(ct.Name) != nil {
				t.Fatalf("rest.CreateToken.Check passes name %q that the store refuses", ct.Name)
			}
		}
	})
}

// TestOpenAPIRoutes: the served OpenAPI description has every route that
// needs a token, and offers no token in the URL.
func TestOpenAPIRoutes(t *testing.T) {
	f := setupAuth(t)
	code, b := call(t, f.ts.URL, "GET", "/api/openapi.json", "", "", nil)
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(b, &doc); code != 200 || err != nil {
		t.Fatalf("openapi: %d %v", code, err)
	}
	for _, pattern := range f.s.authRoutes {
		method, path, _ := strings.Cut(pattern, " ")
		if _, ok := doc.Paths[path][strings.ToLower(method)]; !ok {
			t.Errorf("openapi.json lacks %s", pattern)
		}
	}
	for _, k := range queryTokens {
		if bytes.Contains(b, []byte(`"name": "`+k+`"`)) {
			t.Errorf("openapi.json offers a %s parameter", k)
		}
	}
}
