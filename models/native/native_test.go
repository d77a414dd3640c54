//go:build linux && (amd64 || arm64) && !omit_native

package native

import (
	"cmp"
	"context"
	"debug/elf"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/ebitengine/purego"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/sys/unix"

	"edgefleet/models"
	"edgefleet/models/modeltest"
	"edgefleet/models/tflite"
)

// libPath returns $EDGEFLEET_TFLITE_LIB or skips the test.
func libPath(t testing.TB) string {
	t.Helper()
	p := os.Getenv(LibraryEnv)
	if p == "" {
		t.Skipf("needs the TFLite C library: set %s=/path/to/libtensorflowlite_c.so", LibraryEnv)
	}
	return p
}

func readModel(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(modeltest.Path(t, "models", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func open(t testing.TB, model []byte, opts models.Options) *Engine {
	t.Helper()
	e, err := Open(context.Background(), model, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e.(*Engine)
}

func TestMissingLibrary(t *testing.T) {
	dir := t.TempDir()
	named := filepath.Join(dir, "libtensorflowlite_c.so")
	notELF := filepath.Join(dir, "text", "libtensorflowlite_c.so")
	if err := os.MkdirAll(filepath.Dir(notELF), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(notELF, []byte("not a shared object\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// An ELF header for the other CPU is enough: the loader rejects it early.
	otherCPU := filepath.Join(dir, "other", "libtensorflowlite_c.so")
	if err := os.MkdirAll(filepath.Dir(otherCPU), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(otherCPU, elfHeader(), 0o644); err != nil {
		t.Fatal(err)
	}
	model := readModel(t, "yolov5n-int8.tflite")
	tests := []struct {
		name    string
		library string
		env     string
		want    []string
	}{
		{"option names a missing file", named, "", []string{named, "no such file"}},
		{"env names a missing file", "", named, []string{named, "no such file"}},
		{"not an ELF file", notELF, "", []string{notELF, "dlopen", "not an ELF shared library"}},
		{"library for another CPU", otherCPU, "", []string{otherCPU, "dlopen", "built for EM_"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(LibraryEnv, tt.env)
			_, err := Open(context.Background(), model, models.Options{Library: tt.library})
			if !errors.Is(err, ErrNoLibrary) {
				t.Fatalf("err = %v, want ErrNoLibrary", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestSearchListsWhereItLooked(t *testing.T) {
	t.Setenv(LibraryEnv, "")
	if _, err := loadLibrary(""); err == nil {
		t.Skip("a TFLite C library is installed on this box; cannot test the not-found message")
	} else {
		if !errors.Is(err, ErrNoLibrary) {
			t.Fatalf("err = %v, want ErrNoLibrary", err)
		}
		for _, w := range []string{LibraryEnv, "libtensorflowlite_c.so: dlopen", "/usr/local/lib/libtensorflowlite_c.so", "/usr/lib/libtensorflowlite_c.so"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not mention %q", err, w)
			}
		}
	}
}

func TestWrongLibrary(t *testing.T) {
	// libc loads anywhere but is not TFLite: the error names a missing symbol.
	model := readModel(t, "yolov5n-int8.tflite")
	for _, lib := range []string{"libc.so.6", "libm.so.6", "libz.so.1"} {
		t.Run(lib, func(t *testing.T) {
			if h, err := purego.Dlopen(lib, purego.RTLD_NOW|purego.RTLD_LOCAL); err != nil {
				t.Skipf("%s not on this box: %v", lib, err)
			} else {
				purego.Dlclose(h)
			}
			_, err := Open(context.Background(), model, models.Options{Library: lib})
			if !errors.Is(err, ErrNotTFLite) {
				t.Fatalf("err = %v, want ErrNotTFLite", err)
			}
			if !strings.Contains(err.Error(), "symbol TfLiteVersion missing") || !strings.Contains(err.Error(), lib) {
				t.Errorf("error %q should name the library and the missing symbol", err)
			}
		})
	}
}

func TestNotAModel(t *testing.T) {
	model := readModel(t, "yolov8n_full_integer_quant.tflite")
	corrupt := append([]byte(nil), model...)
	for i := 8; i < 4096; i += 7 {
		corrupt[i] ^= 0xa5
	}
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"short", []byte("short")},
		{"png", []byte("\x89PNG\r\n\x1a\n0000000000")},
		{"truncated", model[:len(model)/2]},
		{"corrupt tables", corrupt},
	}
	lib := os.Getenv(LibraryEnv) // with the library, bad files must not reach it either
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Open(context.Background(), tt.data, models.Options{Library: cmp.Or(lib, "/nonexistent")})
			if !errors.Is(err, tflite.ErrFormat) {
				t.Errorf("err = %v, want tflite.ErrFormat", err)
			}
		})
	}
}

func TestUnknownDelegate(t *testing.T) {
	lib := libPath(t)
	_, err := Open(context.Background(), readModel(t, "yolov8n_full_integer_quant.tflite"), models.Options{Library: lib, Delegate: "tpu"})
	if err == nil || !strings.Contains(err.Error(), `unknown delegate "tpu"`) {
		t.Fatalf("err = %v", err)
	}
}

// refTensors is the part of testdata/tensors/*/X.tensors.json used here.
type refTensors struct {
	Model   string `json:"model"`
	Runtime string `json:"runtime"`
	Files   []struct {
		File      string  `json:"file"`
		Role      string  `json:"role"`
		Index     int     `json:"index"`
		Name      string  `json:"name"`
		DType     string  `json:"dtype"`
		Shape     []int   `json:"shape"`
		Scale     float64 `json:"scale"`
		ZeroPoint int64   `json:"zero_point"`
	} `json:"files"`
}

func readRef(t testing.TB, path string) refTensors {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r refTensors
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return r
}

// diffStats compares two raw output tensors: in quantization steps for
// integer types, in absolute value for float32.
type diffStats struct {
	max, mean, p99 float64
	differ         int
	n              int
}

// tooFar says whether s drifts more than two real TFLite runtimes do on
// these files (tensors/README.md: mean up to 0.42 steps, p99 of 8-9 steps
// on the box rows; float mean 1e-4). Single elements may differ more (up
// to 90 steps between two real runtimes), so the maximum is reported, not
// held to.
func (s diffStats) tooFar(dt models.DType) bool {
	if dt == models.Float32 {
		return s.mean > 1e-3 || s.p99 > 0.01
	}
	return s.mean > 0.5 || s.p99 > 9
}

func compare(t testing.TB, dt models.DType, got, want []byte) diffStats {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("output is %d bytes, want %d", len(got), len(want))
	}
	var s diffStats
	var sum float64
	var all []float64
	add := func(d float64) {
		d = math.Abs(d)
		all = append(all, d)
		s.max = max(s.max, d)
		sum += d
		if d != 0 {
			s.differ++
		}
		s.n++
	}
	switch dt {
	case models.Int8:
		for i := range got {
			add(float64(int8(got[i])) - float64(int8(want[i])))
		}
	case models.UInt8:
		for i := range got {
			add(float64(got[i]) - float64(want[i]))
		}
	case models.Float32:
		for i := 0; i+4 <= len(got); i += 4 {
			a := math.Float32frombits(binary.LittleEndian.Uint32(got[i:]))
			b := math.Float32frombits(binary.LittleEndian.Uint32(want[i:]))
			add(float64(a) - float64(b))
		}
	default:
		t.Fatalf("no comparison for %v", dt)
	}
	if s.n > 0 {
		s.mean = sum / float64(s.n)
		slices.Sort(all)
		s.p99 = all[(len(all)-1)*99/100]
	}
	return s
}

// runReference feeds the reference input of one tensors.json and returns
// the engine, the reference and its output bytes.
func runReference(t *testing.T, e *Engine, ref refTensors, dir string) []byte {
	t.Helper()
	var want []byte
	for _, f := range ref.Files {
		b, err := os.ReadFile(filepath.Join(dir, f.File))
		if err != nil {
			t.Fatal(err)
		}
		var info models.TensorInfo
		switch f.Role {
		case "input":
			info = e.Inputs()[f.Index]
			copy(e.Input(f.Index), b)
			if n := len(e.Input(f.Index)); n != len(b) {
				t.Fatalf("input %d is %d bytes, reference %d", f.Index, n, len(b))
			}
		case "output":
			info = e.Outputs()[f.Index]
			want = b
		}
		if info.Name != f.Name || info.Type.String() != f.DType || !equalInts(info.Shape, f.Shape) {
			t.Errorf("%s %d: got %s %v %v, reference %s %s %v", f.Role, f.Index, info.Name, info.Type, info.Shape, f.Name, f.DType, f.Shape)
		}
		if f.Scale != 0 {
			if info.Quant == nil || math.Abs(float64(info.Quant.Scale[0])-f.Scale) > 1e-9 || info.Quant.ZeroPoint[0] != f.ZeroPoint {
				t.Errorf("%s %d: quant %+v, reference %g/%d", f.Role, f.Index, info.Quant, f.Scale, f.ZeroPoint)
			}
		}
	}
	if err := e.Invoke(context.Background()); err != nil {
		t.Fatal(err)
	}
	return want
}

func equalInts(a, b []int) bool {
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

// TestReferenceTensors runs every model of testdata/tensors/native on its
// exact reference input and compares the raw output. The references come
// from TFLite 2.4.0 on amd64 with 1 thread, so that library must reproduce
// them bit for bit; other builds must stay within the drift two real
// runtimes show on these files (tensors/README.md).
func TestReferenceTensors(t *testing.T) {
	lib := libPath(t)
	refs := modeltest.Glob(t, "tensors/native/*.tensors.json")
	cpu := map[string][]byte{} // each model's output on this library's CPU path
	for _, delegate := range []string{"none", "xnnpack"} {
		for _, path := range refs {
			ref := readRef(t, path)
			t.Run(delegate+"/"+ref.Model, func(t *testing.T) {
				e := open(t, readModel(t, ref.Model), models.Options{Library: lib, Threads: 1, Delegate: delegate})
				if delegate == "xnnpack" && e.Info().Delegate == "" {
					t.Skipf("TFLite %s has no XNNPACK delegate", e.Info().Version)
				}
				want := runReference(t, e, ref, filepath.Dir(path))
				out := e.Outputs()[0]
				s := compare(t, out.Type, e.Output(0), want)
				t.Logf("TFLite %s %s delegate=%q vs %s: %d of %d elements differ, max %.4g mean %.4g p99 %.4g %s",
					e.Info().Version, runtimeArch(), e.Info().Delegate, ref.Runtime, s.differ, s.n, s.max, s.mean, s.p99, unit(out.Type))
				exact := e.Info().Version == "2.4.0" && runtimeArch() == "amd64" && e.Info().Delegate == ""
				switch {
				case exact && s.differ != 0:
					t.Errorf("the reference library build must reproduce the reference output bit for bit")
				case s.tooFar(out.Type):
					t.Errorf("output drifts from the reference more than two real runtimes do")
				}
				if delegate == "none" {
					cpu[ref.Model] = append([]byte(nil), e.Output(0)...)
					return
				}
				// XNNPACK's kernels round differently from TFLite's own,
				// so a delegate that really runs the graph changes some
				// output bytes; identical bytes would mean it took no node.
				if c := cpu[ref.Model]; c != nil {
					d := compare(t, out.Type, e.Output(0), c)
					t.Logf("xnnpack vs this library's CPU path: %d of %d elements differ", d.differ, d.n)
					if d.differ == 0 {
						t.Errorf("XNNPACK reported applied but the output is bit-identical to the CPU path: did it take any node?")
					}
				}
			})
		}
	}
}

func unit(dt models.DType) string {
	if dt == models.Float32 {
		return "(absolute)"
	}
	return "steps"
}

func runtimeArch() string { return goarch }

// TestModelTooNew: TFLite before 2.9 cannot build the YOLO26 export
// (CONV_2D v6); that must be a clear error. Newer libraries must run it
// and agree with the WASM runtime's output.
func TestModelTooNew(t *testing.T) {
	lib := libPath(t)
	model := readModel(t, "yolo26n_int8_320_e2e.tflite")
	e, err := Open(context.Background(), model, models.Options{Library: lib, Threads: 1})
	if err != nil {
		if !errors.Is(err, models.ErrUnsupported) || !strings.Contains(err.Error(), "CONV_2D") {
			t.Fatalf("err = %v, want ErrUnsupported naming CONV_2D", err)
		}
		t.Logf("rejected as expected: %v", err)
		return
	}
	defer e.Close()
	t.Logf("TFLite %s loads the YOLO26 export", e.Info().Version)
	path := modeltest.Path(t, "tensors", "wasm", "yolo26n_int8_320_e2e__chelsea.tensors.json")
	want := runReference(t, e.(*Engine), readRef(t, path), filepath.Dir(path))
	got := e.Output(0)
	// [1,300,6] rows sorted by score: the best detection must be the same.
	row := func(b []byte) (r [6]float32) {
		for i := range r {
			r[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
		return r
	}
	g, w := row(got), row(want)
	t.Logf("top row native %v, wasm %v", g, w)
	for i := range g {
		if math.Abs(float64(g[i]-w[i])) > 0.02 {
			t.Errorf("top detection differs from the WASM runtime: %v vs %v", g, w)
			break
		}
	}
}

func fallbacks(name, stage string) float64 {
	var m dto.Metric
	if err := DelegateFallbacks.WithLabelValues(name, stage).Write(&m); err != nil {
		return math.NaN()
	}
	return m.GetCounter().GetValue()
}

// TestDelegateUnavailable: a delegate that cannot be loaded gives a CPU
// fallback and a count, or an error when strict.
func TestDelegateUnavailable(t *testing.T) {
	lib := libPath(t)
	model := readModel(t, "yolov8n_full_integer_quant.tflite")
	missing := filepath.Join(t.TempDir(), "libtensorflowlite_gpu_delegate.so")
	tests := []struct {
		name     string
		delegate string
		gpuLib   string
		want     string // in the strict error
		skip     func(*library) bool
	}{
		{"gpu library missing", "gpu", missing, "GPU delegate library not found", nil},
		{"gpu library is not one", "gpu", "libc.so.6", "symbol TfLiteGpuDelegateOptionsV2Default missing", nil},
		{"xnnpack not built in", "xnnpack", "", "without the XNNPACK delegate", func(l *library) bool { return l.xnnCreate != nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(GPULibraryEnv, tt.gpuLib)
			l, err := loadLibrary(lib)
			if err != nil {
				t.Fatal(err)
			}
			if tt.skip != nil && tt.skip(l) {
				t.Skipf("TFLite %s has this delegate", l.version)
			}
			before := fallbacks(tt.delegate, "load")
			e := open(t, model, models.Options{Library: lib, Delegate: tt.delegate})
			if d := e.Info().Delegate; d != "" {
				t.Errorf("Info().Delegate = %q, want the CPU path", d)
			}
			if got := fallbacks(tt.delegate, "load") - before; got != 1 {
				t.Errorf("fallback counter rose by %v, want 1", got)
			}
			if err := e.Invoke(context.Background()); err != nil {
				t.Errorf("CPU fallback does not run: %v", err)
			}

			_, err = Open(context.Background(), model, models.Options{Library: lib, Delegate: tt.delegate, Strict: true})
			if !errors.Is(err, ErrDelegate) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("strict: err = %v, want ErrDelegate mentioning %q", err, tt.want)
			}
		})
	}
}

var (
	rejectOnce sync.Once
	rejectCB   uintptr
)

// newRejectingDelegate builds a TfLiteDelegate whose Prepare fails, as a
// delegate that cannot handle a model does. Its struct is
// {data_, Prepare, CopyFromBufferHandle, CopyToBufferHandle, FreeBufferHandle, flags, opaque_delegate_builder}.
func newRejectingDelegate(*library, models.Options, []byte) (*delegate, error) {
	rejectOnce.Do(func() {
		rejectCB = purego.NewCallback(func(ctx, d uintptr) uintptr { return 1 }) // kTfLiteError
	})
	mem, err := unix.Mmap(-1, 0, 64, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return nil, err
	}
	*(*uintptr)(unsafe.Pointer(&mem[8])) = rejectCB
	return &delegate{name: "reject", ptr: uintptr(unsafe.Pointer(&mem[0])), free: func() { unix.Munmap(mem) }}, nil
}

// TestDelegateRejectsModel: a delegate that fails when applied falls back
// to the CPU path with correct results, or is an error when strict.
func TestDelegateRejectsModel(t *testing.T) {
	lib := libPath(t)
	delegateFactories["reject"] = newRejectingDelegate
	t.Cleanup(func() { delete(delegateFactories, "reject") })
	path := modeltest.Path(t, "tensors", "native", "yolov8n_full_integer_quant__chelsea.tensors.json")
	ref := readRef(t, path)
	model := readModel(t, ref.Model)

	before := fallbacks("reject", "apply")
	e := open(t, model, models.Options{Library: lib, Threads: 1, Delegate: "reject"})
	if d := e.Info().Delegate; d != "" {
		t.Errorf("Info().Delegate = %q after a rejected delegate", d)
	}
	if got := fallbacks("reject", "apply") - before; got != 1 {
		t.Errorf("fallback counter rose by %v, want 1", got)
	}
	want := runReference(t, e, ref, filepath.Dir(path))
	if s := compare(t, e.Outputs()[0].Type, e.Output(0), want); s.tooFar(e.Outputs()[0].Type) {
		t.Errorf("CPU fallback output is off: %+v", s)
	}

	_, err := Open(context.Background(), model, models.Options{Library: lib, Delegate: "reject", Strict: true})
	if !errors.Is(err, ErrDelegate) || !strings.Contains(err.Error(), "apply") {
		t.Fatalf("strict: err = %v, want ErrDelegate at apply", err)
	}
	t.Logf("strict error: %v", err)
}

func TestInfoAndClose(t *testing.T) {
	lib := libPath(t)
	e := open(t, readModel(t, "yolov5n-int8.tflite"), models.Options{Library: lib, Threads: 2})
	info := e.Info()
	if info.Engine != "native" || info.Threads != 2 || info.Version == "" || !strings.HasPrefix(info.Version, "2.") {
		t.Errorf("Info() = %+v", info)
	}
	if e.Library() == "" {
		t.Error("Library() is empty")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.Invoke(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Invoke(cancelled ctx) = %v", err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := e.Invoke(context.Background()); err == nil {
		t.Error("Invoke after Close succeeded")
	}
	if e.Input(0) != nil || e.Output(0) != nil {
		t.Error("buffers after Close")
	}
}

// TestSetBatch: where a model can be resized, a batch of two identical
// inputs gives two results equal to the single-input result; where it
// cannot (RESHAPE constants fixed at batch 1), the error is clear and the
// engine still runs at batch 1.
func TestSetBatch(t *testing.T) {
	lib := libPath(t)
	for _, path := range modeltest.Glob(t, "tensors/native/*.tensors.json") {
		ref := readRef(t, path)
		t.Run(ref.Model, func(t *testing.T) {
			if ref.Files[len(ref.Files)-1].DType == "float32" {
				t.Skip("float model: slow, and the same resize path as the int8 ones")
			}
			e := open(t, readModel(t, ref.Model), models.Options{Library: lib, Threads: 1})
			runReference(t, e, ref, filepath.Dir(path))
			single := append([]byte(nil), e.Output(0)...)
			in := append([]byte(nil), e.Input(0)...)

			if err := e.SetBatch(2); err != nil {
				t.Logf("SetBatch(2): %v", err)
				if !strings.Contains(err.Error(), "set batch 2") {
					t.Errorf("unclear error: %v", err)
				}
				if got := e.Inputs()[0].Shape[0]; got != 1 {
					t.Fatalf("batch = %d after a failed SetBatch, want 1", got)
				}
				copy(e.Input(0), in)
				if err := e.Invoke(context.Background()); err != nil {
					t.Fatalf("engine unusable after a failed SetBatch: %v", err)
				}
				if s := compare(t, e.Outputs()[0].Type, e.Output(0), single); s.differ != 0 {
					t.Errorf("output changed after a failed SetBatch: %+v", s)
				}
				return
			}
			if got := e.Inputs()[0].Shape[0]; got != 2 {
				t.Fatalf("input batch = %d after SetBatch(2)", got)
			}
			copy(e.Input(0), in)
			copy(e.Input(0)[len(in):], in)
			if err := e.Invoke(context.Background()); err != nil {
				t.Fatal(err)
			}
			out := e.Output(0)
			if len(out) != 2*len(single) {
				t.Fatalf("batch output is %d bytes, want %d", len(out), 2*len(single))
			}
			for b := range 2 {
				if s := compare(t, e.Outputs()[0].Type, out[b*len(single):(b+1)*len(single)], single); s.max > 0 {
					t.Errorf("batch item %d differs from the single run: %+v", b, s)
				}
			}
		})
	}
}

func TestProbe(t *testing.T) {
	t.Run("no library", func(t *testing.T) {
		r := Probe(models.Options{Library: filepath.Join(t.TempDir(), "nope.so")})
		if !r.Built || r.Error == "" || r.Version != "" {
			t.Errorf("Probe = %+v", r)
		}
	})
	t.Run("library", func(t *testing.T) {
		lib := libPath(t)
		t.Setenv(GPULibraryEnv, filepath.Join(t.TempDir(), "none.so"))
		r := Probe(models.Options{Library: lib})
		if r.Error != "" || r.Version == "" || len(r.Delegates) != 2 {
			t.Fatalf("Probe = %+v", r)
		}
		l, _ := loadLibrary(lib)
		if got, want := r.Delegates[0].Available, l.xnnCreate != nil; got != want {
			t.Errorf("xnnpack available = %v, library has it: %v", got, want)
		}
		if r.Delegates[1].Available || !strings.Contains(r.Delegates[1].Error, "not found") {
			t.Errorf("gpu = %+v, want not found", r.Delegates[1])
		}
		t.Logf("%+v", r)
	})
}

const goarch = runtime.GOARCH

// TestInvokeCancel: with a library that supports cancellation (2.13 and
// later), ending ctx stops a running Invoke, and the engine still works.
func TestInvokeCancel(t *testing.T) {
	lib := libPath(t)
	l, err := loadLibrary(lib)
	if err != nil {
		t.Fatal(err)
	}
	if l.interpCancel == nil {
		t.Skipf("TFLite %s has no TfLiteInterpreterCancel", l.version)
	}
	e := open(t, readModel(t, "yolov8n_int8.tflite"), models.Options{Library: lib, Threads: 1})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		time.Sleep(20 * time.Millisecond) // after Invoke began, well before a float yolov8n invoke (100s of ms) ends
		cancel()
	}()
	if err := e.Invoke(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Invoke while cancelled = %v, want context.Canceled", err)
	}
	if err := e.Invoke(context.Background()); err != nil {
		t.Fatalf("Invoke after a cancelled one: %v", err)
	}
}

// elfHeader returns a 64-bit little-endian ELF shared-object header for the
// CPU this test does not run on.
func elfHeader() []byte {
	m := elf.EM_AARCH64
	if runtime.GOARCH == "arm64" {
		m = elf.EM_X86_64
	}
	h := make([]byte, 64)
	copy(h, "\x7fELF")
	h[elf.EI_CLASS], h[elf.EI_DATA], h[elf.EI_VERSION] = byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)
	binary.LittleEndian.PutUint16(h[16:], uint16(elf.ET_DYN))
	binary.LittleEndian.PutUint16(h[18:], uint16(m))
	binary.LittleEndian.PutUint32(h[20:], uint32(elf.EV_CURRENT))
	binary.LittleEndian.PutUint16(h[52:], 64) // e_ehsize
	return h
}
