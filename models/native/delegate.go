//go:build linux && (amd64 || arm64) && !omit_native

package native

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
	"golang.org/x/sys/unix"

	"edgefleet/models"
)

// delegate is a created TfLiteDelegate and how to free it.
type delegate struct {
	name string
	ptr  uintptr
	free func()
}

// delegateFactory creates a delegate for model; an error means the
// delegate cannot be loaded here (the caller falls back or fails).
type delegateFactory func(l *library, opts models.Options, model []byte) (*delegate, error)

var delegateFactories = map[string]delegateFactory{
	"xnnpack": newXNNPack,
	"gpu":     newGPU,
}

const xnnFlagForceFP16 = 0x4

func newXNNPack(l *library, opts models.Options, _ []byte) (*delegate, error) {
	if l.xnnCreate == nil {
		return nil, fmt.Errorf("TFLite %s at %s was built without the XNNPACK delegate (no TfLiteXNNPackDelegateCreate)", l.version, l.path)
	}
	o := l.xnnDefault()
	o.NumThreads = int32(max(opts.Threads, 1))
	o.Flags |= xnnFlagQS8 | xnnFlagQU8 // int8 and uint8 operators too, not only float
	if os.Getenv(XNNPackFP16Env) == "1" {
		o.Flags |= xnnFlagForceFP16
	}
	p := l.xnnCreate(unsafe.Pointer(&o)) // the delegate copies the options
	if p == 0 {
		return nil, errors.New("TfLiteXNNPackDelegateCreate returned NULL")
	}
	return &delegate{name: "xnnpack", ptr: p, free: func() { l.xnnDelete(p) }}, nil
}

// gpuOptions mirrors TfLiteGpuDelegateOptionsV2 (delegate_options.h) up to
// model_token, with room for the fields later versions append.
type gpuOptions struct {
	IsPrecisionLossAllowed int32
	InferencePreference    int32
	InferencePriority1     int32
	InferencePriority2     int32
	InferencePriority3     int32
	Pad0                   int32
	ExperimentalFlags      int64
	MaxDelegatedPartitions int32
	Pad1                   int32
	SerializationDir       uintptr // const char*
	ModelToken             uintptr // const char*
	Tail                   [24]uint64
}

// GPU delegate constants (delegate_options.h).
const (
	gpuPreferenceSustainedSpeed = 1
	gpuFlagEnableSerialization  = 8
)

const gpuLibName = "libtensorflowlite_gpu_delegate.so"

// gpuLibrary holds the GPU delegate entry points.
type gpuLibrary struct {
	path           string
	optionsDefault func() gpuOptions
	create         func(opts unsafe.Pointer) uintptr
	del            func(d uintptr)
}

var (
	gpuLibsMu sync.Mutex
	gpuLibs   = map[string]*gpuLibrary{}
)

// loadGPU finds the GPU delegate: in the C library itself, then
// $EDGEFLEET_TFLITE_GPU_LIB, beside the C library, then the loader's path.
func loadGPU(l *library) (*gpuLibrary, error) {
	if g, err := gpuFrom(l.handle, l.path); err == nil {
		return g, nil
	}
	var list []string
	if env := os.Getenv(GPULibraryEnv); env != "" {
		list = []string{env}
	} else {
		if strings.Contains(l.path, "/") {
			list = append(list, filepath.Join(filepath.Dir(l.path), gpuLibName))
		}
		list = append(list, gpuLibName, "/usr/local/lib/"+gpuLibName, "/usr/lib/"+gpuLibName)
	}
	tried := []string{l.path + ": no GPU delegate symbols"}
	for _, path := range list {
		g, err := openGPU(path)
		if err == nil {
			return g, nil
		}
		if errors.Is(err, ErrNotTFLite) {
			return nil, err
		}
		tried = append(tried, err.Error())
	}
	return nil, fmt.Errorf("GPU delegate library not found (set %s); looked in: %s", GPULibraryEnv, strings.Join(tried, "; "))
}

