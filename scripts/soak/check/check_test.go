package check

import (
	"strings"
	"testing"
	"time"
)

// seqs stores each of 1..n once.
func seqs(n uint64) map[uint64]int {
	m := map[uint64]int{}
	for s := uint64(1); s <= n; s++ {
		m[s] = 1
	}
	return m
}

// healthy is a run where every invariant holds: a device that dropped two
// events under its cap (10, and 50 after it reached the fleet), one that
// lost nothing, a completed rollout, and processes that stayed flat.
func healthy() Input {
	dropped := seqs(100)
	delete(dropped, 10)
	return Input{
		Devices: []Device{
			{ID: "box-1", Produced: 100, Stored: dropped, Dropped: 2, DroppedSeqs: []Range{{10, 10}, {50, 50}}},
			{ID: "box-2", Produced: 50, Stored: seqs(50)},
		},
		Rollouts: []Rollout{
			{ID: "r1", State: "completed", Version: "2", Jobs: []Job{{Device: "box-1", State: "succeeded", Previous: "1"}, {Device: "box-2", State: "skipped", Previous: "2"}}},
			{ID: "r3", Kind: "firmware", State: "completed", Version: "2.0.0", Jobs: []Job{{Device: "box-2", State: "succeeded", Previous: "1.0.0"}}},
			{ID: "r2", State: "aborted", Version: "3", Jobs: []Job{{Device: "box-1", State: "failed", Previous: "2"}, {Device: "box-2", State: "succeeded", Previous: "2", Rollback: "succeeded"}}},
			{ID: "r4", State: "aborted", Version: "4", Jobs: []Job{{Device: "box-1", State: "cancelled", Previous: "2"}}},
		},
		Versions:  map[string]string{"box-1": "2", "box-2": "2"},
		Firmware:  map[string]string{"box-1": "1.0.0", "box-2": "2.0.0"},
		Processes: []Process{{Name: "fleetd", Start: Sample{RSS: 50 << 20, Goroutines: 100}, End: Sample{RSS: 80 << 20, Goroutines: 120}}},
		P99:       200 * time.Millisecond,
		Bounds:    DefaultBounds,
	}
}

func TestHealthyRunPasses(t *testing.T) {
	r := Check(healthy())
	if !r.OK() {
		t.Fatalf("failures on a healthy run: %q", r.Failures)
	}
	want := Events{Produced: 150, Stored: 149, Dropped: 2, DroppedDelivered: 1}
	if r.Events != want || r.Completed != 2 || r.Final != 4 {
		t.Fatalf("got %+v completed=%d final=%d, want %+v 2 4", r.Events, r.Completed, r.Final, want)
	}
}

