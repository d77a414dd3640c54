package tflite

import (
	"context"
	"fmt"
	"runtime"
	"unsafe"

	"edgefleet/models"
	"edgefleet/models/tfmodel"
)

// Version is reported in EngineInfo.
const Version = "edgefleet-go-1"

// Interpreter runs the main subgraph of a Model in pure Go. Tensors live in
// one arena planned by lifetime when the interpreter is built (and again on
// SetBatch); Invoke allocates no tensor or scratch memory, only small index
// buffers and worker closures. An Interpreter is not safe for
// concurrent use.
type Interpreter struct {
	model   *Model
	sg      *Subgraph
	tensors []*rtensor
	nodes   []*node
	arena   []byte
	scratch [][]byte // per worker, sized for the hungriest kernel
	threads int
	pool    *workers // threads-1 helper goroutines; nil for one thread
	batch   int
	// scratchNeed is the largest per-worker scratch a kernel asked for in prepare.
	scratchNeed int
	prof        *Profiler // nil unless SetProfiler attached one
	// qin holds the int8 copy of a hybrid convolution's float input
	// (op_hybrid.go), qinNeed elements for the largest.
	qin     []int8
	qinNeed int
}

var _ models.Engine = (*Interpreter)(nil)
var _ models.Batcher = (*Interpreter)(nil)

// rtensor is a tensor at run time.
type rtensor struct {
	decl  *Tensor
	idx   int
	typ   models.DType
	shape []int
	quant *models.Quant
	data  []byte
	konst bool // constant: data from the model (or folded at load)
	// planning
	first, last int
}

func (t *rtensor) elems() int {
	n := 1
	for _, d := range t.shape {
		n *= d
	}
	return n
}

func (t *rtensor) bytes() int { return t.elems() * t.typ.Size() }

func (t *rtensor) name() string { return fmt.Sprintf("%q", t.decl.Name) }

// scale and zp of a per-tensor quantized tensor (scale 0 when not quantized).
func (t *rtensor) scale() float64 {
	if t.quant == nil || len(t.quant.Scale) == 0 {
		return 0
	}
	return float64(t.quant.Scale[0])
}

func (t *rtensor) zp() int32 {
	if t.quant == nil || len(t.quant.ZeroPoint) == 0 {
		return 0
	}
	return int32(t.quant.ZeroPoint[0])
}

// node is one operator instance.
type node struct {
	index  int
	code   OperatorCode
	op     *Operator
	k      opKernel
	in     []*rtensor // nil for optional inputs given as -1
	out    []*rtensor
	folded bool // all inputs constant: evaluated once at load
	// fused is the index of the operator that does this one's work as part
	// of its own (fuse.go), -1 when none: the operator no longer runs.
	fused int
	skip  bool // folded or fused: Invoke does not run it
}

func (n *node) String() string {
	return fmt.Sprintf("operator %d (%s v%d)", n.index, n.code.Name(), n.code.Version)
}

func (n *node) errorf(format string, args ...any) error {
	return fmt.Errorf("tflite: %s: "+format, append([]any{n}, args...)...)
}

// kernel implements one operator kind.
type opKernel interface {
	// prepare checks inputs, sets output shapes and types, and precomputes
	// what eval needs from constant inputs.
	prepare(ip *Interpreter, n *node) error
	eval(ip *Interpreter, n *node) error
}

// registry maps builtin operators to kernel constructors.
var registry = map[BuiltinOp]func() opKernel{}

func register(op BuiltinOp, f func() opKernel) { registry[op] = f }

// SupportedOps lists the operators the interpreter runs.
func SupportedOps() []BuiltinOp {
	out := make([]BuiltinOp, 0, len(registry))
	for op := range registry {
		out = append(out, op)
	}
	return out
}

// Open parses model bytes and builds an interpreter (models.Opener).
func Open(ctx context.Context, model []byte, opts models.Options) (models.Engine, error) {
	m, err := Parse(model)
	if err != nil {
		return nil, err
	}
	return NewInterpreter(m, opts)
}

