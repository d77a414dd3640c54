package server

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/jpeg"
	"net/http"
	"os"
	"strings"
	"testing"

	"edgefleet/fleet/api"
	"edgefleet/fleet/api/rest"
	"edgefleet/models/modeltest"
)

// tinyJPEG is an 8×8 grey JPEG.
func tinyJPEG(t *testing.T) []byte {
	var b bytes.Buffer
	if err := jpeg.Encode(&b, image.NewGray(image.Rect(0, 0, 8, 8)), nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestShadowRoutes: a rollout with a shadow phase over REST; the device's
// failing final report; its reports and sample over REST; an operator's
// accept, audited with the device.
func TestShadowRoutes(t *testing.T) {
	model, err := os.ReadFile(modeltest.Path(t, "models", "yolov5n-int8.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	f := setupOTA(t)
	ct, body := multipartBody(t, [][2]string{{"name", "m"}, {"version", "2"}}, model)
	if code, b := f.call(t, "POST", "/api/v1/models", tok, ct, body); code != http.StatusCreated {
		t.Fatalf("push: %d %s", code, b)
	}
	for _, bad := range []struct{ body, want string }{
		{`{"model":"m@2","shadow":"10m"}`, "min_agreement"},
		{`{"model":"m@2","shadow":"10m","min_agreement":0.9,"shadow_sample":"4"}`, "shadow_sample"},
		{`{"model":"m@2","shadow":"40m","min_agreement":0.9,"job_timeout":"30m"}`, "job_timeout"},
	} {
		if code, b := f.call(t, "POST", "/api/v1/rollouts", tok, "application/json", strings.NewReader(bad.body)); code != 400 || !strings.Contains(string(b), bad.want) {
			t.Errorf("%s: %d %s", bad.body, code, b)
		}
	}
	code, b := f.call(t, "POST", "/api/v1/rollouts", tok, "application/json", strings.NewReader(
		`{"model":"m@2","selector":"site=a","waves":"100%","max_failures":"1","shadow":"10m","min_agreement":0.9,"shadow_sample":"1/4","shadow_cpu":"30%"}`))
	if code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, b)
	}
	var sum rest.RolloutSummary
	json.Unmarshal(b, &sum)
	if sum.Shadow == nil || sum.Shadow.DurationS != 600 || sum.Shadow.SampleEvery != 4 || sum.Shadow.CPUPercent != 30 {
		t.Fatalf("summary shadow %+v", sum.Shadow)
	}
	ctx := context.Background()
	f.eng.Step(ctx)
	f.disp.mu.Lock()
	cmd := f.disp.cmds["cam-1"][0]
	f.disp.mu.Unlock()
	if cmd.Shadow == nil || cmd.Shadow.MinAgreement != 0.9 {
		t.Fatalf("command %+v", cmd)
	}
	pic := tinyJPEG(t)
	rep := &api.ShadowReport{Final: true, ElapsedS: 600, Frames: 150, Agreement: 0.71, MinAgreement: 0.9,
		ShadowStats: api.ShadowStats{Serving: 300, Candidate: 250, Matched: 200, Precision: 0.8, Recall: 0.67, F1: 0.71, CountRatio: 0.83},
		Confusion:   []api.ShadowConfusion{{Serving: "bolt", Candidate: "nut", Count: 12}},
		Samples:     []api.ShadowSample{{Camera: "cam0", TimeUs: 5, Disagreement: 0.6, JPEG: pic}}}
	if err := f.eng.HandleJobStatus(ctx, api.JobStatus{DeviceID: "cam-1", JobID: cmd.JobID, State: api.JobFailed, Shadow: rep}); err != nil {
		t.Fatal(err)
	}
	code, b = f.call(t, "GET", "/api/v1/rollouts/"+sum.ID+"/shadow", tok, "", nil)
	var sh rest.RolloutShadow
	if err := json.Unmarshal(b, &sh); code != 200 || err != nil || len(sh.Devices) != 1 {
		t.Fatalf("shadow: %d %s", code, b)
	}
	d := sh.Devices[0]
	if d.DeviceID != "cam-1" || d.Shadow.Outcome() != rest.ShadowFailed || d.Final.Agreement != 0.71 || d.Final.Samples[0].JPEG != nil ||
		len(d.SampleURLs) != 1 || d.Final.Confusion[0].Candidate != "nut" {
		t.Fatalf("shadow device %+v", d)
	}
	if code, b := f.call(t, "GET", d.SampleURLs[0], tok, "", nil); code != 200 || !bytes.Equal(b, pic) {
		t.Fatalf("sample: %d, %d bytes", code, len(b))
	}
	if code, _ := f.call(t, "GET", "/api/v1/rollouts/"+sum.ID+"/devices/cam-1/shadow/samples/1", tok, "", nil); code != 404 {
		t.Fatalf("missing sample: %d", code)
	}
	if code, _ := f.call(t, "GET", d.SampleURLs[0], "", "", nil); code != http.StatusUnauthorized {
		t.Fatalf("sample without a token: %d", code)
	}
	steps := []struct {
		body string
		code int
		sub  string
	}{
		{``, 400, "must name the device"},
		{`{"device":"cam-2"}`, 409, "did not fail its shadow phase"},
		{`{"device":"cam-9"}`, 404, "not a target"},
		{`{"device":"cam-1","reason":"new lighting"}`, 200, `"device": "cam-1"`},
		{`{"device":"cam-1"}`, 409, "accepted by alice"},
	}
	for _, st := range steps {
		code, b := f.call(t, "POST", "/api/v1/rollouts/"+sum.ID+"/accept", tok, "application/json", strings.NewReader(st.body))
		if code != st.code || !strings.Contains(string(b), st.sub) {
			t.Fatalf("accept %s: %d %s, want %d %q", st.body, code, b, st.code, st.sub)
		}
	}
	code, b = f.call(t, "GET", "/api/v1/rollouts/"+sum.ID, tok, "", nil)
	if code != 200 || !strings.Contains(string(b), `"accepted_by": "alice"`) || !strings.Contains(string(b), `"failed_job": "`+cmd.JobID+`"`) {
		t.Fatalf("rollout after accept: %d %s", code, b)
	}
	// The audit log has who accepted which device.
	code, b = f.call(t, "GET", "/api/v1/audit", tok, "", nil)
	var al rest.AuditList
	json.Unmarshal(b, &al)
	found := false
	for _, e := range al.Entries {
		found = found || e.Action == "rollout.accept" && e.Operator == "alice" && e.Target == sum.ID && strings.Contains(e.Detail, "device cam-1")
	}
	if code != 200 || !found {
		t.Fatalf("audit: %d %s", code, b)
	}
	f.eng.Step(ctx)
	f.disp.mu.Lock()
	cmds := f.disp.cmds["cam-1"]
	f.disp.mu.Unlock()
	if len(cmds) != 2 || cmds[1].Shadow != nil || cmds[1].JobID != cmd.JobID+"-a" {
		t.Fatalf("commands to cam-1 after accept: %+v", cmds)
	}
}
