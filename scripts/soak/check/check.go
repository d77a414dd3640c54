// Package check holds the soak run's invariants as pure functions over what
// the run observed, so that each can be shown to fail on doctored inputs:
//
//   - every device's stored seqs are 1..N with no duplicate, and every seq
//     missing is one its spool says it dropped (none is lost); the seqs the
//     spool lists as dropped add up to what it counted, and those the fleet
//     stored anyway (dropped after delivery) are counted, not failed;
//   - every rollout reaches a final state;
//   - every device ends on the version its last rollout says (a job the
//     rollout never sent, cancelled, says nothing);
//   - no process's RSS or goroutine count grows without bound;
//   - fleetd's p99 ingest-to-ack stays within a bound.
//
// Check gathers the verdicts and the totals the soak report prints.
package check

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// Device is what the run knows of one device's events at the end.
type Device struct {
	ID string
	// Produced is the highest seq the device assigned (its spool's
	// NextSeq-1, or the simulator's last seq).
	Produced uint64
	// Stored counts, per seq, the copies the fleet holds.
	Stored map[uint64]int
	// Dropped is what the device's spool counted as dropped (cap, age,
	// full) over the file's life.
	Dropped uint64
	// DroppedSeqs are the seqs the spool says it dropped, merged, in
	// order; Unlisted more were dropped but are no longer listed (the
	// spool's list is bounded), all at or below UnlistedTo. The listed
	// seqs plus Unlisted must add up to Dropped. An event can be dropped
	// after it reached the fleet: such seqs are stored, not missing.
	DroppedSeqs          []Range
	Unlisted, UnlistedTo uint64
}

// Range is an inclusive range of seqs.
type Range struct{ From, To uint64 }

// Events sums the devices' event verdicts.
type Events struct {
	Produced, Stored, Dropped uint64
	Lost, Duplicates          uint64
	// DroppedDelivered counts events the spool dropped after they had
	// reached the fleet (dropped while their ack was on its way).
	DroppedDelivered uint64
}

// Rollout is one rollout's final view.
type Rollout struct {
	ID      string
	Kind    string // "model" or "firmware"
	State   string
	Version string
	Jobs    []Job
}

// Job is one device's part of a rollout.
type Job struct {
	Device   string
	State    string // rollout job state: succeeded, skipped, failed, rolled_back, timed_out...
	Previous string // the version before the rollout
	Rollback string // state of the rollback job sent to it, if any
}

// Sample is one reading of a process.
type Sample struct {
	RSS        uint64 // bytes
	Goroutines int    // -1 when the process does not say
}

// Process is a process's reading after warm-up and at the end.
type Process struct {
	Name       string
	Start, End Sample
}

// Bounds are the limits of the growth and latency invariants.
type Bounds struct {
	// RSS may end at most RSSFactor*start + RSSSlack bytes.
	RSSFactor float64
	RSSSlack  uint64
	// Goroutines may end at most GoroutineFactor*start + GoroutineSlack.
	GoroutineFactor float64
	GoroutineSlack  int
	// P99 is the most fleetd's p99 ingest-to-ack may be.
	P99 time.Duration
}

// DefaultBounds are the soak's limits: memory and goroutines may double
// after warm-up plus a fixed slack (caches, pools, reconnect buffers), and
// ingest-to-ack p99 stays under 5 s on a busy 2-core machine.
var DefaultBounds = Bounds{RSSFactor: 2, RSSSlack: 64 << 20, GoroutineFactor: 2, GoroutineSlack: 50, P99: 5 * time.Second}

// Input is everything the checker judges.
type Input struct {
	Devices   []Device
	Rollouts  []Rollout
	Versions  map[string]string // device -> model version it runs at the end
	Firmware  map[string]string // device -> agent version it runs at the end
	Processes []Process
	P99       time.Duration // fleetd's p99 ingest-to-ack during the run
	Bounds    Bounds
}

