package native

import "errors"

// Errors of this package, returned wrapped.
var (
	// ErrNotBuilt: this binary was built without the native engine (build tag
	// omit_native, or a system the binding does not support).
	ErrNotBuilt = errors.New("built without the native TFLite engine")
	// ErrNoLibrary: no usable libtensorflowlite_c was found; the message
	// lists every place that was tried.
	ErrNoLibrary = errors.New("TFLite C library not found")
	// ErrNotTFLite: a library was loaded but it lacks a symbol of the TFLite
	// C API, so it is some other library.
	ErrNotTFLite = errors.New("not a TFLite C library")
	// ErrDelegate: a delegate could not be loaded or applied and
	// Options.Strict asked for an error instead of a CPU fallback.
	ErrDelegate = errors.New("delegate unavailable")
)
