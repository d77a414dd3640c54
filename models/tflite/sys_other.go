//go:build !linux

package tflite

import (
	"runtime"
	"time"
)

var cpuStart = time.Now()

// threadCPU falls back to wall time where the thread clock is not wired.
func threadCPU() time.Duration { return time.Since(cpuStart) }

// osYield yields the processor (the Go scheduler's, where no sched_yield).
func osYield() { runtime.Gosched() }
