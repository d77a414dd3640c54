package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// samples are one representative value of every payload, named as their
// golden files.
func samples() map[string]any {
	return map[string]any{
		"state": &State{
			DeviceID: "cam-box-1", Online: true, Time: 1764028800000, AgentVersion: "v0.3.1",
			Labels: map[string]string{"site": "plant-a", "line": "3"}, Model: "yolov8n", ModelVersion: "2025.11.1",
			Engine: "go", Delegate: "xnnpack", Cameras: []string{"cam-a", "cam-b"},
			SnapshotURL: "http://10.0.0.7:9100/snapshot/",
		},
		"state_offline": &State{DeviceID: "cam-box-1", Time: 1764028860000},
		"telemetry": &Telemetry{
			DeviceID: "cam-box-1", Time: 1764028810000, UptimeS: 3600.5, AgentVersion: "v0.3.1",
			Model: "yolov8n", ModelVersion: "2025.11.1", Engine: "tflite", Delegate: "gpu", EngineVersion: "2.17.0",
			Cameras: []CameraStats{
				{ID: "cam-a", Up: true, FPS: 14.9, Dropped: 12},
				{ID: "cam-b", Up: false, Dropped: 3, Error: "device /dev/video2 disappeared"},
			},
			InferP50Ms: 31.2, InferP99Ms: 48.9, SpoolDepth: 420, SpoolOldestS: 12.5, SpoolDropped: 0, DiskFreeBytes: 12 << 30,
		},
		"detections": &DetectionBatch{DeviceID: "cam-box-1", Events: []Event{
			{Seq: 41, CameraID: "cam-a", Time: 1764028800123456, Model: "yolov8n", ModelVersion: "2025.11.1", ClassID: 0, Label: "person", Score: 0.91, Box: [4]float32{12.5, 40, 120.25, 300}},
			{Seq: 42, CameraID: "cam-b", Time: 1764028800200000, ClassID: 2, Label: "car", Score: 0.5, Box: [4]float32{0, 0, 639, 479}},
		}},
		"ack": &Ack{DeviceID: "cam-box-1", Ranges: []SeqRange{{From: 1, To: 40}, {From: 42, To: 42}}},
		"command_model_update": &Command{
			JobID: "rollout-7-cam-box-1", Kind: CommandModelUpdate,
			Artifact: &Artifact{
				Kind: "model", Name: "yolov8n", Version: "2025.11.2",
				SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", Size: 3_400_000,
				URL: "http://fleet:8080/artifacts/9f86d081", Manifest: []byte(`{"name":"yolov8n"}`), Sig: []byte{1, 2, 3, 4}, KeyID: "fleet-2025",
			},
			DeadlineMs: 1764032400000, HealthWindowS: 300,
		},
		"command_rollback": &Command{JobID: "job-8", Kind: CommandRollback},
		"command_snapshot": &Command{JobID: "3f2a9c0d5e7b4a1f8c6d2e0b9a7f5c3d", Kind: CommandSnapshot,
			Snapshot: &SnapshotRequest{Camera: "cam-a", MaxBytes: 512 << 10}},
		"state_inventory": &State{
			DeviceID: "cam-box-1", Online: true, Time: 1764028800000, AgentVersion: "v0.4.0", Cameras: []string{"cam-a"},
			Inventory: &Inventory{
				Address: "10.0.0.7", Hostname: "cam-box-1", OS: "Ubuntu 24.04.1 LTS", Arch: "arm64", Kernel: "6.8.0-1015-raspi",
				AgentVersion: "v0.4.0", Model: "yolov8n", ModelVersion: "2025.11.1",
				DiskFreeBytes: 12 << 30, DiskTotalBytes: 64 << 30, UptimeS: 86400.5, BootTime: 1763942400000, Time: 1764028800000,
			},
		},
		"job_status": &JobStatus{DeviceID: "cam-box-1", JobID: "rollout-7-cam-box-1", State: JobDownloading, Progress: 0.25, Time: 1764028900000},
		"job_failed": &JobStatus{DeviceID: "cam-box-1", JobID: "rollout-7-cam-box-1", State: JobRolledBack, Reason: "smoke test: 0 detections on reference image", Time: 1764029000000},
	}
}