// NewInterpreter builds an interpreter for the model's main subgraph. An
// operator it does not implement is an error naming it, at load time.
func NewInterpreter(m *Model, opts models.Options) (ip *Interpreter, err error) {
	if opts.Delegate != "" && opts.Delegate != "none" {
		return nil, fmt.Errorf("tflite: the pure-Go engine has no %q delegate", opts.Delegate)
	}
	threads := opts.Threads
	if threads <= 0 {
		threads = 1
	}
	if threads > 64 {
		threads = 64
	}
	ip = &Interpreter{model: m, sg: &m.Subgraphs[0], threads: threads, batch: 1}
	var unsupported []string
	seen := map[string]bool{}
	for i := range ip.sg.Operators {
		op := &ip.sg.Operators[i]
		code := m.OperatorCodes[op.OpcodeIndex]
		if _, ok := registry[code.Builtin]; !ok || code.Builtin == OpCustom {
			name := fmt.Sprintf("%s (v%d)", code.Name(), code.Version)
			if !seen[name] {
				seen[name] = true
				unsupported = append(unsupported, name)
			}
		}
	}
	if len(unsupported) > 0 {
		return nil, fmt.Errorf("tflite: %w: operator(s) %v not implemented by the pure-Go interpreter", models.ErrUnsupported, unsupported)
	}
	// Options of a hostile file are read lazily by the kernels; recover the
	// reader's format errors there too.
	defer func() {
		if r := recover(); r != nil {
			if fe, ok := r.(*tfmodel.FormatError); ok {
				ip, err = nil, fmt.Errorf("%w: %s", ErrFormat, fe.Msg)
				return
			}
			panic(r)
		}
	}()
	if err := ip.build(); err != nil {
		return nil, err
	}
	if threads > 1 {
		ip.pool = newWorkers(threads - 1)
		// The workers hold only the pool, so an interpreter dropped without
		// Close is still collected, and this stops its workers.
		runtime.AddCleanup(ip, func(p *workers) { p.close() }, ip.pool)
	}
	return ip, nil
}

// build creates run-time tensors and nodes, prepares every node (shapes),
// folds constant subgraphs and plans the arena.
func (ip *Interpreter) build() error {
	sg := ip.sg
	ip.tensors = make([]*rtensor, len(sg.Tensors))
	for i := range sg.Tensors {
		d := &sg.Tensors[i]
		t := &rtensor{decl: d, idx: i, typ: d.Type, shape: append([]int(nil), d.Shape...), quant: d.Quant, first: -1, last: -1}
		if d.Sparse {
			return fmt.Errorf("tflite: tensor %q: %w: sparse tensors", d.Name, models.ErrUnsupported)
		}
		if buf := ip.model.Buffers[d.Buffer]; len(buf) > 0 {
			if t.typ.Size() == 0 {
				return fmt.Errorf("tflite: tensor %q: %w: constant of type %s", d.Name, models.ErrUnsupported, t.typ)
			}
			if len(buf) != t.bytes() {
				return fmt.Errorf("%w: tensor %q: buffer has %d bytes, shape %v of %s needs %d", ErrFormat, d.Name, len(buf), t.shape, t.typ, t.bytes())
			}
			t.data = aligned(buf)
			t.konst = true
		}
		if t.quant != nil && len(t.quant.Scale) > 1 && (t.quant.Axis < 0 || t.quant.Axis >= len(t.shape) || t.shape[t.quant.Axis] != len(t.quant.Scale)) {
			return fmt.Errorf("%w: tensor %q: %d per-channel scales do not match axis %d of shape %v", ErrFormat, d.Name, len(t.quant.Scale), t.quant.Axis, t.shape)
		}
		ip.tensors[i] = t
	}
	for _, i := range sg.Inputs {
		if i < 0 {
			return fmt.Errorf("%w: graph input index -1", ErrFormat)
		}
		if ip.tensors[i].typ.Size() == 0 {
			return fmt.Errorf("tflite: input %q: %w: type %s", sg.Tensors[i].Name, models.ErrUnsupported, ip.tensors[i].typ)
		}
	}
	for _, i := range sg.Outputs {
		if i < 0 {
			return fmt.Errorf("%w: graph output index -1", ErrFormat)
		}
	}
	ip.nodes = make([]*node, len(sg.Operators))
	for i := range sg.Operators {
		op := &sg.Operators[i]
		n := &node{index: i, op: op, code: ip.model.OperatorCodes[op.OpcodeIndex], fused: -1}
		n.k = registry[n.code.Builtin]()
		for _, x := range op.Inputs {
			if x < 0 {
				n.in = append(n.in, nil)
			} else {
				n.in = append(n.in, ip.tensors[x])
			}
		}
		for _, x := range op.Outputs {
			if x < 0 {
				return fmt.Errorf("%w: %s: output index -1", ErrFormat, n)
			}
			if ip.tensors[x].konst {
				return fmt.Errorf("%w: %s: writes constant tensor %q", ErrFormat, n, sg.Tensors[x].Name)
			}
			n.out = append(n.out, ip.tensors[x])
		}
		ip.nodes[i] = n
	}
	ip.fuse()
	return ip.plan()
}

