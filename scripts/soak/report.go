package main

import (
	"fmt"
	"io"
	"math"
	"sort"
	"time"

	"edgefleet/fleet/sim"
	"edgefleet/scripts/soak/check"
)

// Must-show bounds of a passing soak: enough faults of enough kinds.
const (
	minFaultsPer10m = 200
	minKinds        = 4
)

// report is what a run prints at the end.
type report struct {
	seed        uint64
	dur         time.Duration
	elapsed     time.Duration
	faults      string
	nFaults     int
	faultErrs   []string
	fleetds     int
	agentStarts int
	acked       uint64
	sim         sim.Report
	in          check.Input
	result      check.Result
}

func (r *report) procs() []check.Process { return r.in.Processes }

func (r *report) p99String() string {
	if r.in.P99 == time.Duration(math.MaxInt64) {
		return "+Inf (above the histogram's largest bucket)"
	}
	return r.in.P99.String()
}

// kinds is how many fault kinds were injected.
func (r *report) kinds() int {
	n := 0
	for _, c := range r.faults {
		if c == ',' {
			n++
		}
	}
	if r.faults != "" {
		n++
	}
	return n
}

// wantFaults is the least number of faults for the run's length.
func (r *report) wantFaults() int {
	return int(float64(minFaultsPer10m) * r.dur.Minutes() / 10)
}

// problems are the run's own failures beside the invariants.
func (r *report) problems() []string {
	p := append([]string(nil), r.faultErrs...)
	if r.nFaults < r.wantFaults() {
		p = append(p, fmt.Sprintf("only %d faults injected, want at least %d for %v", r.nFaults, r.wantFaults(), r.dur))
	}
	if r.kinds() < minKinds {
		p = append(p, fmt.Sprintf("only %d fault kinds injected, want at least %d", r.kinds(), minKinds))
	}
	if r.sim.Lost > 0 {
		p = append(p, fmt.Sprintf("simulator: %d batches never acked", r.sim.Lost))
	}
	return p
}

func (r *report) ok() bool { return r.result.OK() && len(r.problems()) == 0 }

func (r *report) print(w io.Writer) {
	ev := r.result.Events
	fmt.Fprintf(w, "\nsoak report: %v run (%v from start to this report), seed %d, %d fleetd process(es)\n", r.dur, r.elapsed.Round(time.Second), r.seed, r.fleetds)
	fmt.Fprintf(w, "  faults:      %d of %d kinds: %s\n", r.nFaults, r.kinds(), r.faults)
	fmt.Fprintf(w, "  events:      produced %d, stored %d, dropped by spool caps %d (of which %d had reached the fleet), lost %d, duplicates %d\n",
		ev.Produced, ev.Stored, ev.Dropped, ev.DroppedDelivered, ev.Lost, ev.Duplicates)
	fmt.Fprintf(w, "  simulator:   %d devices, %d batches sent, %d resent, %d never acked\n", r.sim.Devices, r.sim.Batches, r.sim.Resent, r.sim.Lost)
	fmt.Fprintf(w, "  rollouts:    %d completed, %d in a final state\n", r.result.Completed, r.result.Final)
	p99, n := "none", r.acked
	if n > 0 {
		p99 = "<= " + r.p99String()
	}
	fmt.Fprintf(w, "  fleetd p99 ingest-to-ack: %s over %d batches\n", p99, n)
	fmt.Fprintf(w, "  agent starts: %d (restarts after kill -9 included)\n", r.agentStarts)
	fmt.Fprintln(w, "  processes (after warm-up -> end):")
	procs := append([]check.Process(nil), r.procs()...)
	sort.Slice(procs, func(i, j int) bool { return procs[i].Name < procs[j].Name })
	for _, p := range procs {
		g := "-"
		if p.Start.Goroutines >= 0 {
			g = fmt.Sprintf("%d -> %d", p.Start.Goroutines, p.End.Goroutines)
		}
		fmt.Fprintf(w, "    %-30s RSS %6.1f -> %6.1f MiB   goroutines %s\n", p.Name, float64(p.Start.RSS)/(1<<20), float64(p.End.RSS)/(1<<20), g)
	}
	fails := append(r.result.Failures, r.problems()...)
	if len(fails) == 0 {
		fmt.Fprintln(w, "  verdict:     PASS (every invariant held)")
		return
	}
	fmt.Fprintf(w, "  verdict:     FAIL (%d)\n", len(fails))
	for _, f := range fails {
		fmt.Fprintf(w, "    - %s\n", f)
	}
}