// Result is the checker's verdict.
type Result struct {
	Events    Events
	Completed int      // rollouts completed
	Final     int      // rollouts in a final state
	Failures  []string // one line per broken invariant, empty when all hold
}

// OK reports whether every invariant held.
func (r Result) OK() bool { return len(r.Failures) == 0 }

// Check judges in.
func Check(in Input) Result {
	var r Result
	for _, d := range in.Devices {
		r.Failures = append(r.Failures, checkDevice(d, &r.Events)...)
	}
	r.Failures = append(r.Failures, checkRollouts(in.Rollouts, map[string]map[string]string{"model": in.Versions, "firmware": in.Firmware}, &r)...)
	for _, p := range in.Processes {
		r.Failures = append(r.Failures, checkGrowth(p, in.Bounds)...)
	}
	if in.Bounds.P99 > 0 && in.P99 > in.Bounds.P99 {
		r.Failures = append(r.Failures, fmt.Sprintf("fleetd p99 ingest-to-ack %v is over %v", in.P99, in.Bounds.P99))
	}
	return r
}

// checkDevice adds d to ev and says what is wrong with its seqs.
func checkDevice(d Device, ev *Events) []string {
	var fails []string
	var missing []uint64
	var dups, stored uint64
	for seq := uint64(1); seq <= d.Produced; seq++ {
		switch n := d.Stored[seq]; {
		case n == 0:
			missing = append(missing, seq)
		case n > 1:
			dups += uint64(n - 1)
			stored++
		default:
			stored++
		}
	}
	var beyond []uint64
	for seq, n := range d.Stored {
		if (seq == 0 || seq > d.Produced) && n > 0 {
			beyond = append(beyond, seq)
		}
	}
	ev.Produced += d.Produced
	ev.Stored += stored
	ev.Dropped += d.Dropped
	ev.Duplicates += dups
	if dups > 0 {
		fails = append(fails, fmt.Sprintf("device %s: %d duplicate events stored", d.ID, dups))
	}
	if len(beyond) > 0 {
		slices.Sort(beyond)
		fails = append(fails, fmt.Sprintf("device %s: stored seqs outside 1..%d: %s", d.ID, d.Produced, ranges(beyond)))
	}
	return append(fails, checkDrops(d, missing, ev)...)
}

// checkDrops says which missing seqs d's spool did not drop and whether its
// list of dropped seqs agrees with its counter; it counts in ev the dropped
// events the fleet stored anyway.
func checkDrops(d Device, missing []uint64, ev *Events) []string {
	var fails []string
	var listed uint64
	for i, r := range d.DroppedSeqs {
		if r.From == 0 || r.To < r.From || r.To > d.Produced || (i > 0 && r.From <= d.DroppedSeqs[i-1].To) {
			fails = append(fails, fmt.Sprintf("device %s: spool lists dropped seqs %d-%d, not an ordered range within 1..%d", d.ID, r.From, r.To, d.Produced))
			return fails
		}
		listed += r.To - r.From + 1
	}
	if listed+d.Unlisted != d.Dropped {
		fails = append(fails, fmt.Sprintf("device %s: spool counted %d dropped but lists %d (+%d unlisted)", d.ID, d.Dropped, listed, d.Unlisted))
	}
	var lost []uint64
	var droppedMissing, unlistedUsed uint64
	for _, seq := range missing {
		i := sort.Search(len(d.DroppedSeqs), func(i int) bool { return d.DroppedSeqs[i].To >= seq })
		switch {
		case i < len(d.DroppedSeqs) && d.DroppedSeqs[i].From <= seq:
			droppedMissing++
		case seq <= d.UnlistedTo && unlistedUsed < d.Unlisted:
			unlistedUsed++
		default:
			lost = append(lost, seq)
		}
	}
	if len(lost) > 0 {
		ev.Lost += uint64(len(lost))
		fails = append(fails, fmt.Sprintf("device %s: %d seqs missing (%s) that its spool did not drop: %d lost",
			d.ID, len(lost), ranges(lost), len(lost)))
	}
	ev.DroppedDelivered += listed - droppedMissing + d.Unlisted - unlistedUsed
	return fails
}

