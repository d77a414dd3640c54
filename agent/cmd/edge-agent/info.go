package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"text/tabwriter"

	"edgefleet/agent"
	"edgefleet/internal/cli"
	"edgefleet/models"
	"edgefleet/models/meta"
	"edgefleet/models/native"
	"edgefleet/models/tflite"
)

func init() {
	commands["info"] = command{summary: "describe a model and the engines usable here", long: infoLong, run: runInfo}
}

const infoLong = `Prints the model's tensors and operators, and which inference engines and
delegates are usable on this box (for that model, when one is given).
With --strict, the native engine (--backend native) or the --delegate asked
for must be usable: otherwise info prints its report and exits non-zero
naming why.`

type infoFlags struct {
	model, library    string
	backend, delegate string
	threads           int
	jsonOut, strict   bool
	profile           profileFlags
}

func parseInfoFlags(args []string, _ io.Writer) (*infoFlags, error) {
	f := &infoFlags{}
	fs := flag.NewFlagSet("info", flag.ContinueOnError)
	fs.StringVar(&f.model, "model", "", "`path` of a .tflite model to describe and try on each engine")
	fs.StringVar(&f.library, "library", "", "`path` of libtensorflowlite_c.so (default: $"+native.LibraryEnv+", then the usual paths)")
	fs.IntVar(&f.threads, "threads", 1, "threads for the engines tried")
	fs.BoolVar(&f.jsonOut, "json", false, "print one JSON object")
	fs.StringVar(&f.backend, "backend", "", "with --strict: `native` must be usable")
	fs.StringVar(&f.delegate, "delegate", "", "with --strict: the native `delegate` (xnnpack or gpu) that must be usable")
	fs.BoolVar(&f.strict, "strict", false, "exit non-zero, naming why, when the --backend or --delegate asked for is not usable")
	f.profile.register(fs, "on --model (zero input, mean of --profile-runs invokes after one warm-up)")
	fs.IntVar(&f.profile.runs, "profile-runs", 5, "with --profile: invokes to average")
	if _, err := cli.ParseN(fs, args, 0); err != nil {
		return nil, err
	}
	if f.threads < 1 || f.threads > 256 {
		return nil, cli.Usagef("--threads %d: want 1..256", f.threads)
	}
	if err := f.profile.check(); err != nil {
		return nil, err
	}
	if f.profile.on && f.model == "" {
		return nil, cli.Usagef("--profile needs --model")
	}
	if f.profile.runs < 1 || f.profile.runs > 1000 {
		return nil, cli.Usagef("--profile-runs %d: want 1..1000", f.profile.runs)
	}
	switch f.backend {
	case "", "auto", "go", "native":
	default:
		return nil, cli.Usagef("--backend %q: want auto, go or native", f.backend)
	}
	switch f.delegate {
	case "", "none", "xnnpack", "gpu":
	default:
		return nil, cli.Usagef("--delegate %q: want none, xnnpack or gpu", f.delegate)
	}
	return f, nil
}

// strictCheck says why what --strict asks for is not usable (nil when it is,
// or nothing is asked).
func (r *infoReport) strictCheck(f *infoFlags) error {
	if !f.strict {
		return nil
	}
	engine, delegate := "", ""
	switch {
	case f.delegate != "" && f.delegate != "none":
		engine, delegate = "native", f.delegate
	case f.backend == "native":
		engine = "native"
	default:
		return nil
	}
	what := "the native engine"
	if delegate != "" {
		what = "the " + delegate + " delegate"
	}
	var nat *engineUsage
	for i, u := range r.Engines {
		if u.Engine != engine {
			continue
		}
		if u.Delegate == "" {
			nat = &r.Engines[i]
		}
		if u.Delegate != delegate {
			continue
		}
		if u.Usable {
			return nil
		}
		return fmt.Errorf("--strict: %s cannot be used: %s", what, u.Error)
	}
	if nat != nil && !nat.Usable { // no library: no delegate rows either
		return fmt.Errorf("--strict: %s cannot be used: %s", what, nat.Error)
	}
	return fmt.Errorf("--strict: %s cannot be used: not offered by this TFLite library", what)
}

// infoReport is the --json output of info.
type infoReport struct {
	Agent   string        `json:"agent"`
	OS      string        `json:"os"`
	Model   *modelInfo    `json:"model,omitempty"`
	Engines []engineUsage `json:"engines"`
	Native  native.Report `json:"native"`
	// Profile is the go engine's per-operator profile (--profile).
	Profile *tflite.ProfileReport `json:"profile,omitempty"`
}

