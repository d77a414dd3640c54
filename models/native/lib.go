//go:build linux && (amd64 || arm64) && !omit_native

package native

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
)

const libName = "libtensorflowlite_c.so"

// TfLiteStatus values that matter here.
const (
	statusOk = 0
)

// quantParams mirrors TfLiteQuantizationParams.
type quantParams struct {
	Scale     float32
	ZeroPoint int32
}

// xnnOptions mirrors the head of TfLiteXNNPackDelegateOptions. Later
// versions append fields; the tail is room for them so that the library
// writes into memory we own whatever its version.
type xnnOptions struct {
	NumThreads int32
	Flags      uint32
	Tail       [30]uint64
}

// XNNPACK delegate flags (xnnpack_delegate.h).
const (
	xnnFlagQS8 = 0x1
	xnnFlagQU8 = 0x2
)

// library is one loaded libtensorflowlite_c with its entry points. It is
// never unloaded: C++ libraries do not unload cleanly, and a process uses
// one library for its lifetime.
type library struct {
	path    string
	handle  uintptr
	version string

	modelCreate             func(data unsafe.Pointer, size uintptr) uintptr
	modelCreateWithReporter func(data unsafe.Pointer, size uintptr, reporter, user uintptr) uintptr // optional
	modelDelete             func(m uintptr)
	optionsCreate           func() uintptr
	optionsDelete           func(o uintptr)
	optionsSetNumThreads    func(o uintptr, n int32)
	optionsAddDelegate      func(o, d uintptr)
	optionsSetErrorReporter func(o, reporter, user uintptr)
	optionsEnableCancel     func(o uintptr, enable bool) int32 // optional
	interpCreate            func(m, o uintptr) uintptr
	interpDelete            func(i uintptr)
	interpCancel            func(i uintptr) int32 // optional
	allocateTensors         func(i uintptr) int32
	inputCount              func(i uintptr) int32
	inputTensor             func(i uintptr, idx int32) uintptr
	outputCount             func(i uintptr) int32
	outputTensor            func(i uintptr, idx int32) uintptr
	resizeInput             func(i uintptr, idx int32, dims unsafe.Pointer, n int32) int32
	invoke                  func(i uintptr) int32
	tensorType              func(t uintptr) int32
	tensorNumDims           func(t uintptr) int32
	tensorDim               func(t uintptr, d int32) int32
	tensorByteSize          func(t uintptr) uintptr
	tensorData              func(t uintptr) unsafe.Pointer
	tensorName              func(t uintptr) string
	tensorQuant             func(t uintptr) quantParams

	// XNNPACK, when the library was built with it.
	xnnDefault func() xnnOptions
	xnnCreate  func(opts unsafe.Pointer) uintptr
	xnnDelete  func(d uintptr)
}

var (
	libsMu sync.Mutex
	libs   = map[string]*library{} // by the path or name dlopen was given
)

// candidates lists where to look for the library, in order.
func candidates(explicit string) (list []string, fromConfig bool) {
	if explicit != "" {
		return []string{explicit}, true
	}
	if env := os.Getenv(LibraryEnv); env != "" {
		return []string{env}, true
	}
	list = []string{libName} // the loader's own search: LD_LIBRARY_PATH, ld.so.cache, /lib, /usr/lib
	dirs := []string{"/usr/local/lib", "/usr/lib", "/usr/local/lib64", "/usr/lib64", "/opt/tensorflow-lite/lib"}
	switch runtime.GOARCH {
	case "arm64":
		dirs = append(dirs, "/usr/lib/aarch64-linux-gnu", "/usr/local/lib/aarch64-linux-gnu")
	case "amd64":
		dirs = append(dirs, "/usr/lib/x86_64-linux-gnu", "/usr/local/lib/x86_64-linux-gnu")
	}
	for _, d := range dirs {
		list = append(list, filepath.Join(d, libName))
	}
	return list, false
}

// loadLibrary finds and loads the TFLite C library.
func loadLibrary(explicit string) (*library, error) {
	list, fromConfig := candidates(explicit)
	var tried []string
	for _, c := range list {
		lib, err := openLibrary(c)
		if err == nil {
			return lib, nil
		}
		if errors.Is(err, ErrNotTFLite) {
			// A file that loads but is not TFLite is an answer in itself.
			return nil, err
		}
		if fromConfig {
			return nil, fmt.Errorf("native: %w: %v", ErrNoLibrary, err)
		}
		tried = append(tried, err.Error())
	}
	return nil, fmt.Errorf("native: %w (set %s or options.library); looked in: %s",
		ErrNoLibrary, LibraryEnv, strings.Join(tried, "; "))
}

// openLibrary dlopens one candidate and resolves the C API.
func openLibrary(path string) (*library, error) {
	libsMu.Lock()
	defer libsMu.Unlock()
	if l, ok := libs[path]; ok {
		return l, nil
	}
	if strings.Contains(path, "/") {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("%s: %w", path, errors.Unwrap(err))
		}
	}
	h, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		return nil, fmt.Errorf("%s: dlopen: %v%s", path, err, elfProblem(path))
	}
	l := &library{path: path, handle: h}
	if err := l.resolve(); err != nil {
		return nil, fmt.Errorf("native: %s: %w", path, err)
	}
	if !strings.Contains(path, "/") {
		if real := loadedPath(); real != "" {
			l.path = real
		}
	}
	libs[path] = l
	return l, nil
}

