//go:build linux && (amd64 || arm64) && !omit_native

package native

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"edgefleet/models"
	"edgefleet/models/tfmodel"
)

// Built reports whether this binary has the native engine.
const Built = true

var (
	_ models.Engine  = (*Engine)(nil)
	_ models.Batcher = (*Engine)(nil)
	_ models.Opener  = Open
)

// TfLiteStatus kTfLiteCancelled.
const statusCancelled = 8

// Engine runs one model with the TFLite C library. Like every models.Engine
// it is not safe for concurrent use, except that Close may be called once
// Invoke has returned.
type Engine struct {
	lib      *library
	rep      *reporter
	reportCB uintptr
	threads  int
	thread   *osThread // non-nil for the GPU delegate, whose GL context is bound to one thread

	mu       sync.Mutex
	closed   bool
	modelMem []byte // the model in memory the library may keep pointers to (not the Go heap)
	model    uintptr
	interp   uintptr
	del      *delegate // the delegate actually applied, or nil
	inputs   []models.TensorInfo
	outputs  []models.TensorInfo
	inT      []uintptr
	outT     []uintptr
}

// Open loads the TFLite C library (see the package comment for where it
// looks) and prepares an interpreter for model, with the delegate that
// opts names. The model bytes are copied; the caller may reuse them.
func Open(ctx context.Context, model []byte, opts models.Options) (models.Engine, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("native: open: %w", err)
	}
	// The C library trusts the file more than it should; the Go reader
	// checks every offset first, so a corrupt file is an error, not a crash.
	if _, err := tfmodel.Parse(model); err != nil {
		return nil, fmt.Errorf("native: open: %w", err)
	}
	lib, err := loadLibrary(opts.Library)
	if err != nil {
		return nil, err
	}
	name, err := delegateName(opts.Delegate)
	if err != nil {
		return nil, err
	}
	e := &Engine{lib: lib, threads: max(opts.Threads, 1)}
	if name == "gpu" {
		e.thread = newOSThread()
	}
	e.rep, e.reportCB = newReporter()
	if err := e.do(func() error { return e.open(model, name, opts) }); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

func delegateName(s string) (string, error) {
	switch n := strings.ToLower(strings.TrimSpace(s)); n {
	case "", "none", "cpu":
		return "", nil
	default:
		if _, ok := delegateFactories[n]; !ok {
			return "", fmt.Errorf("native: unknown delegate %q (want none, xnnpack or gpu)", s)
		}
		return n, nil
	}
}

func (e *Engine) open(model []byte, name string, opts models.Options) error {
	mem, err := unix.Mmap(-1, 0, len(model), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return fmt.Errorf("native: open: map model: %w", err)
	}
	copy(mem, model)
	_ = unix.Mprotect(mem, unix.PROT_READ)
	e.modelMem = mem
	l := e.lib
	if l.modelCreateWithReporter != nil && e.reportCB != 0 {
		e.model = l.modelCreateWithReporter(unsafe.Pointer(&mem[0]), uintptr(len(mem)), e.reportCB, e.rep.id)
	} else {
		e.model = l.modelCreate(unsafe.Pointer(&mem[0]), uintptr(len(mem)))
	}
	if e.model == 0 {
		return fmt.Errorf("native: open: TFLite %s rejected the model file: %s", l.version, orDefault(e.rep.take(), "invalid flatbuffer"))
	}

	var del *delegate
	if name != "" {
		del, err = delegateFactories[name](l, opts, model)
		if err != nil {
			if err := e.fallback(name, "load", err, opts.Strict); err != nil {
				return err
			}
			del = nil
		}
	}
	err = e.createInterpreter(del)
	if err != nil && del != nil {
		del.free()
		if err := e.fallback(name, "apply", err, opts.Strict); err != nil {
			return err
		}
		del = nil
		err = e.createInterpreter(nil)
	}
	if err != nil {
		return fmt.Errorf("native: open: TFLite %s cannot run this model: %w: %v", l.version, models.ErrUnsupported, err)
	}
	e.del = del
	return nil
}

// fallback handles a delegate that could not be loaded or applied.
func (e *Engine) fallback(name, stage string, err error, strict bool) error {
	if strict {
		return fmt.Errorf("native: %s delegate: %w (strict): %s: %v", name, ErrDelegate, stage, err)
	}
	DelegateFallbacks.WithLabelValues(name, stage).Inc()
	slog.Warn("native: delegate not used, running on the CPU", "delegate", name, "stage", stage, "err", err)
	return nil
}

