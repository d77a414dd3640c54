// Package models defines what every part of edgefleet agrees on about a detection
// model: the Detection result, the Engine interface that inference backends
// (the pure-Go interpreter in models/tflite and the native TFLite binding)
// implement, tensor descriptions, and the Detector that turns images into
// detections.
package models

import (
	"context"
	"errors"
	"image"
)

// DType is a tensor element type. The values match TFLite's TensorType enum so
// the format reader and the native binding can convert without a table.
type DType uint8

// Tensor element types.
const (
	Float32   DType = 0
	Float16   DType = 1
	Int32     DType = 2
	UInt8     DType = 3
	Int64     DType = 4
	String    DType = 5
	Bool      DType = 6
	Int16     DType = 7
	Complex64 DType = 8
	Int8      DType = 9
	Float64   DType = 10
)

var dtypeNames = map[DType]string{
	Float32: "float32", Float16: "float16", Int32: "int32", UInt8: "uint8", Int64: "int64",
	String: "string", Bool: "bool", Int16: "int16", Complex64: "complex64", Int8: "int8", Float64: "float64",
}

func (t DType) String() string {
	if s, ok := dtypeNames[t]; ok {
		return s
	}
	return "dtype(" + itoa(int(t)) + ")"
}

// Size is the size in bytes of one element, or 0 for variable-size types.
func (t DType) Size() int {
	switch t {
	case Float32, Int32:
		return 4
	case Float16, Int16:
		return 2
	case UInt8, Int8, Bool:
		return 1
	case Int64, Float64, Complex64:
		return 8
	}
	return 0
}

// Quant holds a tensor's affine quantization: real = Scale * (q - ZeroPoint).
// Per-tensor quantization has one scale; per-channel has one per index of
// dimension Axis.
type Quant struct {
	Scale     []float32
	ZeroPoint []int64
	Axis      int
}

// TensorInfo describes an input or output tensor of an Engine.
type TensorInfo struct {
	Name  string
	Type  DType
	Shape []int
	// Quant is nil for tensors that are not quantized.
	Quant *Quant
}

// Elements is the number of elements the shape holds.
func (t TensorInfo) Elements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// EngineInfo says what an Engine really runs, for logs and telemetry.
type EngineInfo struct {
	Engine   string `json:"engine"`             // "go" or "native"
	Delegate string `json:"delegate,omitempty"` // "", "xnnpack", "gpu"
	Version  string `json:"version,omitempty"`  // library or interpreter version
	Threads  int    `json:"threads"`
}

// Engine runs one loaded model. Engines are not safe for concurrent use: one
// goroutine fills the inputs, calls Invoke and reads the outputs.
type Engine interface {
	Inputs() []TensorInfo
	Outputs() []TensorInfo
	// Input returns the bytes backing input tensor i, to be filled before Invoke.
	Input(i int) []byte
	// Output returns the bytes of output tensor i, valid until the next Invoke.
	Output(i int) []byte
	Invoke(ctx context.Context) error
	Info() EngineInfo
	Close() error
}

// Batcher is implemented by engines that can change the batch dimension of
// their input (and with it of every tensor that depends on it).
type Batcher interface {
	SetBatch(n int) error
}

// Options configure an engine when it is opened.
type Options struct {
	Threads int // worker goroutines or native threads; 0 means 1
	// Delegate names a native delegate: "", "none", "xnnpack" or "gpu".
	Delegate string
	// Strict makes a delegate that fails to load or apply an error instead
	// of a warning and a fallback to the CPU path.
	Strict bool
	// Library is the path of libtensorflowlite_c for the native engine; empty
	// means $EDGEFLEET_TFLITE_LIB, then the usual library paths.
	Library string
}

// Opener opens an engine for the bytes of a .tflite model file.
type Opener func(ctx context.Context, model []byte, opts Options) (Engine, error)

// ErrUnsupported is returned (wrapped) when a model uses something an engine
// cannot run, such as an unknown operator.
var ErrUnsupported = errors.New("unsupported")

// Detection is one object found in an image.
type Detection struct {
	ClassID int     `json:"class_id"`
	Label   string  `json:"label"`
	Score   float32 `json:"score"`
	// Box is x1, y1, x2, y2 in pixels of the original image.
	Box [4]float32 `json:"box"`
}

// IoU is the intersection over union of two x1, y1, x2, y2 boxes; 0 when
// they do not overlap or are empty.
func IoU(a, b [4]float32) float32 {
	iw := min(a[2], b[2]) - max(a[0], b[0])
	ih := min(a[3], b[3]) - max(a[1], b[1])
	if iw <= 0 || ih <= 0 {
		return 0
	}
	inter := iw * ih
	u := (a[2]-a[0])*(a[3]-a[1]) + (b[2]-b[0])*(b[3]-b[1]) - inter
	if !(u > 0) {
		return 0
	}
	return inter / u
}

// Detector finds objects in images. Implementations say whether they are safe
// for concurrent use.
type Detector interface {
	Detect(ctx context.Context, imgs []image.Image) ([][]Detection, error)
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	neg := i < 0
	if neg {
		i = -i
	}
	var b [20]byte
	p := len(b)
	for i > 0 {
		p--
		b[p] = byte('0' + i%10)
		i /= 10
	}
	if neg {
		p--
		b[p] = '-'
	}
	return string(b[p:])
}
