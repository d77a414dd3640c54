package tflite

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Profiler records the wall time of every operator over the invokes it is
// attached for, like TFLite's benchmark_model op profiling. Attach one with
// Interpreter.SetProfiler; without one, Invoke pays one branch and nothing
// else. A Profiler belongs to one interpreter and is not safe for concurrent
// use.
type Profiler struct {
	ip      *Interpreter
	invokes int
	total   time.Duration   // sum of the profiled invokes
	ops     []time.Duration // per node index, summed over invokes
}

// SetProfiler attaches p (a new, empty Profiler) to time every later Invoke,
// or detaches the current one when p is nil.
func (ip *Interpreter) SetProfiler(p *Profiler) {
	if p != nil {
		p.ip = ip
		p.Reset()
	}
	ip.prof = p
}

// Reset forgets the invokes recorded so far.
func (p *Profiler) Reset() {
	p.invokes, p.total = 0, 0
	if p.ip != nil {
		p.ops = make([]time.Duration, len(p.ip.nodes))
	}
}

// invokeProfiled is Invoke with a clock read after every operator, so the
// operator times add up to the invoke.
func (ip *Interpreter) invokeProfiled(ctx context.Context) error {
	p := ip.prof
	start := time.Now()
	prev := start
	for i, n := range ip.nodes {
		if n.skip {
			continue
		}
		if i%16 == 0 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("tflite: invoke: %w", err)
			}
		}
		if err := n.k.eval(ip, n); err != nil {
			return err
		}
		now := time.Now()
		p.ops[i] += now.Sub(prev)
		prev = now
	}
	p.total += prev.Sub(start)
	p.invokes++
	return nil
}

// OpProfile is one operator's line of a profile: times are the mean over
// the profiled invokes.
type OpProfile struct {
	Index   int           `json:"index"`
	Type    string        `json:"type"`
	Shape   []int         `json:"shape"` // of the first output
	Time    time.Duration `json:"time_ns"`
	Percent float64       `json:"percent"`
	// MACs are the multiply-accumulates of a convolution, depthwise
	// convolution, fully connected layer or batch matmul (0 for others);
	// GMACs is MACs per second achieved, in billions.
	MACs   int64   `json:"macs,omitempty"`
	GMACs  float64 `json:"gmac_per_s,omitempty"`
	Folded bool    `json:"folded,omitempty"` // constant: evaluated once at load, not per invoke
	Kind   string  `json:"kind,omitempty"`   // the kernel path: s8, f32, hybrid
}

// TypeProfile sums the operators of one type.
type TypeProfile struct {
	Type    string        `json:"type"`
	Count   int           `json:"count"`
	Time    time.Duration `json:"time_ns"`
	Percent float64       `json:"percent"`
	MACs    int64         `json:"macs,omitempty"`
	GMACs   float64       `json:"gmac_per_s,omitempty"`
}

// ProfileReport is what a Profiler recorded: operators in run order, and
// totals per operator type, most expensive first.
type ProfileReport struct {
	Invokes int           `json:"invokes"`
	Threads int           `json:"threads"`
	Invoke  time.Duration `json:"invoke_ns"` // mean wall time of one invoke
	MACs    int64         `json:"macs"`
	Ops     []OpProfile   `json:"operators"`
	Types   []TypeProfile `json:"types"`
}

// macCounter is implemented by kernels that do multiply-accumulates.
type macCounter interface {
	macs(n *node) int64
	kindName() string
}