// createInterpreter builds, applies del to and allocates an interpreter.
func (e *Engine) createInterpreter(del *delegate) error {
	l := e.lib
	o := l.optionsCreate()
	if o == 0 {
		return errors.New("TfLiteInterpreterOptionsCreate failed")
	}
	defer l.optionsDelete(o) // the interpreter keeps a copy
	l.optionsSetNumThreads(o, int32(e.threads))
	if e.reportCB != 0 {
		l.optionsSetErrorReporter(o, e.reportCB, e.rep.id)
	}
	if l.optionsEnableCancel != nil {
		l.optionsEnableCancel(o, true)
	}
	if del != nil {
		l.optionsAddDelegate(o, del.ptr)
	}
	e.rep.take()
	in := l.interpCreate(e.model, o)
	if in == 0 {
		return errors.New(orDefault(e.rep.take(), "TfLiteInterpreterCreate failed"))
	}
	if st := l.allocateTensors(in); st != statusOk {
		l.interpDelete(in)
		return fmt.Errorf("allocate tensors: status %d: %s", st, e.rep.take())
	}
	e.interp = in
	if err := e.refresh(); err != nil {
		l.interpDelete(in)
		e.interp = 0
		return err
	}
	return nil
}

// refresh reads the input and output tensors' descriptions.
func (e *Engine) refresh() error {
	l := e.lib
	read := func(n int32, get func(uintptr, int32) uintptr) ([]uintptr, []models.TensorInfo, error) {
		ts := make([]uintptr, n)
		infos := make([]models.TensorInfo, n)
		for i := range n {
			t := get(e.interp, i)
			if t == 0 {
				return nil, nil, fmt.Errorf("tensor %d missing", i)
			}
			info, err := e.tensorInfo(t)
			if err != nil {
				return nil, nil, err
			}
			ts[i], infos[i] = t, info
		}
		return ts, infos, nil
	}
	var err error
	if e.inT, e.inputs, err = read(l.inputCount(e.interp), l.inputTensor); err != nil {
		return fmt.Errorf("inputs: %w", err)
	}
	if e.outT, e.outputs, err = read(l.outputCount(e.interp), l.outputTensor); err != nil {
		return fmt.Errorf("outputs: %w", err)
	}
	return nil
}

// cTypes maps the C API's TfLiteType to the flatbuffer TensorType values
// that models.DType uses; they differ (kTfLiteNoType is 0 in C).
var cTypes = map[int32]models.DType{
	1: models.Float32, 2: models.Int32, 3: models.UInt8, 4: models.Int64, 5: models.String,
	6: models.Bool, 7: models.Int16, 8: models.Complex64, 9: models.Int8, 10: models.Float16,
	11: models.Float64,
}

func (e *Engine) tensorInfo(t uintptr) (models.TensorInfo, error) {
	l := e.lib
	ct := l.tensorType(t)
	dt, ok := cTypes[ct]
	name := l.tensorName(t)
	if !ok {
		return models.TensorInfo{}, fmt.Errorf("tensor %q: unsupported TfLiteType %d", name, ct)
	}
	info := models.TensorInfo{Name: name, Type: dt}
	nd := l.tensorNumDims(t)
	for d := range max(nd, 0) {
		info.Shape = append(info.Shape, int(l.tensorDim(t, d)))
	}
	if q := l.tensorQuant(t); q.Scale != 0 {
		info.Quant = &models.Quant{Scale: []float32{q.Scale}, ZeroPoint: []int64{int64(q.ZeroPoint)}}
	}
	return info, nil
}

// Inputs describes the input tensors.
func (e *Engine) Inputs() []models.TensorInfo { return e.inputs }

// Outputs describes the output tensors.
func (e *Engine) Outputs() []models.TensorInfo { return e.outputs }

// Input returns the library's buffer for input tensor i.
func (e *Engine) Input(i int) []byte {
	if i < 0 || i >= len(e.inT) || e.interp == 0 {
		return nil
	}
	return e.bytes(e.inT[i])
}

// Output returns the library's buffer for output tensor i, valid until the
// next Invoke, SetBatch or Close.
func (e *Engine) Output(i int) []byte {
	if i < 0 || i >= len(e.outT) || e.interp == 0 {
		return nil
	}
	return e.bytes(e.outT[i])
}

func (e *Engine) bytes(t uintptr) []byte {
	p := e.lib.tensorData(t)
	n := e.lib.tensorByteSize(t)
	if p == nil || n == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(p), n)
}