type modelInfo struct {
	Path        string         `json:"path"`
	Bytes       int            `json:"bytes"`
	SHA256      string         `json:"sha256"`
	Schema      uint32         `json:"schema_version"`
	Description string         `json:"description,omitempty"`
	Subgraphs   int            `json:"subgraphs"`
	Tensors     int            `json:"tensors"`
	Inputs      []tensorInfo   `json:"inputs"`
	Outputs     []tensorInfo   `json:"outputs"`
	Operators   []operatorUse  `json:"operators"`
	Metadata    *meta.Metadata `json:"metadata,omitempty"`
}

type tensorInfo struct {
	Name      string    `json:"name"`
	Type      string    `json:"type"`
	Shape     []int     `json:"shape"`
	Scale     []float32 `json:"scale,omitempty"`
	ZeroPoint []int64   `json:"zero_point,omitempty"`
}

// operatorUse is one operator kind and how many nodes use it.
type operatorUse struct {
	Name    string `json:"name"`
	Version int    `json:"version"`
	Count   int    `json:"count"`
	// Go says whether the pure-Go engine implements the operator.
	Go bool `json:"go"`
}

// engineUsage says whether an engine (and delegate) can run here, and,
// when a model was given, whether it runs that model.
type engineUsage struct {
	Engine   string `json:"engine"`
	Delegate string `json:"delegate,omitempty"`
	Usable   bool   `json:"usable"`
	Version  string `json:"version,omitempty"`
	Error    string `json:"error,omitempty"`
}

func runInfo(ctx context.Context, args []string) error {
	f, err := parseInfoFlags(args, os.Stderr)
	if err != nil {
		return err
	}
	r, err := info(ctx, f)
	if err != nil {
		return err
	}
	if f.jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(r)
	} else {
		err = r.print(os.Stdout)
		if err == nil && r.Profile != nil {
			err = writeProfile(os.Stdout, f.model, r.Profile, f.profile.top)
		}
	}
	if err != nil {
		return err
	}
	return r.strictCheck(f)
}

func info(ctx context.Context, f *infoFlags) (*infoReport, error) {
	r := &infoReport{Agent: agent.Version, OS: runtime.GOOS + "/" + runtime.GOARCH}
	var model []byte
	if f.model != "" {
		var err error
		if model, err = os.ReadFile(f.model); err != nil {
			return nil, fmt.Errorf("model %w", err)
		}
		if r.Model, err = describe(f.model, model); err != nil {
			return nil, fmt.Errorf("model %s: %w", f.model, err)
		}
	}
	opts := models.Options{Threads: f.threads, Library: f.library}
	r.Native = native.Probe(opts)

	// The pure-Go engine needs nothing installed; with a model, try it.
	goEng := engineUsage{Engine: "go", Usable: true, Version: "edgefleet " + agent.Version}
	if model != nil {
		if e, err := tflite.Open(ctx, model, opts); err != nil {
			goEng.Usable, goEng.Error = false, err.Error()
		} else {
			goEng.Version = e.Info().Version
			if f.profile.on {
				r.Profile, err = profileInvokes(ctx, e, f.profile.runs)
			}
			e.Close()
			if err != nil {
				return nil, fmt.Errorf("model %s: profile: %w", f.model, err)
			}
		}
	}
	r.Engines = append(r.Engines, goEng)

	nat := engineUsage{Engine: "native", Version: r.Native.Version, Usable: r.Native.Error == "", Error: r.Native.Error}
	r.Engines = append(r.Engines, tryNative(ctx, nat, model, opts))
	for _, d := range r.Native.Delegates {
		u := engineUsage{Engine: "native", Delegate: d.Name, Version: r.Native.Version, Usable: nat.Usable && d.Available, Error: d.Error}
		if nat.Usable && !d.Available && d.Error == "" {
			u.Error = "unavailable"
		}
		if !nat.Usable {
			u.Error = "no TFLite C library"
		}
		o := opts
		o.Delegate, o.Strict = d.Name, true // strict: say whether the delegate really applies
		r.Engines = append(r.Engines, tryNative(ctx, u, model, o))
	}
	return r, nil
}

// tryNative opens model on the native engine when u is usable so far.
func tryNative(ctx context.Context, u engineUsage, model []byte, opts models.Options) engineUsage {
	if model == nil || !u.Usable {
		return u
	}
	e, err := native.Open(ctx, model, opts)
	if err != nil {
		u.Usable, u.Error = false, err.Error()
		return u
	}
	defer e.Close()
	if got := e.Info().Delegate; opts.Delegate != "" && got != opts.Delegate {
		u.Usable, u.Error = false, fmt.Sprintf("delegate %s not applied", opts.Delegate)
	}
	return u
}

