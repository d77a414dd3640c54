package spool

import (
	"bytes"
	"context"
	"encoding/hex"
	"path/filepath"
	"reflect"
	"testing"

	bolt "go.etcd.io/bbolt"

	"edgefleet/fleet/api"
)

// analyticsEvent is a line crossing of track i with snapBytes bytes in each
// snapshot part (0: no snapshot).
func analyticsEvent(i, snapBytes int) api.Event {
	e := ev(i)
	e.Type, e.V = api.TypeLineCross, api.EventVersion
	e.Track = &api.TrackInfo{ID: uint64(i), FirstUs: e.Time - 1000, LastUs: e.Time, Frames: 12,
		Path: [][2]float32{{0.1, 0.9}, {0.5, 0.5}, {0.9, 0.1}}}
	e.Line = &api.LineCross{Line: "door", Direction: api.DirectionIn}
	if snapBytes > 0 {
		e.Snapshot = &api.EventSnapshot{TimeUs: e.Time - 500,
			Crop:  bytes.Repeat([]byte{0xFF, byte(i)}, snapBytes/2),
			Thumb: bytes.Repeat([]byte{0xD8, byte(i)}, snapBytes/2)}
	}
	return e
}

func TestRecordRoundTripAnalytics(t *testing.T) {
	zone := ev(3)
	zone.Type, zone.V = api.TypeZoneExit, 1
	zone.Zone = &api.ZoneInfo{Zone: "bay-2", DwellMs: 4200}
	end := ev(4)
	end.Type, end.V = api.TypeTrackEnd, 1
	end.Track = &api.TrackInfo{ID: 1 << 40, FirstUs: -3, LastUs: 9, Frames: 2}
	snapOnly := ev(5)
	snapOnly.Type, snapOnly.V = api.TypeZoneEnter, 1
	snapOnly.Zone = &api.ZoneInfo{Zone: "z"}
	snapOnly.Snapshot = &api.EventSnapshot{TimeUs: 7, Thumb: []byte{1, 2, 3}}
	tests := []struct {
		name string
		e    api.Event
	}{
		{"line cross with snapshot", analyticsEvent(1, 2000)},
		{"line cross without snapshot", analyticsEvent(2, 0)},
		{"zone exit", zone},
		{"track end", end},
		{"thumb only", snapOnly},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := record(5, 99, tt.e)
			if len(v) > bodySize(&tt.e) {
				t.Fatalf("record is %d bytes, bodySize promised at most %d", len(v), bodySize(&tt.e))
			}
			got, us, err := decodeRecord(5, v, interner{})
			want := tt.e
			want.Seq = 5
			if err != nil || us != 99 || !reflect.DeepEqual(got, want) {
				t.Fatalf("decoded %+v at %d (%v), want %+v", got, us, err, want)
			}
		})
	}
}

// TestDetectionStaysCompact: format 3 adds nothing to a detection.
func TestDetectionStaysCompact(t *testing.T) {
	e := ev(1)
	if n := len(record(7, 1_700_000_000_000_001, e)); n > 70 {
		t.Fatalf("a typical detection takes %d bytes, want about 60", n)
	}
	a := analyticsEvent(1, 0)
	if d, n := len(record(7, 1, e)), len(record(7, 1, a)); n-d > 80 {
		t.Fatalf("a line crossing without snapshot takes %d bytes more than a detection", n-d)
	}
}

// TestRecordGoldenV3 pins format 3: a detection and a line crossing.
func TestRecordGoldenV3(t *testing.T) {
	a := analyticsEvent(1, 4)
	for _, tt := range []struct {
		e      api.Event
		golden string
	}{
		{ev(1), "038180f9c0c1c482038280f28183898506025c8f023f0000803f000000400000f441000021420563616d2d3107796f6c6f76386e05312e322e3006706572736f6e7e9f6ff6"},
		{a, "038180f9c0c1c482038280f28183898506025c8f023f0000803f000000400000f441000021420563616d2d3107796f6c6f76386e05312e322e3006706572736f6e0a6c696e655f63726f7373010b01b2f0f181838985068280f281838985061803cdcccc3d6666663f0000003f0000003f6666663fcdcccc3d04646f6f7202696e" +
			"9af8f1818389850604ff01ff0104d801d80158224f60"},
	} {
		v := record(7, 1_700_000_000_000_001, tt.e)
		if got := hex.EncodeToString(v); got != tt.golden {
			t.Errorf("format 3 encoding of %s changed:\n got %s\nwant %s", tt.e.Type, got, tt.golden)
		}
	}
}