// plan runs prepare on every node for the current input shapes, folds
// all-constant nodes, then lays non-constant tensors out in the arena.
func (ip *Interpreter) plan() error {
	for _, t := range ip.tensors {
		if !t.konst {
			t.data = nil
			t.first, t.last = -1, -1
		}
	}
	for _, i := range ip.sg.Inputs {
		t := ip.tensors[i]
		t.shape = append([]int(nil), t.decl.Shape...)
		if len(t.shape) > 0 {
			t.shape[0] *= ip.batch
		}
		for _, d := range t.shape {
			if d < 0 {
				return fmt.Errorf("tflite: input %s has unknown dimension in %v", t.name(), t.shape)
			}
		}
		if t.bytes() > MaxTensorBytes {
			return fmt.Errorf("tflite: input %s of shape %v needs %d MiB, over the %d MiB limit", t.name(), t.shape, t.bytes()>>20, MaxTensorBytes>>20)
		}
		t.first = 0
	}
	ip.scratchNeed, ip.qinNeed = 0, 0
	for _, n := range ip.nodes {
		n.skip = n.folded || n.fused >= 0
		if n.skip {
			continue
		}
		for i, t := range n.in {
			if t == nil {
				continue
			}
			if !t.konst && t.first < 0 && !ip.isInput(t) {
				return fmt.Errorf("%w: %s: input %d (%s) is read before any operator writes it", ErrFormat, n, i, t.name())
			}
		}
		if err := n.k.prepare(ip, n); err != nil {
			return err
		}
		for _, t := range n.out {
			if t.typ.Size() == 0 {
				return n.errorf("output %s has unsupported type %s", t.name(), t.typ)
			}
			for _, d := range t.shape {
				if d < 0 {
					return n.errorf("output %s has unknown dimension in %v", t.name(), t.shape)
				}
			}
			if t.bytes() > MaxTensorBytes {
				return n.errorf("output %s of shape %v needs %d MiB, over the %d MiB limit", t.name(), t.shape, t.bytes()>>20, MaxTensorBytes>>20)
			}
			if ip.batch == 1 && len(t.decl.Shape) == len(t.shape) && !sameShape(t.decl.Shape, t.shape) && !hasUnknown(t.decl.ShapeSignature) {
				return n.errorf("output %s: computed shape %v, model declares %v", t.name(), t.shape, t.decl.Shape)
			}
		}
		if ip.foldable(n) {
			for _, t := range n.out {
				t.data = make([]byte, t.bytes())
			}
			if err := n.k.eval(ip, n); err != nil {
				return err
			}
			for _, t := range n.out {
				t.konst = true
			}
			n.folded, n.skip = true, true
			continue
		}
		for _, t := range n.out {
			if t.first < 0 {
				t.first = n.index
			}
			t.last = n.index
		}
		for _, t := range n.in {
			if t != nil && !t.konst {
				t.last = max(t.last, n.index)
			}
		}
	}
	end := len(ip.nodes)
	for _, i := range ip.sg.Outputs {
		t := ip.tensors[i]
		if t.first < 0 && !t.konst && !ip.isInput(t) {
			return fmt.Errorf("%w: graph output %s is never written", ErrFormat, t.name())
		}
		t.last = end
	}
	for _, i := range ip.sg.Inputs {
		t := ip.tensors[i]
		t.last = max(t.last, 0)
	}
	return ip.allocate()
}

// Memory limits that keep a hostile or mistaken model from exhausting the
// box: no YOLO-class model comes near them.
const (
	MaxTensorBytes = 256 << 20
	MaxArenaBytes  = 1 << 30
)

func (ip *Interpreter) isInput(t *rtensor) bool {
	for _, i := range ip.sg.Inputs {
		if i == t.idx {
			return true
		}
	}
	return false
}

func (ip *Interpreter) foldable(n *node) bool {
	for _, t := range n.in {
		if t != nil && !t.konst {
			return false
		}
	}
	return len(n.in) > 0
}

