// Package tflite reads TFLite flatbuffer model files and runs them with a
// pure-Go interpreter: no cgo, no native library.
package tflite
