package native

// Environment variables the native engine reads.
const (
	// LibraryEnv points at libtensorflowlite_c.so when Options.Library is empty.
	LibraryEnv = "EDGEFLEET_TFLITE_LIB"
	// GPULibraryEnv points at libtensorflowlite_gpu_delegate.so.
	GPULibraryEnv = "EDGEFLEET_TFLITE_GPU_LIB"
	// GPUCacheEnv is the GPU delegate's kernel cache folder; empty means
	// <user cache dir>/edgefleet/tflite-gpu.
	GPUCacheEnv = "EDGEFLEET_TFLITE_GPU_CACHE"
	// XNNPackFP16Env, when "1", lets XNNPACK run float operators in fp16
	// (TFLITE_XNNPACK_DELEGATE_FLAG_FORCE_FP16): faster on ARMv8.2 cores,
	// less precise.
	XNNPackFP16Env = "EDGEFLEET_XNNPACK_FP16"
)
