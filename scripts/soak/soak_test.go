package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"edgefleet/fleet/sim"
	"edgefleet/scripts/soak/check"
)

func TestParseMetrics(t *testing.T) {
	page := `# HELP go_goroutines Number of goroutines.
# TYPE go_goroutines gauge
go_goroutines 42
edgefleet_ingest_ack_seconds_bucket{le="0.005"} 3
edgefleet_ingest_ack_seconds_bucket{le="+Inf"} 7
garbage
`
	m := parseMetrics(strings.NewReader(page))
	want := map[string]float64{"go_goroutines": 42, `edgefleet_ingest_ack_seconds_bucket{le="0.005"}`: 3, `edgefleet_ingest_ack_seconds_bucket{le="+Inf"}`: 7}
	if len(m) != len(want) {
		t.Fatalf("got %v, want %v", m, want)
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
}

// hist is a scrape of the ack histogram with these cumulative counts.
func hist(b005, b1, inf float64) map[string]float64 {
	return map[string]float64{
		ackBucket + `le="0.005"}`: b005,
		ackBucket + `le="1"}`:     b1,
		ackBucket + `le="+Inf"}`:  inf,
	}
}

// TestAckHistAcrossRestarts sums scrapes of two replicas, one of which
// restarted (its counters went back down).
func TestAckHistAcrossRestarts(t *testing.T) {
	cases := []struct {
		name    string
		scrapes []struct {
			fleetd string
			m      map[string]float64
		}
		wantP99 time.Duration
		wantN   uint64
	}{
		{"none", nil, 0, 0},
		{"fast", []struct {
			fleetd string
			m      map[string]float64
		}{{"a", hist(100, 100, 100)}}, 5 * time.Millisecond, 100},
		{"restart and a slow tail", []struct {
			fleetd string
			m      map[string]float64
		}{
			{"a", hist(90, 95, 95)},
			{"b", hist(50, 50, 50)},
			{"a", hist(10, 10, 15)}, // restarted: 10 + 0 + 5 more
			{"b", hist(60, 60, 60)},
		}, time.Duration(1<<63 - 1), 170},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var h ackHist
			for _, s := range tc.scrapes {
				h.add(s.fleetd, s.m)
			}
			p99, n := h.p99()
			if p99 != tc.wantP99 || n != tc.wantN {
				t.Fatalf("p99 %v over %d, want %v over %d", p99, n, tc.wantP99, tc.wantN)
			}
		})
	}
}

func TestReportProblems(t *testing.T) {
	base := report{dur: 10 * time.Minute, nFaults: 250, faults: "a 100, b 50, c 50, d 50"}
	cases := []struct {
		name   string
		doctor func(*report)
		want   string
	}{
		{"enough", func(*report) {}, ""},
		{"too few faults", func(r *report) { r.nFaults = 150 }, "only 150 faults injected, want at least 200"},
		{"too few kinds", func(r *report) { r.faults = "a 100, b 150" }, "only 2 fault kinds"},
		{"short run scales", func(r *report) { r.dur = 2 * time.Minute; r.nFaults = 40 }, ""},
		{"injector error", func(r *report) { r.faultErrs = []string{"restart fleetd-a: boom"} }, "restart fleetd-a: boom"},
		{"simulator lost", func(r *report) { r.sim = sim.Report{Lost: 2} }, "2 batches never acked"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := base
			tc.doctor(&r)
			p := strings.Join(r.problems(), "; ")
			if (tc.want == "") != (p == "") || !strings.Contains(p, tc.want) {
				t.Fatalf("problems %q, want %q", p, tc.want)
			}
			if r.ok() != (tc.want == "") {
				t.Fatalf("ok() = %v with problems %q", r.ok(), p)
			}
		})
	}
	r := base
	r.result = check.Result{Failures: []string{"device x: 1 lost"}}
	if r.ok() {
		t.Fatal("ok() with a broken invariant")
	}
	var out strings.Builder
	r.print(&out)
	if !strings.Contains(out.String(), "FAIL (1)") || !strings.Contains(out.String(), "device x: 1 lost") {
		t.Fatalf("report:\n%s", out.String())
	}
}

func TestTick(t *testing.T) {
	for _, tc := range []struct {
		dur, window, want time.Duration
	}{
		{10 * time.Minute, 7 * time.Minute, 700 * time.Millisecond},
		{2 * time.Minute, time.Minute, 500 * time.Millisecond},
		{30 * time.Minute, 27 * time.Minute, 900 * time.Millisecond},
		{10 * time.Minute, 30 * time.Minute, 1500 * time.Millisecond}, // capped
	} {
		s := &soak{dur: tc.dur}
		if got := s.tick(tc.window); got != tc.want {
			t.Errorf("tick(%v of %v) = %v, want %v", tc.window, tc.dur, got, tc.want)
		}
	}
}

// TestChildOf finds the child a process started from another thread than
// its main one (as edge-launcher starts the agent).
func TestChildOf(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Skip("no sleep command:", err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	if got := childOf(os.Getpid()); got != cmd.Process.Pid {
		t.Fatalf("childOf(self) = %d, want %d", got, cmd.Process.Pid)
	}
	if got := childOf(cmd.Process.Pid); got != 0 {
		t.Fatalf("childOf(sleep) = %d, want 0", got)
	}
}

// TestSettled: a burst of goroutines that passes is not the end reading,
// a count that only grows is; a process without a count keeps its last.
func TestSettled(t *testing.T) {
	g := func(n int, rss uint64) check.Sample { return check.Sample{RSS: rss, Goroutines: n} }
	cases := []struct {
		name   string
		rounds []check.Sample
		want   check.Sample
	}{
		{"burst passes", []check.Sample{g(131, 10), g(60, 11), g(37, 12), g(38, 13)}, g(37, 12)},
		{"leak keeps growing", []check.Sample{g(100, 10), g(110, 11), g(120, 12)}, g(100, 10)},
		{"flat: the last", []check.Sample{g(37, 10), g(37, 11)}, g(37, 11)},
		{"no count: the last", []check.Sample{g(-1, 10), g(-1, 11)}, g(-1, 11)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var rounds []map[string]check.Sample
			for _, sm := range tc.rounds {
				rounds = append(rounds, map[string]check.Sample{"fleetd-a": sm})
			}
			if got := settled(rounds)["fleetd-a"]; got != tc.want {
				t.Fatalf("settled = %+v, want %+v", got, tc.want)
			}
		})
	}
}
