// Package tfmodel reads the TFLite flatbuffer file format: a bounds-checked
// reader (a truncated, corrupt or hostile file gives an error wrapping
// ErrFormat, never a panic or an allocation larger than the file), the
// parsed Model with its subgraphs, tensors, operators and metadata, and the
// builtin operator codes. It has no interpreter: manifest building, model
// checks and `edge-agent info` use it without linking models/tflite, which
// runs models and builds on this package.
package tfmodel