// allocate assigns arena offsets: greedy by size, first fit among the
// tensors whose lifetimes overlap (TFLite's "arena planner" idea).
func (ip *Interpreter) allocate() error {
	type item struct {
		t          *rtensor
		size, off  int
		first, end int
	}
	var items []*item
	for _, t := range ip.tensors {
		if t.konst || t.first < 0 {
			continue
		}
		items = append(items, &item{t: t, size: alignUp(t.bytes(), 64), first: t.first, end: t.last})
	}
	// Largest first gives tight packing.
	sortItems(items, func(a, b *item) bool {
		if a.size != b.size {
			return a.size > b.size
		}
		return a.t.idx < b.t.idx
	})
	var placed []*item
	total := 0
	for _, it := range items {
		// Collect the placed items alive at the same time, sorted by offset.
		var live []*item
		for _, p := range placed {
			if p.first <= it.end && it.first <= p.end {
				live = append(live, p)
			}
		}
		sortItems(live, func(a, b *item) bool { return a.off < b.off })
		off := 0
		for _, p := range live {
			if p.off-off >= it.size {
				break
			}
			off = max(off, p.off+p.size)
		}
		it.off = off
		placed = append(placed, it)
		total = max(total, off+it.size)
	}
	if need := total + ip.scratchNeed*ip.threads + ip.qinNeed; need > MaxArenaBytes {
		return fmt.Errorf("tflite: model needs %d MiB of tensor memory, over the %d MiB limit", need>>20, MaxArenaBytes>>20)
	}
	if cap(ip.qin) < ip.qinNeed {
		ip.qin = make([]int8, ip.qinNeed)
	}
	ip.qin = ip.qin[:ip.qinNeed]
	if cap(ip.arena) < total {
		ip.arena = make([]byte, total)
	}
	ip.arena = ip.arena[:total]
	for _, it := range items {
		it.t.data = ip.arena[it.off : it.off+it.t.bytes() : it.off+it.t.bytes()]
	}
	if len(ip.scratch) != ip.threads || (ip.threads > 0 && len(ip.scratch[0]) < ip.scratchNeed) {
		ip.scratch = make([][]byte, ip.threads)
		for i := range ip.scratch {
			ip.scratch[i] = make([]byte, ip.scratchNeed)
		}
	}
	return nil
}

// needScratch records that a kernel needs n bytes of scratch per worker.
func (ip *Interpreter) needScratch(n int) { ip.scratchNeed = max(ip.scratchNeed, alignUp(n, 64)) }

// ArenaBytes is the size of the planned tensor arena plus scratch.
func (ip *Interpreter) ArenaBytes() int {
	n := len(ip.arena) + len(ip.qin)
	for _, s := range ip.scratch {
		n += len(s)
	}
	return n
}

// Model returns the parsed model.
func (ip *Interpreter) Model() *Model { return ip.model }

// Inputs describes the input tensors.
func (ip *Interpreter) Inputs() []models.TensorInfo { return ip.infos(ip.sg.Inputs) }

// Outputs describes the output tensors.
func (ip *Interpreter) Outputs() []models.TensorInfo { return ip.infos(ip.sg.Outputs) }

func (ip *Interpreter) infos(idx []int) []models.TensorInfo {
	out := make([]models.TensorInfo, len(idx))
	for i, x := range idx {
		t := ip.tensors[x]
		out[i] = models.TensorInfo{Name: t.decl.Name, Type: t.typ, Shape: append([]int(nil), t.shape...), Quant: t.quant}
	}
	return out
}

// Input returns the bytes of input i.
func (ip *Interpreter) Input(i int) []byte {
	if i < 0 || i >= len(ip.sg.Inputs) {
		return nil
	}
	return ip.tensors[ip.sg.Inputs[i]].data
}

// Output returns the bytes of output i.
func (ip *Interpreter) Output(i int) []byte {
	if i < 0 || i >= len(ip.sg.Outputs) {
		return nil
	}
	return ip.tensors[ip.sg.Outputs[i]].data
}

// Info reports the engine.
func (ip *Interpreter) Info() models.EngineInfo {
	return models.EngineInfo{Engine: "go", Version: Version, Threads: ip.threads}
}

// Close releases the arena and stops the worker goroutines. It is safe to
// call twice.
func (ip *Interpreter) Close() error {
	ip.arena, ip.scratch, ip.qin = nil, nil, nil
	ip.pool.close()
	return nil
}