// sym registers fptr as the C function name, or reports it missing.
func (l *library) sym(fptr any, name string) error {
	p, err := purego.Dlsym(l.handle, name)
	if err != nil || p == 0 {
		return fmt.Errorf("%w: symbol %s missing", ErrNotTFLite, name)
	}
	purego.RegisterFunc(fptr, p)
	return nil
}

// optional registers fptr when the library has name, else leaves it nil.
func (l *library) optional(fptr any, name string) bool {
	p, err := purego.Dlsym(l.handle, name)
	if err != nil || p == 0 {
		return false
	}
	purego.RegisterFunc(fptr, p)
	return true
}

func (l *library) resolve() error {
	var version func() string
	required := []struct {
		fptr any
		name string
	}{
		{&version, "TfLiteVersion"},
		{&l.modelCreate, "TfLiteModelCreate"},
		{&l.modelDelete, "TfLiteModelDelete"},
		{&l.optionsCreate, "TfLiteInterpreterOptionsCreate"},
		{&l.optionsDelete, "TfLiteInterpreterOptionsDelete"},
		{&l.optionsSetNumThreads, "TfLiteInterpreterOptionsSetNumThreads"},
		{&l.optionsAddDelegate, "TfLiteInterpreterOptionsAddDelegate"},
		{&l.optionsSetErrorReporter, "TfLiteInterpreterOptionsSetErrorReporter"},
		{&l.interpCreate, "TfLiteInterpreterCreate"},
		{&l.interpDelete, "TfLiteInterpreterDelete"},
		{&l.allocateTensors, "TfLiteInterpreterAllocateTensors"},
		{&l.inputCount, "TfLiteInterpreterGetInputTensorCount"},
		{&l.inputTensor, "TfLiteInterpreterGetInputTensor"},
		{&l.outputCount, "TfLiteInterpreterGetOutputTensorCount"},
		{&l.outputTensor, "TfLiteInterpreterGetOutputTensor"},
		{&l.resizeInput, "TfLiteInterpreterResizeInputTensor"},
		{&l.invoke, "TfLiteInterpreterInvoke"},
		{&l.tensorType, "TfLiteTensorType"},
		{&l.tensorNumDims, "TfLiteTensorNumDims"},
		{&l.tensorDim, "TfLiteTensorDim"},
		{&l.tensorByteSize, "TfLiteTensorByteSize"},
		{&l.tensorData, "TfLiteTensorData"},
		{&l.tensorName, "TfLiteTensorName"},
		{&l.tensorQuant, "TfLiteTensorQuantizationParams"},
	}
	// Check every symbol before registering any, so a wrong library names
	// the first missing one and nothing is half set up.
	for _, r := range required {
		if p, err := purego.Dlsym(l.handle, r.name); err != nil || p == 0 {
			return fmt.Errorf("%w: symbol %s missing", ErrNotTFLite, r.name)
		}
	}
	for _, r := range required {
		if err := l.sym(r.fptr, r.name); err != nil {
			return err
		}
	}
	l.version = version()
	l.optional(&l.modelCreateWithReporter, "TfLiteModelCreateWithErrorReporter")
	if l.optional(&l.optionsEnableCancel, "TfLiteInterpreterOptionsEnableCancellation") {
		if !l.optional(&l.interpCancel, "TfLiteInterpreterCancel") {
			l.optionsEnableCancel = nil
		}
	}
	if l.optional(&l.xnnDefault, "TfLiteXNNPackDelegateOptionsDefault") &&
		l.optional(&l.xnnCreate, "TfLiteXNNPackDelegateCreate") &&
		l.optional(&l.xnnDelete, "TfLiteXNNPackDelegateDelete") {
		return nil
	}
	l.xnnDefault, l.xnnCreate, l.xnnDelete = nil, nil, nil
	return nil
}

// loadedPath returns the file the loader picked when the library was
// opened by name, from /proc/self/maps (purego has no dlinfo).
func loadedPath() string {
	data, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return ""
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		i := strings.IndexByte(line, '/')
		if i < 0 {
			continue
		}
		p := line[i:]
		if strings.Contains(filepath.Base(p), "tensorflowlite_c") {
			return p
		}
	}
	return ""
}

// machines maps GOARCH to the ELF machine a library for it is built for.
var machines = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

// elfProblem explains a dlopen failure that the loader reports unclearly,
// such as a library built for another CPU ("No such file or directory").
func elfProblem(path string) string {
	if !strings.Contains(path, "/") {
		return ""
	}
	f, err := elf.Open(path)
	if err != nil {
		return " (not an ELF shared library)"
	}
	defer f.Close()
	if want, ok := machines[runtime.GOARCH]; ok && f.Machine != want {
		return fmt.Sprintf(" (the file is built for %v, this program runs on %s)", f.Machine, runtime.GOARCH)
	}
	return ""
}