// TestDoctoredInputsFail breaks each invariant in turn and expects the
// checker to name it.
func TestDoctoredInputsFail(t *testing.T) {
	cases := []struct {
		name   string
		doctor func(*Input)
		want   string
	}{
		{"gap", func(in *Input) { delete(in.Devices[1].Stored, 20) }, "box-2: 1 seqs missing (20) that its spool did not drop: 1 lost"},
		{"duplicate", func(in *Input) { in.Devices[1].Stored[7] = 2 }, "box-2: 1 duplicate events stored"},
		{"uncounted drop", func(in *Input) { delete(in.Devices[0].Stored, 11); delete(in.Devices[0].Stored, 12) }, "box-1: 2 seqs missing (11-12) that its spool did not drop: 2 lost"},
		// As many seqs missing as counted dropped, but not the dropped ones.
		{"missing seq not dropped", func(in *Input) { in.Devices[0].Stored[10] = 1; delete(in.Devices[0].Stored, 11) }, "box-1: 1 seqs missing (11) that its spool did not drop: 1 lost"},
		{"list disagrees with counter", func(in *Input) { in.Devices[0].Dropped = 3 }, "box-1: spool counted 3 dropped but lists 2 (+0 unlisted)"},
		{"dropped seq beyond produced", func(in *Input) { in.Devices[0].DroppedSeqs[1] = Range{101, 101} }, "box-1: spool lists dropped seqs 101-101, not an ordered range within 1..100"},
		{"seq beyond produced", func(in *Input) { in.Devices[1].Stored[51] = 1 }, "box-2: stored seqs outside 1..50: 51"},
		{"stuck rollout", func(in *Input) { in.Rollouts[2].State = "wave" }, `rollout r2 (model 3) ended in state "wave"`},
		{"wrong version", func(in *Input) { in.Versions["box-1"] = "3" }, `device box-1 runs model version "3", its last rollout says "2"`},
		{"runs a version never sent", func(in *Input) { in.Versions["box-1"] = "4" }, `device box-1 runs model version "4", its last rollout says "2"`},
		{"wrong firmware", func(in *Input) { in.Firmware["box-2"] = "1.0.0" }, `device box-2 runs firmware version "1.0.0", its last rollout says "2.0.0"`},
		{"growing RSS", func(in *Input) { in.Processes[0].End.RSS = 200 << 20 }, "fleetd: RSS grew 50.0 MiB -> 200.0 MiB, over the bound 164.0 MiB"},
		{"growing goroutines", func(in *Input) { in.Processes[0].End.Goroutines = 400 }, "fleetd: goroutines grew 100 -> 400, over the bound 250"},
		{"slow acks", func(in *Input) { in.P99 = 6 * time.Second }, "fleetd p99 ingest-to-ack 6s is over 5s"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := healthy()
			tc.doctor(&in)
			r := Check(in)
			if len(r.Failures) != 1 || !strings.Contains(r.Failures[0], tc.want) {
				t.Fatalf("failures %q, want one containing %q", r.Failures, tc.want)
			}
		})
	}
}

// TestUnlistedDrops: drops the spool no longer lists excuse missing seqs
// at or below UnlistedTo, no more of them than Unlisted.
func TestUnlistedDrops(t *testing.T) {
	cases := []struct {
		name     string
		missing  []uint64
		lost     uint64
		delivers uint64
	}{
		{"one unlisted missing, one delivered", []uint64{10, 12}, 0, 2},
		{"both unlisted missing", []uint64{10, 12, 14}, 0, 1},
		{"more missing than unlisted", []uint64{10, 12, 14, 15}, 1, 1},
		{"missing above UnlistedTo", []uint64{10, 30}, 1, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := healthy()
			d := &in.Devices[0]
			d.Stored = seqs(100)
			for _, s := range tc.missing {
				delete(d.Stored, s)
			}
			d.Dropped, d.Unlisted, d.UnlistedTo = 4, 2, 20
			r := Check(in)
			if r.Events.Lost != tc.lost || r.Events.DroppedDelivered != tc.delivers || r.OK() != (tc.lost == 0) {
				t.Fatalf("lost=%d delivered=%d failures %q; want lost %d, delivered %d", r.Events.Lost, r.Events.DroppedDelivered, r.Failures, tc.lost, tc.delivers)
			}
		})
	}
}

func TestLostAndDuplicatesCounted(t *testing.T) {
	in := healthy()
	delete(in.Devices[1].Stored, 1)
	delete(in.Devices[1].Stored, 2)
	in.Devices[1].Stored[3] = 3
	r := Check(in)
	if r.Events.Lost != 2 || r.Events.Duplicates != 2 {
		t.Fatalf("lost=%d duplicates=%d, want 2 and 2", r.Events.Lost, r.Events.Duplicates)
	}
}

func TestRanges(t *testing.T) {
	cases := []struct {
		in   []uint64
		want string
	}{
		{nil, ""},
		{[]uint64{5}, "5"},
		{[]uint64{1, 2, 3, 7, 9, 10}, "1-3,7,9-10"},
		{[]uint64{1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23}, "1,3,5,7,9,11,13,15,17,19,..."},
	}
	for _, tc := range cases {
		if got := ranges(tc.in); got != tc.want {
			t.Errorf("ranges(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
