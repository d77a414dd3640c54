// Package native runs TFLite models with the TensorFlow Lite C library
// (libtensorflowlite_c.so), loaded at run time with dlopen: the agent binary
// is built without cgo and runs on boxes with or without the library.
//
// The library is found from [models.Options].Library, then
// $EDGEFLEET_TFLITE_LIB, then the dynamic loader's search path and the usual
// library folders. A library that is missing, built for another machine, or
// not a TFLite C library (a symbol is missing) gives an error, never a crash.
//
// Delegates: "xnnpack" (TfLiteXNNPackDelegateCreate, when the C library has
// it) and "gpu" (the GPU delegate V2 from libtensorflowlite_gpu_delegate.so,
// found from $EDGEFLEET_TFLITE_GPU_LIB, beside the C library, or on the usual
// paths). A delegate that fails to load or to apply logs a warning, counts in
// edgefleet_native_delegate_fallbacks_total and leaves the model on the CPU,
// unless [models.Options].Strict asks for an error instead.
//
// Builds for other systems, or with the build tag omit_native (for fully
// static binaries, since dlopen needs the C loader), compile a stub whose
// Open returns [ErrNotBuilt].
package native