// describe reads the model's structure with the pure-Go format reader.
func describe(path string, model []byte) (*modelInfo, error) {
	m, err := tflite.Parse(model)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(model)
	mi := &modelInfo{
		Path: path, Bytes: len(model), SHA256: hex.EncodeToString(sum[:]),
		Schema: m.Version, Description: m.Description, Subgraphs: len(m.Subgraphs),
	}
	if md, err := meta.FromModel(model); err == nil {
		mi.Metadata = md
	}
	supported := map[tflite.BuiltinOp]bool{}
	for _, op := range tflite.SupportedOps() {
		supported[op] = true
	}
	counts := make([]int, len(m.OperatorCodes))
	for _, sg := range m.Subgraphs {
		mi.Tensors += len(sg.Tensors)
		for _, op := range sg.Operators {
			if op.OpcodeIndex >= 0 && op.OpcodeIndex < len(counts) {
				counts[op.OpcodeIndex]++
			}
		}
	}
	for i, c := range m.OperatorCodes {
		mi.Operators = append(mi.Operators, operatorUse{
			Name: c.Name(), Version: c.Version, Count: counts[i],
			Go: c.Builtin != tflite.OpCustom && supported[c.Builtin],
		})
	}
	sort.SliceStable(mi.Operators, func(i, j int) bool { return mi.Operators[i].Name < mi.Operators[j].Name })
	if len(m.Subgraphs) > 0 {
		sg := m.Subgraphs[0]
		tensor := func(i int) tensorInfo {
			if i < 0 || i >= len(sg.Tensors) {
				return tensorInfo{Name: fmt.Sprintf("tensor %d (out of range)", i)}
			}
			t := sg.Tensors[i]
			ti := tensorInfo{Name: t.Name, Type: t.Type.String(), Shape: t.Shape}
			if t.Quant != nil {
				ti.Scale, ti.ZeroPoint = t.Quant.Scale, t.Quant.ZeroPoint
			}
			return ti
		}
		for _, i := range sg.Inputs {
			mi.Inputs = append(mi.Inputs, tensor(i))
		}
		for _, i := range sg.Outputs {
			mi.Outputs = append(mi.Outputs, tensor(i))
		}
	}
	return mi, nil
}

func (r *infoReport) print(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	if m := r.Model; m != nil {
		fmt.Fprintf(tw, "model\t%s\n", m.Path)
		fmt.Fprintf(tw, "  size\t%d bytes, sha256 %s\n", m.Bytes, m.SHA256)
		fmt.Fprintf(tw, "  graph\tschema v%d, %d subgraph(s), %d tensors, %d operators\n", m.Schema, m.Subgraphs, m.Tensors, opCount(m.Operators))
		if md := m.Metadata; md != nil {
			fmt.Fprintf(tw, "  metadata\tUltralytics %s, task %s, imgsz %v, %d classes, end2end %v\n", md.Version, md.Task, md.ImgSz, len(md.Names), md.EndToEnd)
		}
		tw.Flush()
		fmt.Fprintln(tw, "inputs")
		for i, t := range m.Inputs {
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%v\t%s\n", i, t.Name, t.Type, t.Shape, quantString(t))
		}
		tw.Flush()
		fmt.Fprintln(tw, "outputs")
		for i, t := range m.Outputs {
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%v\t%s\n", i, t.Name, t.Type, t.Shape, quantString(t))
		}
		tw.Flush()
		fmt.Fprintln(tw, "operators (go: the pure-Go engine implements it)")
		for _, op := range m.Operators {
			g := "go"
			if !op.Go {
				g = "NOT in the go engine"
			}
			fmt.Fprintf(tw, "  %s\tv%d\t×%d\t%s\n", op.Name, op.Version, op.Count, g)
		}
	}
	tw.Flush()
	fmt.Fprintf(tw, "engines on this box (%s)\n", r.OS)
	for _, e := range r.Engines {
		name := e.Engine
		if e.Delegate != "" {
			name += "+" + e.Delegate
		}
		state := "usable"
		if !e.Usable {
			state = "not usable"
		}
		detail := e.Version
		if e.Engine == "native" && r.Native.Library != "" {
			detail = "TFLite " + e.Version
			if e.Delegate == "" {
				detail += " " + r.Native.Library
			}
		}
		if e.Error != "" {
			detail = e.Error
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", name, state, detail)
	}
	return tw.Flush()
}

func opCount(ops []operatorUse) int {
	n := 0
	for _, o := range ops {
		n += o.Count
	}
	return n
}

func quantString(t tensorInfo) string {
	switch len(t.Scale) {
	case 0:
		return ""
	case 1:
		zp := int64(0)
		if len(t.ZeroPoint) > 0 {
			zp = t.ZeroPoint[0]
		}
		return fmt.Sprintf("scale %.9g zero_point %d", t.Scale[0], zp)
	default:
		return fmt.Sprintf("per-channel, %d scales", len(t.Scale))
	}
}
