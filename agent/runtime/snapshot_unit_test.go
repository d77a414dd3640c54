package runtime

import (
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"edgefleet/agent"
	"edgefleet/fleet/api"
)

// TestSnapshotterAnswer: errors map to their codes; a camera is encoded at
// most once per snapshotInterval, a request in between gets the previous
// JPEG if it fits its cap and rate_limited if not.
func TestSnapshotterAnswer(t *testing.T) {
	now := time.Unix(1764028800, 0)
	encodes := 0
	encode := func(camera string, maxBytes int) (agent.Snapshot, error) {
		switch camera {
		case "nope":
			return agent.Snapshot{}, fmt.Errorf("%w: %q", agent.ErrUnknownCamera, camera)
		case "dark":
			return agent.Snapshot{}, fmt.Errorf("%w: %s", agent.ErrNoFrame, camera)
		case "huge":
			return agent.Snapshot{}, fmt.Errorf("%w: huge", agent.ErrTooLarge)
		}
		encodes++
		return agent.Snapshot{JPEG: make([]byte, 100), Width: 64, Height: 48, Time: now.Add(-time.Second)}, nil
	}
	s := newSnapshotter(encode, nil, []string{"belt", "dark", "huge"}, slog.New(slog.DiscardHandler))
	s.now = func() time.Time { return now }
	ask := func(camera string, maxBytes int) api.SnapshotReply {
		return s.answer(api.Command{JobID: "r1", Kind: api.CommandSnapshot, Snapshot: &api.SnapshotRequest{Camera: camera, MaxBytes: maxBytes}})
	}
	for _, tt := range []struct{ camera, code string }{
		{"nope", api.SnapshotUnknownCamera}, {"dark", api.SnapshotNoFrame}, {"huge", api.SnapshotFailed},
	} {
		r := ask(tt.camera, 0)
		if r.Header.Error != tt.code || r.JPEG != nil || r.Header.RequestID != "r1" || r.Header.Camera != tt.camera {
			t.Errorf("%s: %+v, want code %s", tt.camera, r.Header, tt.code)
		}
	}
	if r := ask("nope", 0); r.Header.Reason != `agent: unknown camera: "nope" (cameras: belt, dark, huge)` {
		t.Errorf("unknown camera reason %q", r.Header.Reason)
	}

	r := ask("belt", 0)
	if r.Header.Error != "" || len(r.JPEG) != 100 || r.Header.Width != 64 || r.Header.Time != now.Add(-time.Second).UnixMilli() || encodes != 1 {
		t.Fatalf("first: %+v (%d encodes)", r.Header, encodes)
	}
	now = now.Add(snapshotInterval / 2)
	if r := ask("belt", 0); r.Header.Error != "" || len(r.JPEG) != 100 || encodes != 1 {
		t.Errorf("within the interval: %+v, %d encodes; want the previous JPEG", r.Header, encodes)
	}
	if r := ask("belt", 50); r.Header.Error != api.SnapshotRateLimited || r.JPEG != nil || encodes != 1 {
		t.Errorf("within the interval, smaller cap: %+v, %d encodes; want rate_limited", r.Header, encodes)
	}
	now = now.Add(snapshotInterval)
	if r := ask("belt", 50); r.Header.Error != "" || encodes != 2 {
		t.Errorf("after the interval: %+v, %d encodes; want a new encode", r.Header, encodes)
	}
	if code, _ := snapshotError(errors.New("x"), nil); code != api.SnapshotFailed {
		t.Errorf("other error: %s", code)
	}
}

// TestSnapshotterQueue: offer never blocks; past the queue it drops.
func TestSnapshotterQueue(t *testing.T) {
	s := newSnapshotter(nil, nil, nil, slog.New(slog.DiscardHandler))
	c := api.Command{JobID: "r", Kind: api.CommandSnapshot, Snapshot: &api.SnapshotRequest{Camera: "c"}}
	for i := range snapshotQueue {
		if !s.offer(c) {
			t.Fatalf("offer %d refused", i)
		}
	}
	if s.offer(c) {
		t.Fatal("offer past the queue accepted")
	}
}