// Report summarises the invokes recorded since the profiler was attached or
// reset; every operator of the graph has a line, folded ones with no time.
func (p *Profiler) Report() *ProfileReport {
	ip := p.ip
	r := &ProfileReport{Invokes: p.invokes}
	if ip == nil {
		return r
	}
	r.Threads = ip.threads
	div := time.Duration(max(p.invokes, 1))
	r.Invoke = p.total / div
	byType := map[string]*TypeProfile{}
	for i, n := range ip.nodes {
		o := OpProfile{Index: n.index, Type: n.code.Name(), Folded: n.folded}
		if i < len(p.ops) {
			o.Time = p.ops[i] / div
		}
		if len(n.out) > 0 {
			o.Shape = append([]int(nil), n.out[0].shape...)
		}
		if mc, ok := n.k.(macCounter); ok && !n.skip {
			o.MACs, o.Kind = mc.macs(n), mc.kindName()
		}
		if n.fused >= 0 {
			o.Kind = fmt.Sprintf("fused into %d", n.fused)
		}
		if fk, ok := n.k.(interface{ kindName() string }); ok && o.Kind == "" && !n.skip {
			o.Kind = fk.kindName()
		}
		o.Percent, o.GMACs = percent(o.Time, r.Invoke), gmacs(o.MACs, o.Time)
		r.Ops = append(r.Ops, o)
		r.MACs += o.MACs
		t := byType[o.Type]
		if t == nil {
			t = &TypeProfile{Type: o.Type}
			byType[o.Type] = t
		}
		t.Count++
		t.Time += o.Time
		t.MACs += o.MACs
	}
	for _, t := range byType {
		t.Percent, t.GMACs = percent(t.Time, r.Invoke), gmacs(t.MACs, t.Time)
		r.Types = append(r.Types, *t)
	}
	slices.SortFunc(r.Types, func(a, b TypeProfile) int {
		return cmp.Or(cmp.Compare(b.Time, a.Time), cmp.Compare(a.Type, b.Type))
	})
	return r
}

func percent(d, total time.Duration) float64 {
	if total <= 0 {
		return 0
	}
	return 100 * float64(d) / float64(total)
}

func gmacs(macs int64, d time.Duration) float64 {
	if macs == 0 || d <= 0 {
		return 0
	}
	return float64(macs) / d.Seconds() / 1e9
}

// WriteTable prints the report as text: a summary line, the operators (in
// run order, or the top most expensive when top > 0) and the totals per
// operator type.
func (r *ProfileReport) WriteTable(w io.Writer, top int) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "invoke %.2f ms (mean of %d, %d threads), %.2f GMAC, %.1f GMAC/s\n",
		ms64(r.Invoke), r.Invokes, r.Threads, float64(r.MACs)/1e9, gmacs(r.MACs, r.Invoke))
	ops := r.Ops
	title := "operators in run order"
	if top > 0 && top < len(ops) {
		ops = slices.Clone(ops)
		slices.SortStableFunc(ops, func(a, b OpProfile) int { return cmp.Compare(b.Time, a.Time) })
		ops = ops[:top]
		title = fmt.Sprintf("top %d of %d operators by time", top, len(r.Ops))
	}
	fmt.Fprintf(tw, "\n%s:\n", title)
	fmt.Fprint(tw, "index\ttype\tpath\toutput shape\tms\t%\tMMAC\tGMAC/s\t\n")
	for _, o := range ops {
		t := fmt.Sprintf("%.3f", ms64(o.Time))
		if o.Folded {
			t = "folded"
		}
		kind := cmp.Or(o.Kind, "-")
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%.1f\t%s\t%s\t\n", o.Index, o.Type, kind, shapeString(o.Shape), t, o.Percent, macCol(o.MACs), rateCol(o.GMACs))
	}
	fmt.Fprint(tw, "\nby operator type:\n")
	fmt.Fprint(tw, "type\tcount\tms\t%\tMMAC\tGMAC/s\t\n")
	for _, t := range r.Types {
		fmt.Fprintf(tw, "%s\t%d\t%.3f\t%.1f\t%s\t%s\t\n", t.Type, t.Count, ms64(t.Time), t.Percent, macCol(t.MACs), rateCol(t.GMACs))
	}
	return tw.Flush()
}

func ms64(d time.Duration) float64 { return float64(d) / 1e6 }

func macCol(m int64) string {
	if m == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", float64(m)/1e6)
}

func rateCol(g float64) string {
	if g == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", g)
}

func shapeString(s []int) string {
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = fmt.Sprint(d)
	}
	return strings.Join(parts, "x")
}

// MACs of the kernels that multiply.

func (c *conv) macs(n *node) int64 {
	g := c.g
	perOut := int64(g.kh * g.kw)
	if !c.depthwise {
		perOut *= int64(g.ic / max(c.groups, 1))
	}
	return int64(g.n*g.oh*g.ow*g.oc) * perOut
}

func (c *conv) kindName() string { return c.kind }

func (k *fullyConnected) macs(n *node) int64 { return int64(k.rows) * int64(k.in) * int64(k.out) }

func (k *fullyConnected) kindName() string { return k.kind }

func (k *batchMatmul) macs(n *node) int64 {
	return int64(n.out[0].elems()) * int64(k.kd)
}

func (k *batchMatmul) kindName() string { return "f32" }