func openGPU(path string) (*gpuLibrary, error) {
	gpuLibsMu.Lock()
	defer gpuLibsMu.Unlock()
	if g, ok := gpuLibs[path]; ok {
		return g, nil
	}
	if strings.Contains(path, "/") {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("%s: %w", path, errors.Unwrap(err))
		}
	}
	h, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		return nil, fmt.Errorf("%s: dlopen: %v", path, err)
	}
	g, err := gpuFrom(h, path)
	if err != nil {
		return nil, fmt.Errorf("%s: not a TFLite GPU delegate library: %w", path, err)
	}
	gpuLibs[path] = g
	return g, nil
}

func gpuFrom(h uintptr, path string) (*gpuLibrary, error) {
	names := []string{"TfLiteGpuDelegateOptionsV2Default", "TfLiteGpuDelegateV2Create", "TfLiteGpuDelegateV2Delete"}
	ptrs := make([]uintptr, len(names))
	for i, n := range names {
		p, err := purego.Dlsym(h, n)
		if err != nil || p == 0 {
			return nil, fmt.Errorf("%w: symbol %s missing", ErrNotTFLite, n)
		}
		ptrs[i] = p
	}
	g := &gpuLibrary{path: path}
	purego.RegisterFunc(&g.optionsDefault, ptrs[0])
	purego.RegisterFunc(&g.create, ptrs[1])
	purego.RegisterFunc(&g.del, ptrs[2])
	return g, nil
}

// gpuCacheDir is where the GPU delegate keeps compiled kernels.
func gpuCacheDir() string {
	if d := os.Getenv(GPUCacheEnv); d != "" {
		return d
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "edgefleet", "tflite-gpu")
}

func newGPU(l *library, _ models.Options, model []byte) (*delegate, error) {
	g, err := loadGPU(l)
	if err != nil {
		return nil, err
	}
	o := g.optionsDefault()
	o.IsPrecisionLossAllowed = 1
	o.InferencePreference = gpuPreferenceSustainedSpeed
	// The delegate keeps the string pointers: put them in memory it may
	// hold until the delegate is deleted.
	var strs []byte
	if dir := gpuCacheDir(); dir != "" && os.MkdirAll(dir, 0o755) == nil {
		sum := sha256.Sum256(model)
		token := "edgefleet-" + hex.EncodeToString(sum[:8])
		strs, err = unix.Mmap(-1, 0, len(dir)+len(token)+2, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
		if err == nil {
			copy(strs, dir)
			copy(strs[len(dir)+1:], token)
			o.SerializationDir = uintptr(unsafe.Pointer(&strs[0]))
			o.ModelToken = uintptr(unsafe.Pointer(&strs[len(dir)+1]))
			o.ExperimentalFlags |= gpuFlagEnableSerialization
		}
	}
	p := g.create(unsafe.Pointer(&o))
	if p == 0 {
		if strs != nil {
			_ = unix.Munmap(strs)
		}
		return nil, fmt.Errorf("%s: TfLiteGpuDelegateV2Create returned NULL", g.path)
	}
	return &delegate{name: "gpu", ptr: p, free: func() {
		g.del(p)
		if strs != nil {
			_ = unix.Munmap(strs)
		}
	}}, nil
}

// Probe loads the library (as Open would with opts) and reports its version
// and which delegates can be created. It never fails: problems are in the
// report.
func Probe(opts models.Options) Report {
	r := Report{Built: true}
	l, err := loadLibrary(opts.Library)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	r.Library, r.Version = l.path, l.version
	for _, name := range []string{"xnnpack", "gpu"} {
		d := DelegateReport{Name: name}
		var del *delegate
		var err error
		if name == "gpu" {
			t := newOSThread()
			_ = t.run(func() error { del, err = newGPU(l, opts, nil); return nil })
			if del != nil {
				_ = t.run(func() error { del.free(); return nil })
			}
			t.stop()
			if g, gerr := loadGPU(l); gerr == nil {
				d.Library = g.path
			}
		} else {
			del, err = newXNNPack(l, opts, nil)
			if del != nil {
				del.free()
			}
			d.Library = l.path
		}
		if err != nil {
			d.Error = err.Error()
		} else {
			d.Available = true
		}
		r.Delegates = append(r.Delegates, d)
	}
	return r
}
