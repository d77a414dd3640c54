package api

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"testing"
)

// batchSeeds are batches in and out of DecodeBatch's fast path.
func batchSeeds(t testing.TB) []string {
	golden, err := os.ReadFile("testdata/detections.golden.json")
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := json.Marshal(&DetectionBatch{DeviceID: "cam-01", Events: []Event{
		{Seq: 7, CameraID: "c1", Time: 1700000000123456, Model: "yolo", ModelVersion: "3", ClassID: 2, Label: "person", Score: 0.8125, Box: [4]float32{1.5, 2, 300.25, 479.9}},
		{Seq: 8, CameraID: "c1", Time: -5, ClassID: -1, Label: "", Score: 1e-7, Box: [4]float32{-0, 1e21, -3.4e38, 123456789}},
	}})
	var compact bytes.Buffer
	if err := json.Compact(&compact, golden); err != nil {
		t.Fatal(err)
	}
	return []string{compact.String(), string(plain),
		`{"events":[{"box":[1,2,3,4],"label":"x","score":0.5,"class_id":0,"time_us":1,"camera_id":"c","seq":1}],"device_id":"d"}`,
		`{"device_id":"d","events":[]}`,
		`{"device_id":"d","events":null}`,
		`{"device_id":"d","device_id":"e","events":[{"seq":1,"camera_id":"c"}]}`,
		`{"device_id":"d","events":[{"seq":1,"seq":2,"camera_id":"c"}]}`,
		`{"device_id":"d","events":[{"Seq":1,"camera_id":"c"}]}`,
		`{"device_id":"d","events":[{"seq":1,"camera_id":"c","box":[1,2,3]}]}`,
		`{"device_id":"d","events":[{"seq":1,"camera_id":"c","box":[1,2,3,4,5]}]}`,
		`{"device_id":"d","events":[{"seq":1,"camera_id":"c","score":1e39}]}`,
		`{"device_id":"d","events":[{"seq":18446744073709551616,"camera_id":"c"}]}`,
		`{"device_id":"d","events":[{"seq":01,"camera_id":"c"}]}`,
		`{"device_id":"d","events":[{"seq":1,"camera_id":"c","class_id":1.0}]}`,
		`{"device_id":"d","events":[{"seq":2,"camera_id":"c"},{"seq":1,"camera_id":"c"}]}`,
		`{"device_id":"d","events":[{"seq":1,"camera_id":"c","label":"a\"b"}]}`,
		`{"device_id":"d","events":[{"seq":1,"camera_id":"c","type":"track_end","v":1,"track":{"id":1,"first_us":1,"last_us":2,"frames":2,"path":[]}}]}`,
		`{"device_id":"d","events":[{"seq":1,"camera_id":"c"}]} `,
		`{"device_id":"d","events":[{"seq":1,"camera_id":"c"}]}{}`,
		` {"device_id":"d","events":[{"seq":1,"camera_id":"c"}]}`,
		`{"device_id":"d","events":[{"seq":1,"camera_id":"c","extra":1}]}`,
		string(golden),
	}
}

// TestDecodeBatchFast: batches as json.Marshal writes them take the fast
// path, and read as Decode reads them.
func TestDecodeBatchFast(t *testing.T) {
	for i, s := range batchSeeds(t)[:4] {
		var fast DetectionBatch
		if p := (batchParser{s: []byte(s)}); !p.batch(&fast) || p.i != len(s) {
			t.Errorf("seed %d: not read by the fast path: %s", i, s)
			continue
		}
		var want DetectionBatch
		if err := Decode([]byte(s), &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(fast, want) {
			t.Errorf("seed %d: fast path read %+v, Decode %+v", i, fast, want)
		}
	}
}

// FuzzDecodeBatch: DecodeBatch answers what Decode answers, the same
// batch or the same error.
func FuzzDecodeBatch(f *testing.F) {
	for _, s := range batchSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var got, want DetectionBatch
		gerr, werr := DecodeBatch([]byte(s), &got), Decode([]byte(s), &want)
		if (gerr == nil) != (werr == nil) || gerr != nil && gerr.Error() != werr.Error() {
			t.Fatalf("%s: DecodeBatch error %v, Decode error %v", s, gerr, werr)
		}
		if gerr == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: DecodeBatch read %+v, Decode %+v", s, got, want)
		}
	})
}

// BenchmarkDecodeBatch: a batch of three detections, as agents send it.
func BenchmarkDecodeBatch(b *testing.B) {
	ev := Event{Seq: 7, CameraID: "cam0", Time: 1700000000123456, Model: "yolo-sim", ModelVersion: "1", Label: "person", Score: 0.8125, Box: [4]float32{1.5, 2, 300.25, 479.9}}
	evs := []Event{ev, ev, ev}
	for i := range evs {
		evs[i].Seq += uint64(i)
	}
	p, _ := json.Marshal(&DetectionBatch{DeviceID: "sim-123", Events: evs})
	for _, c := range []struct {
		name   string
		decode func([]byte, *DetectionBatch) error
	}{{"Decode", func(p []byte, b *DetectionBatch) error { return Decode(p, b) }}, {"DecodeBatch", DecodeBatch}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var out DetectionBatch
				if err := c.decode(p, &out); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