// TestGolden pins the JSON wire form of every payload: a change to a field
// name or type shows up as a diff here. Run with -update to accept it.
func TestGolden(t *testing.T) {
	for name, v := range samples() {
		t.Run(name, func(t *testing.T) {
			got, err := json.MarshalIndent(v, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			path := filepath.Join("testdata", name+".golden.json")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./fleet/api -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("wire form of %s changed:\n got: %s\nwant: %s", name, got, want)
			}
			// The golden file decodes strictly back to the same value.
			back := reflect.New(reflect.TypeOf(v).Elem()).Interface()
			if err := Decode(want, back); err != nil {
				t.Fatalf("Decode(golden): %v", err)
			}
			if !reflect.DeepEqual(back, v) {
				t.Errorf("round trip:\n got %+v\nwant %+v", back, v)
			}
		})
	}
}

func TestParseTopic(t *testing.T) {
	tests := []struct {
		topic             string
		device, kind, job string
		err               string // substring of the error; "" means ok
	}{
		{StateTopic("cam-1"), "cam-1", KindState, "", ""},
		{TelemetryTopic("cam-1"), "cam-1", KindTelemetry, "", ""},
		{DetectionsTopic("a.b_c-9"), "a.b_c-9", KindDetections, "", ""},
		{AcksTopic("cam-1"), "cam-1", KindAcks, "", ""},
		{CommandsTopic("cam-1"), "cam-1", KindCommands, "", ""},
		{JobTopic("cam-1", "job-7"), "cam-1", KindJobs, "job-7", ""},
		{SnapshotTopic("cam-1", "req-7"), "cam-1", KindSnapshot, "req-7", ""},
		{"edgefleet/v1/cam-1/snapshot", "", "", "", "bad topic"},
		{"edgefleet/v1/cam-1/snapshot/", "", "", "", "snapshot: empty id"},
		{"edgefleet/v1/cam-1/snapshot/+", "", "", "", "snapshot: id"},
		{"edgefleet/v1/cam-1/snapshot/a/b", "", "", "", "bad topic"},
		{"edgefleet/v2/cam-1/state", "", "", "", "lacks prefix"},
		{"edgefleet/v1", "", "", "", "lacks prefix"},
		{"edgefleet/v1/", "", "", "", "bad topic"},
		{"/edgefleet/v1/cam-1/state", "", "", "", "lacks prefix"},
		{"edgefleet/v1/cam-1", "", "", "", "bad topic"},
		{"edgefleet/v1/cam-1/state/extra", "", "", "", "bad topic"},
		{"edgefleet/v1/cam-1/state/", "", "", "", "bad topic"},
		{"edgefleet/v1//state", "", "", "", "empty id"},
		{"edgefleet/v1/+/state", "", "", "", "has character"},
		{"edgefleet/v1/#", "", "", "", "bad topic"},
		{"edgefleet/v1/cam 1/state", "", "", "", "has character"},
		{"edgefleet/v1/" + strings.Repeat("x", 65) + "/state", "", "", "", "longer than 64"},
		{"edgefleet/v1/cam-1/status", "", "", "", "unknown kind"},
		{"edgefleet/v1/cam-1/jobs", "", "", "", "bad topic"},
		{"edgefleet/v1/cam-1/jobs/", "", "", "", "job: empty id"},
		{"edgefleet/v1/cam-1/jobs/+", "", "", "", "job: id"},
		{"edgefleet/v1/cam-1/jobs/a/b", "", "", "", "bad topic"},
		{"edgefleet/v1/cam-1/state/job", "", "", "", "bad topic"},
		{"", "", "", "", "lacks prefix"},
	}
	for _, tt := range tests {
		device, kind, job, err := ParseTopic(tt.topic)
		if tt.err == "" {
			if err != nil || device != tt.device || kind != tt.kind || job != tt.job {
				t.Errorf("ParseTopic(%q) = %q, %q, %q, %v; want %q, %q, %q", tt.topic, device, kind, job, err, tt.device, tt.kind, tt.job)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.err) || !errors.Is(err, ErrBadTopic) {
			t.Errorf("ParseTopic(%q) error = %v, want ErrBadTopic mentioning %q", tt.topic, err, tt.err)
		}
		if device != "" || kind != "" || job != "" {
			t.Errorf("ParseTopic(%q) returned parts %q %q %q with an error", tt.topic, device, kind, job)
		}
	}
}

func TestFilter(t *testing.T) {
	tests := map[string]string{
		KindState:      "edgefleet/v1/+/state",
		KindDetections: "edgefleet/v1/+/detections",
		KindJobs:       "edgefleet/v1/+/jobs/+",
		KindSnapshot:   "edgefleet/v1/+/snapshot/+",
	}
	for kind, want := range tests {
		if got := Filter(kind); got != want {
			t.Errorf("Filter(%s) = %s, want %s", kind, got, want)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		v       any
		want    string // substring naming the problem
	}{
		{"not json", "{", &Ack{}, "decode *api.Ack: unexpected EOF"},
		{"empty", "", &State{}, "decode *api.State: EOF"},
		{"unknown field", `{"device_id":"d","ranges":[],"x":1}`, &Ack{}, `unknown field "x"`},
		{"wrong type", `{"device_id":"d","ranges":"all"}`, &Ack{}, "cannot unmarshal string"},
		{"trailing data", `{"device_id":"d","ranges":[]}{}`, &Ack{}, "trailing data"},
		{"too large", `"` + strings.Repeat("x", MaxPayload) + `"`, &Ack{}, "exceeds"},
		{"null", `null`, &Ack{}, "device_id: empty id"},
		{"bad device", `{"device_id":"a/b","ranges":[]}`, &Ack{}, "device_id: id \"a/b\" has character"},
		{"inverted range", `{"device_id":"d","ranges":[{"from":3,"to":2}]}`, &Ack{}, "ranges[0]: to 2 below from 3"},
		{"seq not increasing", `{"device_id":"d","events":[{"seq":2,"camera_id":"c","time_us":0,"class_id":0,"label":"","score":0,"box":[0,0,0,0]},{"seq":2,"camera_id":"c","time_us":0,"class_id":0,"label":"","score":0,"box":[0,0,0,0]}]}`, &DetectionBatch{}, "events[1]: seq 2 not above 2"},
		{"bad camera", `{"device_id":"d","events":[{"seq":1,"camera_id":"","box":[0,0,0,0]}]}`, &DetectionBatch{}, "events[0].camera_id: empty id"},
		{"negative seq", `{"device_id":"d","events":[{"seq":-1,"camera_id":"c"}]}`, &DetectionBatch{}, "cannot unmarshal number -1"},
		{"unknown command", `{"job_id":"j","kind":"reboot"}`, &Command{}, `unknown kind "reboot"`},
		{"update without artifact", `{"job_id":"j","kind":"model_update"}`, &Command{}, "needs an artifact"},
		{"bad job id", `{"job_id":"j/k","kind":"rollback"}`, &Command{}, "job_id:"},
		{"unknown job state", `{"device_id":"d","job_id":"j","state":"done","time_ms":0}`, &JobStatus{}, `unknown state "done"`},
		{"telemetry device", `{"device_id":""}`, &Telemetry{}, "device_id: empty id"},
		{"snapshot without request", `{"job_id":"j","kind":"snapshot"}`, &Command{}, "needs a snapshot request"},
		{"snapshot bad camera", `{"job_id":"j","kind":"snapshot","snapshot":{"camera":"a/b"}}`, &Command{}, "snapshot: camera:"},
		{"snapshot too big", `{"job_id":"j","kind":"snapshot","snapshot":{"camera":"c","max_bytes":2000000}}`, &Command{}, "max_bytes 2000000 outside"},
		{"snapshot negative", `{"job_id":"j","kind":"snapshot","snapshot":{"camera":"c","max_bytes":-1}}`, &Command{}, "max_bytes -1 outside"},
		{"manifest not base64", `{"job_id":"j","kind":"model_update","artifact":{"manifest":"!!"}}`, &Command{}, "illegal base64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Decode([]byte(tt.payload), tt.v)
			if err == nil {
				t.Fatalf("Decode accepted %q", tt.payload)
			}
			if !strings.HasPrefix(err.Error(), "api: ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Decode error %q, want it to start with \"api: \" and contain %q", err, tt.want)
			}
		})
	}
}

func TestValidateID(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{"cam-1", true}, {"A.b_C-9", true}, {strings.Repeat("x", 64), true},
		{"", false}, {strings.Repeat("x", 65), false}, {"a/b", false}, {"a+b", false}, {"a#", false},
		{"é", false}, {"a b", false}, {"$SYS", false},
	}
	for _, tt := range tests {
		if err := ValidateID(tt.id); (err == nil) != tt.ok {
			t.Errorf("ValidateID(%q) = %v, want ok=%v", tt.id, err, tt.ok)
		}
	}
}
