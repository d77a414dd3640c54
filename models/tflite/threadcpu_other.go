//go:build !linux

package tflite

import "time"

var cpuStart = time.Now()

// threadCPU falls back to wall time where the thread clock is not wired.
func threadCPU() time.Duration { return time.Since(cpuStart) }