// SetBatch changes the batch dimension of the inputs and re-plans every
// tensor. Models whose graph hard-codes batch 1 (a RESHAPE to [1, ...]) are
// handled by scaling the leading dimension; others give an error.
func (ip *Interpreter) SetBatch(n int) error {
	if n < 1 || n > 256 {
		return fmt.Errorf("tflite: batch %d out of range 1..256", n)
	}
	if n == ip.batch {
		return nil
	}
	old := ip.batch
	ip.batch = n
	if err := ip.plan(); err != nil {
		ip.batch = old
		if err2 := ip.plan(); err2 != nil {
			return fmt.Errorf("tflite: set batch %d: %v; restoring batch %d: %w", n, err, old, err2)
		}
		return fmt.Errorf("tflite: set batch %d: %w", n, err)
	}
	return nil
}

// Batch is the current batch size.
func (ip *Interpreter) Batch() int { return ip.batch }

// Invoke runs the graph on the current inputs.
func (ip *Interpreter) Invoke(ctx context.Context) error {
	if ip.arena == nil && len(ip.nodes) > 0 {
		return fmt.Errorf("tflite: invoke: interpreter is closed")
	}
	ip.pool.setHot(true)
	defer ip.pool.setHot(false)
	if ip.prof != nil {
		return ip.invokeProfiled(ctx)
	}
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
	}
	return nil
}

// parallel splits [0, n) into chunks of at least minChunk and runs fn on
// each, with the worker index (0 is the calling goroutine) for scratch
// space. fn may be called several times per worker, with any chunk: each
// thread takes its own share of the chunks first, then what the others have
// not started, so a late worker does not hold the others up (see workers).
// Work too small for two chunks runs inline; kernels do not nest calls.
func (ip *Interpreter) parallel(n, minChunk int, fn func(worker, lo, hi int)) {
	minChunk = max(minChunk, 1)
	w := min(ip.threads, n/minChunk)
	// chunksPer chunks per thread: enough that a thread which starts late
	// or runs slow leaves little for the others to wait on, few enough
	// that claiming them costs nothing.
	const chunksPer = 8
	ip.parallelChunks(n, min(n/minChunk, chunksPer*w), w, fn)
}

// parallelChunks runs fn over [0, n) in the given number of chunks (sizes
// differing by at most one, or by 64 for chunks of 1024 or more, whose
// bounds are then multiples of 64: whole cache lines for byte elements, no
// false sharing on the borders), on up to w threads.
func (ip *Interpreter) parallelChunks(n, chunks, w int, fn func(worker, lo, hi int)) {
	if w <= 1 || chunks <= 1 || ip.pool == nil || ip.pool.busy || ip.pool.closed.Load() {
		fn(0, 0, n)
		return
	}
	align := 1
	if n/chunks >= 1024 {
		align = 64
	}
	ip.pool.do(n, chunks, align, min(w, ip.threads), fn)
}

// parallelVec splits [0, n) like parallel, in chunks whose bounds are
// multiples of 16 (whole AVX-512 vectors) but for the end.
func (ip *Interpreter) parallelVec(n int, fn func(lo, hi int)) {
	ip.parallel((n+15)/16, 1024, func(_, b0, b1 int) { fn(b0*16, min(b1*16, n)) })
}

func alignUp(n, a int) int { return (n + a - 1) / a * a }

// aligned returns b, or a copy of it when it is not 8-byte aligned, so typed
// views of constant buffers are always aligned.
func aligned(b []byte) []byte {
	if uintptr(unsafe.Pointer(&b[0]))%8 == 0 {
		return b
	}
	c := make([]byte, len(b))
	copy(c, b)
	return c
}

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func hasUnknown(s []int) bool {
	for _, d := range s {
		if d < 0 {
			return true
		}
	}
	return false
}

func sortItems[T any](s []T, less func(a, b T) bool) {
	// insertion sort is fine for a few hundred tensors
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && less(s[j], s[j-1]); j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// Typed views of tensor bytes. Arena slots are 64-byte aligned and constant
// buffers are copied when misaligned, so these conversions are aligned.
func f32s(b []byte) []float32 {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), len(b)/4)
}

func i32s(b []byte) []int32 {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*int32)(unsafe.Pointer(&b[0])), len(b)/4)
}

func i64s(b []byte) []int64 {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*int64)(unsafe.Pointer(&b[0])), len(b)/8)
}

func i8s(b []byte) []int8 {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*int8)(unsafe.Pointer(&b[0])), len(b))
}

var _ = runtime.NumCPU