// Invoke runs the model once. When the library supports cancellation
// (TFLite 2.13 and later), cancelling ctx stops a running Invoke.
func (e *Engine) Invoke(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("native: invoke: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return errors.New("native: invoke: engine closed")
	}
	var st int32
	stop := e.watch(ctx)
	_ = e.do(func() error { st = e.lib.invoke(e.interp); return nil })
	stop()
	if st != statusOk {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("native: invoke: %w", err)
		}
		if st == statusCancelled {
			return fmt.Errorf("native: invoke: %w", context.Canceled)
		}
		return fmt.Errorf("native: invoke: status %d: %s", st, orDefault(e.rep.take(), "no message"))
	}
	return nil
}

// watch cancels the running invoke when ctx ends; stop waits for it to be
// done so that no cancel reaches a later invoke or a deleted interpreter.
func (e *Engine) watch(ctx context.Context) (stop func()) {
	if e.lib.interpCancel == nil || ctx.Done() == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-ctx.Done():
			e.lib.interpCancel(e.interp)
		case <-done:
		}
	})
	return func() { close(done); wg.Wait() }
}

// SetBatch resizes the first dimension of every input to n and reallocates.
func (e *Engine) SetBatch(n int) error {
	if n < 1 {
		return fmt.Errorf("native: set batch: %d < 1", n)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return errors.New("native: set batch: engine closed")
	}
	return e.do(func() error {
		old := e.inputs
		err := e.resize(n)
		if err != nil && len(old) > 0 && len(old[0].Shape) > 0 {
			// Leave the engine as it was, still usable at the old batch.
			e.inputs = old
			if rerr := e.resize(old[0].Shape[0]); rerr != nil {
				err = errors.Join(err, fmt.Errorf("restore batch %d: %w", old[0].Shape[0], rerr))
			}
		}
		if err != nil {
			return fmt.Errorf("native: set batch %d: %w", n, err)
		}
		return nil
	})
}

func (e *Engine) resize(n int) error {
	for i, in := range e.inputs {
		if len(in.Shape) == 0 {
			continue
		}
		dims := make([]int32, len(in.Shape))
		for d, v := range in.Shape {
			dims[d] = int32(v)
		}
		dims[0] = int32(n)
		st := e.lib.resizeInput(e.interp, int32(i), unsafe.Pointer(&dims[0]), int32(len(dims)))
		runtime.KeepAlive(dims)
		if st != statusOk {
			return fmt.Errorf("resize input %d: %s", i, e.rep.take())
		}
	}
	if st := e.lib.allocateTensors(e.interp); st != statusOk {
		return fmt.Errorf("allocate tensors: %s", e.rep.take())
	}
	return e.refresh()
}

// Info reports engine "native", the delegate actually applied, and the
// library's TfLiteVersion().
func (e *Engine) Info() models.EngineInfo {
	info := models.EngineInfo{Engine: "native", Version: e.lib.version, Threads: e.threads}
	if e.del != nil {
		info.Delegate = e.del.name
	}
	return info
}

// Library returns the path of the C library this engine runs on.
func (e *Engine) Library() string { return e.lib.path }

// Close frees the interpreter, delegate and model. It is safe to call twice.
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	_ = e.do(func() error {
		if e.interp != 0 {
			e.lib.interpDelete(e.interp)
			e.interp = 0
		}
		if e.del != nil {
			e.del.free()
			e.del = nil
		}
		if e.model != 0 {
			e.lib.modelDelete(e.model)
			e.model = 0
		}
		return nil
	})
	if e.modelMem != nil {
		_ = unix.Munmap(e.modelMem)
		e.modelMem = nil
	}
	if e.rep != nil {
		e.rep.close()
	}
	if e.thread != nil {
		e.thread.stop()
		e.thread = nil
	}
	e.inT, e.outT = nil, nil
	return nil
}

// do runs f on the engine's own OS thread when it has one.
func (e *Engine) do(f func() error) error {
	if e.thread == nil {
		return f()
	}
	return e.thread.run(f)
}

// osThread runs functions on one locked OS thread.
type osThread struct{ work chan func() }

func newOSThread() *osThread {
	t := &osThread{work: make(chan func())}
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		for f := range t.work {
			f()
		}
	}()
	return t
}

func (t *osThread) run(f func() error) error {
	errc := make(chan error, 1)
	t.work <- func() { errc <- f() }
	return <-errc
}

func (t *osThread) stop() { close(t.work) }

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
