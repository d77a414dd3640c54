package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"edgefleet/fleet/api"
	"edgefleet/fleet/store"
	"edgefleet/internal/testutil"
)

// TestAnalyticsEvents: analytics events in a detection batch are validated,
// stored (with their snapshots) before the ack, and kept off the live feed.
func TestAnalyticsEvents(t *testing.T) {
	fc := &fakeConn{}
	in, st, reg := newIngest(t, fc)
	var fed []store.Record
	in.opt.OnStored = func(recs []store.Record) { fed = append(fed, recs...) }
	now := time.Now().UnixMicro()
	cross := api.Event{Seq: 2, CameraID: "cam0", Time: now, Label: "person", Score: 0.8, Type: api.TypeLineCross, V: 1,
		Track:    &api.TrackInfo{ID: 7, FirstUs: now - 1e6, LastUs: now, Frames: 30},
		Line:     &api.LineCross{Line: "door", Direction: api.DirectionIn},
		Snapshot: &api.EventSnapshot{TimeUs: now, Crop: []byte{0xFF, 0xD8, 1}, Thumb: []byte{0xFF, 0xD8, 2}}}
	b := api.DetectionBatch{DeviceID: "d1", Events: []api.Event{
		{Seq: 1, CameraID: "cam0", Time: now, Label: "person", Score: 0.9}, cross}}
	p, _ := json.Marshal(&b)
	in.Handle(api.DetectionsTopic("d1"), p)
	testutil.Eventually(t, "ack", func() bool {
		fc.mu.Lock()
		defer fc.mu.Unlock()
		return len(fc.pub[api.AcksTopic("d1")]) == 1
	})
	fc.mu.Lock()
	ackPayload := fc.pub[api.AcksTopic("d1")][0]
	fc.mu.Unlock()
	var ack api.Ack
	if err := json.Unmarshal(ackPayload, &ack); err != nil || len(ack.Ranges) != 1 || ack.Ranges[0] != (api.SeqRange{From: 1, To: 2}) {
		t.Fatalf("ack = %s, %v", ackPayload, err)
	}
	ctx := context.Background()
	page, err := st.QueryEvents(ctx, store.EventQuery{})
	want := cross
	want.Snapshot = nil
	if err != nil || len(page.Events) != 1 || !reflect.DeepEqual(page.Events[0], store.EventRecord{Device: "d1", Event: want, Crop: true, Thumb: true}) {
		t.Fatalf("stored events = %+v, %v", page.Events, err)
	}
	if jpeg, err := st.EventSnapshot(ctx, "d1", 2, store.PartThumb); err != nil || !bytes.Equal(jpeg, cross.Snapshot.Thumb) {
		t.Fatalf("thumb = %x, %v", jpeg, err)
	}
	if dets, _ := st.Query(ctx, store.Query{}); len(dets.Records) != 1 || dets.Records[0].Seq != 1 {
		t.Fatalf("detections = %+v", dets.Records)
	}
	if len(fed) != 1 || fed[0].Seq != 1 {
		t.Fatalf("live feed got %+v, want the detection only", fed)
	}
	if d, ok := reg.Get("d1"); !ok || d.Detections != 1 {
		t.Fatalf("registry counts %+v (%v), want 1 detection", d.Detections, ok)
	}
}
