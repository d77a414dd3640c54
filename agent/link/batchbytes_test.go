package link

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"edgefleet/fleet/api"
	"edgefleet/internal/testutil"
)

// snapEvent is testEvent(seq) as a line crossing with a snapshot of
// part bytes in each of crop and thumb.
func snapEvent(seq uint64, part int) api.Event {
	e := testEvent(seq)
	e.Type, e.V = api.TypeLineCross, api.EventVersion
	e.Line = &api.LineCross{Line: "door", Direction: api.DirectionOut}
	e.Track = &api.TrackInfo{ID: seq, FirstUs: 1, LastUs: 2, Frames: 3, Path: make([][2]float32, api.MaxPath)}
	e.Snapshot = &api.EventSnapshot{TimeUs: 2, Crop: bytes.Repeat([]byte{0xFF}, part), Thumb: bytes.Repeat([]byte{0xD8}, part)}
	return e
}

// TestWireSizeIsAnUpperBound: the estimate behind the byte bound is never
// below the event's real JSON size, and not far above it.
func TestWireSizeIsAnUpperBound(t *testing.T) {
	zone := testEvent(4)
	zone.Type, zone.V, zone.Zone = api.TypeZoneExit, 1, &api.ZoneInfo{Zone: "bay", DwellMs: 1 << 40}
	tests := []struct {
		name string
		e    api.Event
	}{
		{"detection", testEvent(1)},
		{"extreme numbers", api.Event{Seq: 1<<64 - 1, Time: -1 << 63, ClassID: -1 << 31, Score: -1.2345678e-38, Box: [4]float32{-1.2345678e-38, -3.4e38, 1, 2}, CameraID: "c", Label: "l"}},
		{"line cross, full path, big snapshot", snapEvent(2, api.MaxEventSnapshot)},
		{"line cross, odd snapshot", snapEvent(3, 1001)},
		{"zone exit", zone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j, err := json.Marshal(tt.e)
			if err != nil {
				t.Fatal(err)
			}
			est := wireSize(&tt.e)
			if est < len(j)+1 || est > 2*len(j)+400 {
				t.Fatalf("wireSize = %d for %d bytes of JSON", est, len(j))
			}
		})
	}
}

func TestCutBatch(t *testing.T) {
	det, snap := testEvent(1), snapEvent(2, api.MaxEventSnapshot)
	per := wireSize(&snap)
	tests := []struct {
		name     string
		evs      []api.Event
		maxBytes int
		want     int
	}{
		{"all detections fit", []api.Event{det, det, det}, maxBatchBytes, 3},
		{"snapshots up to the bound", []api.Event{snap, snap, snap, snap, snap, snap, snap, snap}, 3*per + 10, 3},
		{"one too big goes alone", []api.Event{snap, det}, per / 2, 1},
		{"detections then a snapshot", []api.Event{det, det, snap}, 2*wireSize(&det) + per/2, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := len(cutBatch(tt.evs, tt.maxBytes)); got != tt.want {
				t.Fatalf("cutBatch kept %d events, want %d", got, tt.want)
			}
		})
	}
}

// TestSnapshotsStayUnderMaxPayload is issue 13's batch bound: events with
// snapshots (about 175 KB of JSON each) mixed with detections go from the
// spool in batches that each stay under api.MaxPayload, without the
// too-large split; an event that can never fit is dropped, logged and
// counted, and the queue behind it keeps moving.
func TestSnapshotsStayUnderMaxPayload(t *testing.T) {
	ctx := context.Background()
	sp := openSpool(t)
	b := startBroker(t, "127.0.0.1:0")
	r := newReceiver(devID)
	r.attachPaho(t, "tcp://"+b.Addr(), svcUser, svcPass)
	const n, huge = 60, 31
	var evs []api.Event
	for seq := uint64(1); seq <= n; seq++ {
		switch {
		case seq == huge: // two 600 KB parts: 1.6 MB of JSON
			evs = append(evs, snapEvent(seq, 600<<10))
		case seq%3 == 0:
			evs = append(evs, testEvent(seq))
		default:
			evs = append(evs, snapEvent(seq, api.MaxEventSnapshot))
		}
	}
	if _, _, err := sp.Append(ctx, evs...); err != nil {
		t.Fatal(err)
	}
	// Megabyte batches: an ack timeout that a busy machine's race build
	// does not hit, so no resends blur the batch count.
	so := fastSender
	so.AckTimeout = 30 * time.Second
	l := runLink(t, fastOptions("tcp://"+b.Addr(), devID, devPass), sp, so)
	testutil.WaitFor(t, "spool emptied by acks and the drop", time.Minute, func() bool { return sp.Stats().Depth == 0 })
	if got := counterValue(l.metrics.dropped.WithLabelValues("too_large")); got != 1 {
		t.Fatalf("dropped too_large = %v, want 1", got)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.order) != n-1 || r.dups != 0 || r.badBatches != 0 {
		t.Fatalf("stored %d (dups %d, bad batches %d), want %d once each", len(r.order), r.dups, r.badBatches, n-1)
	}
	if _, ok := r.stored[huge]; ok {
		t.Fatalf("the event that cannot fit was stored")
	}
	for seq, e := range r.stored {
		if e.Type == api.TypeLineCross && (e.Snapshot == nil || len(e.Snapshot.Crop) != api.MaxEventSnapshot) {
			t.Fatalf("seq %d arrived without its snapshot", seq)
		}
	}
	// 40 snapshot events of ~175 KB: at least 5 to a 1 MiB batch.
	if r.maxPayload > api.MaxPayload || r.batches > 12 {
		t.Fatalf("%d batches, largest %d bytes: want ≤ 12 batches under %d", r.batches, r.maxPayload, api.MaxPayload)
	}
	t.Logf("%d events in %d batches, largest %d bytes", len(r.order), r.batches, r.maxPayload)
}