// TestUpgradeFromV2 is the read-old, write-new path: a schema 2 file with
// format 2 records opens as schema 3, its records read as before, and new
// analytics events are written in format 3 beside them.
func TestUpgradeFromV2(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v2.db")
	// The format 2 record of ev(1) at seq 7 (TestRecordGolden pins it).
	old, _ := hex.DecodeString("028180f9c0c1c482038280f28183898506025c8f023f0000803f000000400000f441000021420563616d2d3107796f6c6f76386e05312e322e3006706572736f6e66e12017")
	writeBolt(t, path, func(tx *bolt.Tx) error {
		m, _ := tx.CreateBucket(bucketMeta)
		b, _ := tx.CreateBucket(bucketEvents)
		m.Put(keyVersion, u64(2))
		if err := writeMeta(tx, persisted{nextSeq: 8, count: 1, bytes: uint64(8 + len(old) + elemOverhead)}); err != nil {
			return err
		}
		return b.Put(u64(7), old)
	})
	s := open(t, path, Options{})
	a := analyticsEvent(2, 1000)
	if f, _, err := s.Append(ctx, a); err != nil || f != 8 {
		t.Fatalf("Append after upgrade = %d, %v; want seq 8", f, err)
	}
	got, err := s.Next(ctx, 0, 10)
	if err != nil || len(got) != 2 {
		t.Fatalf("Next = %d events, %v", len(got), err)
	}
	want0, want1 := ev(1), a
	want0.Seq, want1.Seq = 7, 8
	if !reflect.DeepEqual(got[0], want0) || !reflect.DeepEqual(got[1], want1) {
		t.Fatalf("after upgrade got\n%+v\n%+v", got[0], got[1])
	}
	s.Close()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keyVersion); !bytes.Equal(v, u64(schemaVersion)) {
			t.Errorf("version after upgrade = %x, want %d", v, schemaVersion)
		}
		if v := tx.Bucket(bucketEvents).Get(u64(7)); !bytes.Equal(v, old) {
			t.Errorf("the format 2 record was rewritten")
		}
		if v := tx.Bucket(bucketEvents).Get(u64(8)); len(v) == 0 || v[0] != recordFormat {
			t.Errorf("the new record is not format %d", recordFormat)
		}
		return nil
	})
}

// TestByteCapWithSnapshots: snapshot bytes count in the byte budget; events
// carrying them are dropped oldest first and the file stays under the cap.
func TestByteCapWithSnapshots(t *testing.T) {
	const maxBytes = 2 << 20
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "spool.db"), Options{MaxBytes: maxBytes})
	const n, snap = 300, 40 << 10 // 300 events of ~40 KiB: ~12 MB through a 2 MiB file
	for i := 0; i < n; i += 3 {
		batch := []api.Event{analyticsEvent(i, snap), ev(i + 1), analyticsEvent(i+2, snap)}
		if _, _, err := s.Append(ctx, batch...); err != nil {
			t.Fatalf("Append %d: %v (the spool must keep accepting)", i, err)
		}
		if size := fileSize(t, s.Path()); size > maxBytes {
			t.Fatalf("after %d events the file is %d bytes, over %d; %+v", i+3, size, maxBytes, s.Stats())
		}
	}
	st := s.Stats()
	if st.DroppedCap == 0 || st.Bytes > maxBytes || st.Depth == 0 {
		t.Fatalf("Stats = %+v: want drops for the cap and bytes under %d", st, maxBytes)
	}
	if st.Bytes < uint64(st.Depth-st.Depth/3)*snap {
		t.Fatalf("Stats.Bytes %d does not count the snapshots of %d events", st.Bytes, st.Depth)
	}
	got, err := s.Next(ctx, 0, n)
	if err != nil || uint64(len(got)) != st.Depth {
		t.Fatalf("Next = %d events, %v; want %d", len(got), err, st.Depth)
	}
	// Oldest first: what is left is the newest, contiguous, ending at the last.
	for i, e := range got {
		if want := st.NextSeq - uint64(len(got)-i); e.Seq != want {
			t.Fatalf("seq %d at %d, want %d", e.Seq, i, want)
		}
		if e.Type == api.TypeLineCross && (e.Snapshot == nil || len(e.Snapshot.Crop) != snap) {
			t.Fatalf("event %d lost its snapshot", e.Seq)
		}
	}
	if last := got[len(got)-1]; last.Seq != uint64(n) || last.Type != api.TypeLineCross {
		t.Fatalf("newest event = %d %q, want %d line_cross", last.Seq, last.Type, n)
	}
}

// TestNextBytes: NextBytes stops before the records pass maxBytes, and
// returns the first event whatever its size.
func TestNextBytes(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "spool.db"), Options{})
	evs := []api.Event{analyticsEvent(1, 10000), ev(2), ev(3), analyticsEvent(4, 10000), analyticsEvent(5, 10000)}
	if _, _, err := s.Append(ctx, evs...); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		after    uint64
		maxBytes int
		want     int
	}{
		{0, 0, 5},       // no bound
		{0, 100, 1},     // the first alone, whatever its size
		{0, 20300, 3},   // 20 KB of snapshot and two detections
		{0, 41000, 4},   // two snapshot events fit
		{1, 20300, 3},   // detections, then one snapshot event
		{5, 1 << 20, 0}, // nothing after the last
		{0, 1 << 20, 5}, // all
	}
	for _, tt := range tests {
		got, err := s.NextBytes(ctx, tt.after, 100, tt.maxBytes)
		if err != nil || len(got) != tt.want {
			t.Errorf("NextBytes(after %d, %d bytes) = %d events, %v; want %d", tt.after, tt.maxBytes, len(got), err, tt.want)
		}
	}
}
