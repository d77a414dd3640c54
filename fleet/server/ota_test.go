package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"edgefleet/fleet/api"
	"edgefleet/fleet/api/rest"
	"edgefleet/fleet/artifact"
	"edgefleet/fleet/registry"
	"edgefleet/fleet/rollout"
	"edgefleet/fleet/store"
	"edgefleet/models/manifest"
	"edgefleet/models/modeltest"
)

type recordDispatcher struct {
	mu   sync.Mutex
	cmds map[string][]api.Command
}

func (d *recordDispatcher) Dispatch(_ context.Context, dev string, cmd api.Command) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cmds[dev] = append(d.cmds[dev], cmd)
	return nil
}

type otaFixture struct {
	ts   *httptest.Server
	eng  *rollout.Engine
	disp *recordDispatcher
	keys manifest.KeySet
}

func setupOTA(t *testing.T) *otaFixture {
	t.Helper()
	dir := t.TempDir()
	reg, err := registry.Open(filepath.Join(dir, "reg.db"), registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	for _, d := range []api.State{
		{DeviceID: "cam-1", Online: true, Labels: map[string]string{"site": "a"}, Model: "yolov8n", ModelVersion: "1"},
		{DeviceID: "cam-2", Online: true, Labels: map[string]string{"site": "a"}, Model: "yolov8n", ModelVersion: "1"},
		{DeviceID: "cam-3", Online: true, Labels: map[string]string{"site": "b"}, Model: "yolov8n", ModelVersion: "1"},
	} {
		reg.UpdateState(d)
	}
	pub, priv, _ := ed25519.GenerateKey(nil)
	keys := manifest.KeySet{}
	keyID := keys.Add(pub)
	arts, err := artifact.Open(filepath.Join(dir, "artifacts"), artifact.Options{Seal: artifact.Signer(priv, keyID)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { arts.Close() })
	disp := &recordDispatcher{cmds: map[string][]api.Command{}}
	eng, err := rollout.Open(filepath.Join(dir, "rollouts.db"), rollout.Options{Devices: rollout.Registry{R: reg}, Dispatcher: disp, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	arts.SetInUse(eng)
	auth := artifact.AuthFunc(func(_ context.Context, id string, tok []byte) error {
		if strings.HasPrefix(id, "cam-") && string(tok) == "dev-pass" {
			return nil
		}
		return errors.New("bad")
	})
	f := &otaFixture{eng: eng, disp: disp, keys: keys}
	s, err := New(Options{Store: store.NewMem(store.Retention{}), Registry: reg, Tokens: map[string]string{tok: "alice"},
		Logger: slog.New(slog.DiscardHandler),
		OTA: &OTA{Artifacts: arts, Rollouts: eng, Keys: keys, DeviceAuth: auth, ArtifactBase: "http://fleetd.test/", MaxUpload: 8 << 20,
			HealthWindow: 90 * time.Second, JobTimeout: 10 * time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	f.ts = httptest.NewServer(s)
	t.Cleanup(f.ts.Close)
	return f
}

func (f *otaFixture) call(t *testing.T, method, path, token, ctype string, body io.Reader) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, f.ts.URL+path, body)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := f.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func multipartBody(t *testing.T, fields [][2]string, file []byte) (string, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, f := range fields {
		mw.WriteField(f[0], f[1])
	}
	if file != nil {
		w, _ := mw.CreateFormFile("file", "model.tflite")
		w.Write(file)
	}
	mw.Close()
	return mw.FormDataContentType(), &buf
}

func TestOTARoutes(t *testing.T) {
	model, err := os.ReadFile(modeltest.Path(t, "models", "yolov8n_int8.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	labels, _ := os.ReadFile(modeltest.Path(t, "models", "coco80.txt"))
	f := setupOTA(t)

	ct, body := multipartBody(t, [][2]string{{"name", "yolov8n"}, {"version", "2"}, {"labels", string(labels)}}, model)
	code, b := f.call(t, "POST", "/api/v1/models", tok, ct, body)
	if code != http.StatusCreated {
		t.Fatalf("push: %d %s", code, b)
	}
	var mv rest.Model
	json.Unmarshal(b, &mv)
	man, err := manifest.Verify(f.keys, mv.Manifest, mv.Signature, mv.KeyID)
	if err != nil {
		t.Fatalf("pushed model's manifest: %v", err)
	}
	if mv.Labels != 80 || len(mv.Inputs) != 1 || man.Size != int64(len(model)) || man.Labels[0] != "person" {
		t.Fatalf("model view %+v", mv)
	}

	refusedPushes(t, f, model)
	if code, b := f.call(t, "GET", "/api/v1/models", tok, "", nil); code != 200 || !strings.Contains(string(b), `"name": "yolov8n"`) || strings.Contains(string(b), `"m"`) {
		t.Fatalf("list: %d %s", code, b)
	}
	if code, b := f.call(t, "GET", "/api/v1/keys", tok, "", nil); code != 200 || !strings.Contains(string(b), mv.KeyID) || !strings.Contains(string(b), "BEGIN PUBLIC KEY") {
		t.Fatalf("keys: %d %s", code, b)
	}

	refusedCreates(t, f)
	code, b = f.call(t, "POST", "/api/v1/rollouts", tok, "application/json",
		strings.NewReader(`{"model":"yolov8n@2","selector":"site=a","canary":1,"waves":"50%,100%","max_failures":"1","health_window":"2m"}`))
	if code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, b)
	}
	var sum rollout.Summary
	json.Unmarshal(b, &sum)
	if sum.Targets != 2 || sum.State != rollout.StatePending {
		t.Fatalf("summary %+v", sum)
	}
	f.eng.Step(context.Background())
	f.disp.mu.Lock()
	cmds := f.disp.cmds["cam-1"]
	f.disp.mu.Unlock()
	if len(cmds) != 1 || cmds[0].Artifact.URL != "http://fleetd.test/artifacts/"+mv.SHA256 || cmds[0].HealthWindowS != 120 {
		t.Fatalf("commands to cam-1: %+v", cmds)
	}
	if _, err := manifest.Verify(f.keys, cmds[0].Artifact.Manifest, cmds[0].Artifact.Sig, cmds[0].Artifact.KeyID); err != nil {
		t.Fatalf("command's manifest: %v", err)
	}

	// The device downloads the artifact with its own credentials, resuming with Range.
	req, _ := http.NewRequest("GET", f.ts.URL+artifact.URL(mv.SHA256), nil)
	req.SetBasicAuth("cam-1", "dev-pass")
	req.Header.Set("Range", "bytes=1000-")
	resp, err := f.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(got, model[1000:]) {
		t.Fatalf("download: %d, %d bytes", resp.StatusCode, len(got))
	}
	if code, _ := f.call(t, "GET", artifact.URL(mv.SHA256), tok, "", nil); code != http.StatusUnauthorized {
		t.Fatalf("download with an operator token and no device credentials: %d", code)
	}

	steps := []struct {
		method, path, body string
		code               int
		sub                string
	}{
		{"DELETE", "/api/v1/models/yolov8n/2", "", 409, sum.ID},
		{"GET", "/api/v1/rollouts", "", 200, sum.ID},
		{"GET", "/api/v1/rollouts/" + sum.ID, "", 200, `"job_id": "` + cmds[0].JobID + `"`},
		{"GET", "/api/v1/rollouts/" + sum.ID, "", 200, `"states": {
    "dispatched": 1,`},
		{"GET", "/api/v1/rollouts/r99", "", 404, "not found"},
		{"POST", "/api/v1/rollouts/" + sum.ID + "/pause", "", 200, `"state": "paused"`},
		{"POST", "/api/v1/rollouts/" + sum.ID + "/pause", "", 409, "not allowed"},
		{"POST", "/api/v1/rollouts/" + sum.ID + "/resume", "", 200, `"state": "canary"`},
		{"POST", "/api/v1/rollouts/" + sum.ID + "/explode", "", 404, "unknown action"},
		{"POST", "/api/v1/rollouts/" + sum.ID + "/abort", `{"reason":"wrong labels"}`, 200, "aborted by operator: wrong labels"},
		{"POST", "/api/v1/rollouts/" + sum.ID + "/rollback", `{"reason":"x"`, 400, ""},
		{"POST", "/api/v1/rollouts/" + sum.ID + "/rollback", `{"reason":"labels fixed"}`, 200, `"state": "rolled_back"`},
		// The abort's reason stays; the history says who did what, and why.
		{"GET", "/api/v1/rollouts/" + sum.ID, "", 200, `"reason": "aborted by operator: wrong labels"`},
		{"GET", "/api/v1/rollouts/" + sum.ID, "", 200, `"to": "aborted",
      "reason": "aborted by operator: wrong labels",
      "by": "alice"`},
		{"GET", "/api/v1/rollouts/" + sum.ID, "", 200, `"to": "rolling_back",
      "reason": "labels fixed",
      "by": "alice"`},
		{"GET", "/api/v1/rollouts/" + sum.ID, "", 200, `"rollback_on_abort": true`},
		{"DELETE", "/api/v1/models/yolov8n/2", "", 200, "yolov8n@2"},
		{"GET", "/api/v1/models/yolov8n/2", "", 404, "not found"},
	}
	for _, st := range steps {
		code, b := f.call(t, st.method, st.path, tok, "application/json", strings.NewReader(st.body))
		if code != st.code || !strings.Contains(string(b), st.sub) {
			t.Fatalf("%s %s: %d %s, want %d %q", st.method, st.path, code, b, st.code, st.sub)
		}
	}
}

// refusedPushes checks the model uploads the server refuses.
func refusedPushes(t *testing.T, f *otaFixture, model []byte) {
	pushes := []struct {
		name   string
		token  string
		fields [][2]string
		file   []byte
		code   int
		substr string
	}{
		{"no token", "", [][2]string{{"name", "m"}, {"version", "1"}}, model, 401, "token"},
		{"same version", tok, [][2]string{{"name", "yolov8n"}, {"version", "2"}}, model, 409, "already used"},
		{"not a model", tok, [][2]string{{"name", "m"}, {"version", "1"}}, []byte("#!/bin/sh\necho hi\n"), 400, "not a .tflite"},
		{"bad name", tok, [][2]string{{"name", "a/b"}, {"version", "1"}}, model, 400, "name:"},
		{"no file", tok, [][2]string{{"name", "m"}, {"version", "1"}}, nil, 400, "no file"},
		{"too large", tok, [][2]string{{"name", "m"}, {"version", "1"}}, make([]byte, 9<<20), 413, ""},
	}
	for _, tc := range pushes {
		t.Run("push "+tc.name, func(t *testing.T) {
			ct, body := multipartBody(t, tc.fields, tc.file)
			code, b := f.call(t, "POST", "/api/v1/models", tc.token, ct, body)
			if code != tc.code || !strings.Contains(string(b), tc.substr) {
				t.Fatalf("%d %s, want %d %q", code, b, tc.code, tc.substr)
			}
		})
	}
}

// refusedCreates checks the rollout requests the server refuses.
func refusedCreates(t *testing.T, f *otaFixture) {
	creates := []struct {
		name string
		body string
		code int
		sub  string
	}{
		{"bad model", `{"model":"yolov8n"}`, 400, "name@version"},
		{"missing model", `{"model":"yolov8n@9"}`, 404, "not found"},
		{"bad waves", `{"model":"yolov8n@2","waves":"10%,x"}`, 400, "waves"},
		{"decreasing waves", `{"model":"yolov8n@2","waves":"50%,10%"}`, 400, "does not increase"},
		{"bad duration", `{"model":"yolov8n@2","health_window":"two"}`, 400, "health_window"},
		{"unknown field", `{"model":"yolov8n@2","wavez":"1"}`, 400, "unknown field"},
		{"no targets", `{"model":"yolov8n@2","selector":"site=zz"}`, 422, "no device"},
		{"failure rate above 1", `{"model":"yolov8n@2","max_failure_rate":1.5}`, 400, "max_failure_rate"},
		{"negative min executions", `{"model":"yolov8n@2","min_executions":-1}`, 400, "min_executions"},
	}
	for _, tc := range creates {
		t.Run("create "+tc.name, func(t *testing.T) {
			code, b := f.call(t, "POST", "/api/v1/rollouts", tok, "application/json", strings.NewReader(tc.body))
			if code != tc.code || !strings.Contains(string(b), tc.sub) {
				t.Fatalf("%d %s, want %d %q", code, b, tc.code, tc.sub)
			}
		})
	}
}

// slowReader pauses once, after its first read.
type slowReader struct {
	r      io.Reader
	paused bool
	pause  time.Duration
}

func (s *slowReader) Read(p []byte) (int, error) {
	if len(p) > 4096 {
		p = p[:4096]
	}
	n, err := s.r.Read(p)
	if !s.paused {
		s.paused = true
		time.Sleep(s.pause)
	}
	return n, err
}

// TestSlowUploadOutlivesReadTimeout: fleetd's server-wide read timeout is
// short; a model upload extends it.
func TestSlowUploadOutlivesReadTimeout(t *testing.T) {
	model, err := os.ReadFile(modeltest.Path(t, "models", "yolov5n-int8.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	f := setupOTA(t)
	f.ts.Close()
	slow := httptest.NewUnstartedServer(f.ts.Config.Handler)
	slow.Config.ReadTimeout = 300 * time.Millisecond
	slow.Config.WriteTimeout = 300 * time.Millisecond
	slow.Start()
	defer slow.Close()
	f.ts = slow
	ct, body := multipartBody(t, [][2]string{{"name", "slow"}, {"version", "1"}}, model)
	code, b := f.call(t, "POST", "/api/v1/models", tok, ct, &slowReader{r: body, pause: 700 * time.Millisecond})
	if code != http.StatusCreated {
		t.Fatalf("slow upload: %d %s", code, b)
	}
}

// TestOTAFirmware: agent bundles share the store, signing and rollouts.
func TestOTAFirmware(t *testing.T) {
	f := setupOTA(t)
	bundle := bytes.Repeat([]byte("\x7fELF agent "), 1000)
	pushes := []struct {
		name   string
		path   string
		fields [][2]string
		code   int
		substr string
	}{
		{"firmware", "/api/v1/firmware", [][2]string{{"name", "edge-agent"}, {"version", "0.2.0"}, {"os", "linux"}, {"arch", "arm64"}}, 201, `"arch": "arm64"`},
		{"firmware without arch", "/api/v1/firmware", [][2]string{{"name", "edge-agent"}, {"version", "0.3.0"}, {"os", "linux"}}, 400, "os and arch"},
		{"model with arch", "/api/v1/models", [][2]string{{"name", "m"}, {"version", "1"}, {"arch", "arm64"}}, 400, "os and arch"},
	}
	var fw rest.Model
	for _, tc := range pushes {
		ct, body := multipartBody(t, tc.fields, bundle)
		code, b := f.call(t, "POST", tc.path, tok, ct, body)
		if code != tc.code || !strings.Contains(string(b), tc.substr) {
			t.Fatalf("%s: %d %s, want %d %q", tc.name, code, b, tc.code, tc.substr)
		}
		if code == 201 {
			json.Unmarshal(b, &fw)
		}
	}
	man, err := manifest.Verify(f.keys, fw.Manifest, fw.Signature, fw.KeyID)
	if err != nil || man.Kind != manifest.KindFirmware || man.Arch != "arm64" || man.OS != "linux" {
		t.Fatalf("firmware manifest %+v: %v", man, err)
	}
	if code, b := f.call(t, "GET", "/api/v1/firmware", tok, "", nil); code != 200 || !strings.Contains(string(b), `"firmware": [`) || !strings.Contains(string(b), "edge-agent") {
		t.Fatalf("firmware list: %d %s", code, b)
	}
	if code, b := f.call(t, "GET", "/api/v1/models", tok, "", nil); code != 200 || strings.Contains(string(b), "edge-agent") {
		t.Fatalf("models list shows firmware: %d %s", code, b)
	}
	if code, b := f.call(t, "POST", "/api/v1/rollouts", tok, "application/json", strings.NewReader(`{"model":"a@1","firmware":"edge-agent@0.2.0"}`)); code != 400 || !strings.Contains(string(b), "not both") {
		t.Fatalf("model and firmware: %d %s", code, b)
	}
	if code, b := f.call(t, "POST", "/api/v1/rollouts", tok, "application/json", strings.NewReader(`{"firmware":"edge-agent@0.2.0","selector":"site=b"}`)); code != 201 {
		t.Fatalf("firmware rollout: %d %s", code, b)
	}
	f.eng.Step(context.Background())
	f.disp.mu.Lock()
	cmds := f.disp.cmds["cam-3"]
	f.disp.mu.Unlock()
	if len(cmds) != 1 || cmds[0].Kind != api.CommandFirmwareUpdate || cmds[0].Artifact.Kind != manifest.KindFirmware {
		t.Fatalf("commands to cam-3: %+v", cmds)
	}
	if code, b := f.call(t, "DELETE", "/api/v1/firmware/edge-agent/0.2.0", tok, "", nil); code != 409 {
		t.Fatalf("delete firmware in use: %d %s", code, b)
	}
}

// TestRolloutDefaults: a rollout created without a health window or job
// timeout gets fleetd's configured ones, and a default job timeout shorter
// than the asked health window gives way to the engine's.
func TestRolloutDefaults(t *testing.T) {
	model, err := os.ReadFile(modeltest.Path(t, "models", "yolov5n-int8.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	f := setupOTA(t)
	ct, body := multipartBody(t, [][2]string{{"name", "m"}, {"version", "2"}}, model)
	if code, b := f.call(t, "POST", "/api/v1/models", tok, ct, body); code != http.StatusCreated {
		t.Fatalf("push: %d %s", code, b)
	}
	tests := []struct {
		body         string
		health, jobs time.Duration
	}{
		{`{"model":"m@2"}`, 90 * time.Second, 10 * time.Minute},
		{`{"model":"m@2","health_window":"1m"}`, time.Minute, 10 * time.Minute},
		{`{"model":"m@2","job_timeout":"5m"}`, 90 * time.Second, 5 * time.Minute},
		{`{"model":"m@2","health_window":"20m"}`, 20 * time.Minute, 30 * time.Minute}, // the engine default
	}
	for _, tt := range tests {
		code, b := f.call(t, "POST", "/api/v1/rollouts", tok, "application/json", strings.NewReader(tt.body))
		if code != http.StatusCreated {
			t.Fatalf("%s: %d %s", tt.body, code, b)
		}
		var sum rollout.Summary
		json.Unmarshal(b, &sum)
		r, err := f.eng.Get(sum.ID)
		if err != nil {
			t.Fatal(err)
		}
		if r.Spec.HealthWindow != tt.health || r.Spec.JobTimeout != tt.jobs {
			t.Errorf("%s: health window %v, job timeout %v; want %v, %v", tt.body, r.Spec.HealthWindow, r.Spec.JobTimeout, tt.health, tt.jobs)
		}
		f.eng.Abort(sum.ID, "test")
	}
}

// TestOpenAPIOTA: the served OpenAPI description has every OTA route, with
// the method, and the schemas it refers to.
func TestOpenAPIOTA(t *testing.T) {
	f := setupOTA(t)
	code, b := f.call(t, "GET", "/api/openapi.json", "", "", nil)
	if code != http.StatusOK {
		t.Fatalf("openapi: %d", code)
	}
	var doc struct {
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{
		"POST /api/v1/models", "GET /api/v1/models", "GET /api/v1/models/{name}/{version}", "DELETE /api/v1/models/{name}/{version}",
		"POST /api/v1/firmware", "GET /api/v1/firmware", "GET /api/v1/firmware/{name}/{version}", "DELETE /api/v1/firmware/{name}/{version}",
		"GET /api/v1/keys", "POST /api/v1/rollouts", "GET /api/v1/rollouts", "GET /api/v1/rollouts/{id}", "POST /api/v1/rollouts/{id}/{action}",
		"GET /artifacts/{sha256}",
	} {
		method, path, _ := strings.Cut(r, " ")
		if _, ok := doc.Paths[path][strings.ToLower(method)]; !ok {
			t.Errorf("openapi.json lacks %s", r)
		}
	}
	for _, m := range regexp.MustCompile(`"#/components/schemas/(\w+)"`).FindAllSubmatch(b, -1) {
		if _, ok := doc.Components.Schemas[string(m[1])]; !ok {
			t.Errorf("openapi.json refers to schema %s, which it lacks", m[1])
		}
	}
}
