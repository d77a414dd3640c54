package api

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// payloadTypes are the types Decode is used with on outside input.
var payloadTypes = []func() any{
	func() any { return new(State) },
	func() any { return new(Telemetry) },
	func() any { return new(DetectionBatch) },
	func() any { return new(Ack) },
	func() any { return new(Command) },
	func() any { return new(JobStatus) },
}

func addSeeds(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.golden.json"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{"", "null", "{}", "[]", `{"device_id":"d"}`, `{"device_id":"d"} x`,
		`{"device_id":"d","events":[{"seq":1,"camera_id":"c"},{"seq":1,"camera_id":"c"}]}`,
		`{"job_id":"j","kind":"model_update","artifact":null}`, `{"job_id":"j","kind":"snapshot","snapshot":{"camera":"c","max_bytes":1}}`, `{"device_id":1e999}`, "\xff\xfe"} {
		f.Add([]byte(s))
	}
}

// checkDecode decodes payload into a fresh v: it must not panic, an error
// must name the package and the type, and a success must survive a round
// trip through the wire form.
func checkDecode(t *testing.T, newV func() any, payload []byte) {
	v := newV()
	err := Decode(payload, v)
	if err != nil {
		msg := err.Error()
		if !strings.HasPrefix(msg, "api: ") || !strings.Contains(msg, fmt.Sprintf("%T", v)) {
			t.Fatalf("error %q does not name the package and %T", msg, v)
		}
		return
	}
	again, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("%T decoded from %q does not encode: %v", v, payload, err)
	}
	w := newV()
	if err := Decode(again, w); err != nil {
		t.Fatalf("%T re-encoded as %s does not decode: %v", v, again, err)
	}
	if !reflect.DeepEqual(v, w) {
		t.Fatalf("round trip changed %T:\n%+v\n%+v", v, v, w)
	}
}

// FuzzDecode feeds arbitrary bytes to Decode for every payload type.
func FuzzDecode(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, payload []byte) {
		for _, newV := range payloadTypes {
			checkDecode(t, newV, payload)
		}
	})
}

// One fuzz target per payload type, so `go test -fuzz` can focus on one.

func FuzzDecodeState(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, p []byte) { checkDecode(t, payloadTypes[0], p) })
}

func FuzzDecodeTelemetry(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, p []byte) { checkDecode(t, payloadTypes[1], p) })
}

func FuzzDecodeDetectionBatch(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, p []byte) { checkDecode(t, payloadTypes[2], p) })
}

func FuzzDecodeAck(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, p []byte) { checkDecode(t, payloadTypes[3], p) })
}

func FuzzDecodeCommand(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, p []byte) { checkDecode(t, payloadTypes[4], p) })
}

func FuzzDecodeJobStatus(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, p []byte) { checkDecode(t, payloadTypes[5], p) })
}

// FuzzParseTopic: no panics, and an accepted topic is rebuilt exactly by
// the topic functions from its parts.
func FuzzParseTopic(f *testing.F) {
	for _, s := range []string{StateTopic("d"), JobTopic("d", "j"), SnapshotTopic("d", "r"), "edgefleet/v1/d/snapshot/", "edgefleet/v1/+/state", "edgefleet/v1//jobs/", "edgefleet/v1/d/jobs/j/k", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		device, kind, job, err := ParseTopic(topic)
		if err != nil {
			return
		}
		rebuilt := DeviceTopic(device, kind)
		switch kind {
		case KindJobs:
			rebuilt = JobTopic(device, job)
		case KindSnapshot:
			rebuilt = SnapshotTopic(device, job)
		}
		if rebuilt != topic {
			t.Fatalf("ParseTopic(%q) = %q %q %q, which rebuilds as %q", topic, device, kind, job, rebuilt)
		}
	})
}