// checkRollouts says which rollouts are not final and which devices are
// not on the version (model or agent, by the rollout's kind) their last
// rollout of that kind leaves them on.
func checkRollouts(rs []Rollout, versions map[string]map[string]string, r *Result) []string {
	var fails []string
	want := map[[2]string]string{} // kind, device -> version
	for _, ro := range rs {        // oldest first: a later rollout decides
		switch ro.State {
		case "completed":
			r.Completed++
			r.Final++
		case "aborted", "rolled_back":
			r.Final++
		default:
			fails = append(fails, fmt.Sprintf("rollout %s (%s %s) ended in state %q, not a final one", ro.ID, kindOf(ro), ro.Version, ro.State))
			continue
		}
		for _, j := range ro.Jobs {
			k := [2]string{kindOf(ro), j.Device}
			if j.State == "cancelled" {
				continue // never sent: the device stays where earlier rollouts left it
			}
			if v, ok := jobVersion(ro, j); ok {
				want[k] = v
			} else {
				delete(want, k)
			}
		}
	}
	keys := make([][2]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i][0]+keys[i][1] < keys[j][0]+keys[j][1] })
	for _, k := range keys {
		if got := versions[k[0]][k[1]]; got != want[k] {
			fails = append(fails, fmt.Sprintf("device %s runs %s version %q, its last rollout says %q", k[1], k[0], got, want[k]))
		}
	}
	return fails
}

func kindOf(ro Rollout) string {
	if ro.Kind == "" {
		return "model"
	}
	return ro.Kind
}

// jobVersion is the version a finished job leaves its device on; false
// when the outcome does not say (a timed-out job the device may still run).
func jobVersion(ro Rollout, j Job) (string, bool) {
	if j.Rollback == "succeeded" {
		return j.Previous, j.Previous != ""
	}
	switch j.State {
	case "succeeded", "skipped":
		return ro.Version, true
	case "failed", "rolled_back":
		return j.Previous, j.Previous != ""
	}
	return "", false
}

// checkGrowth applies the growth rule to one process.
func checkGrowth(p Process, b Bounds) []string {
	var fails []string
	if limit := uint64(float64(p.Start.RSS)*b.RSSFactor) + b.RSSSlack; b.RSSFactor > 0 && p.End.RSS > limit {
		fails = append(fails, fmt.Sprintf("%s: RSS grew %s -> %s, over the bound %s", p.Name, mib(p.Start.RSS), mib(p.End.RSS), mib(limit)))
	}
	if p.Start.Goroutines >= 0 && p.End.Goroutines >= 0 && b.GoroutineFactor > 0 {
		if limit := int(float64(p.Start.Goroutines)*b.GoroutineFactor) + b.GoroutineSlack; p.End.Goroutines > limit {
			fails = append(fails, fmt.Sprintf("%s: goroutines grew %d -> %d, over the bound %d", p.Name, p.Start.Goroutines, p.End.Goroutines, limit))
		}
	}
	return fails
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// ranges prints sorted seqs as "1-3,7" (at most 10 ranges).
func ranges(seqs []uint64) string {
	var b strings.Builder
	n := 0
	for i := 0; i < len(seqs); {
		j := i
		for j+1 < len(seqs) && seqs[j+1] == seqs[j]+1 {
			j++
		}
		if n == 10 {
			b.WriteString(",...")
			break
		}
		if n > 0 {
			b.WriteByte(',')
		}
		if i == j {
			fmt.Fprintf(&b, "%d", seqs[i])
		} else {
			fmt.Fprintf(&b, "%d-%d", seqs[i], seqs[j])
		}
		n++
		i = j + 1
	}
	return b.String()
}
