package tflite

import (
	"syscall"
	"time"
	"unsafe"
)

// threadCPU is the calling thread's CPU time (CLOCK_THREAD_CPUTIME_ID), for
// BenchmarkParallelBalance: unlike wall time it does not count the time
// other processes of a busy machine held the core.
func threadCPU() time.Duration {
	var ts syscall.Timespec
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, 3, uintptr(unsafe.Pointer(&ts)), 0)
	return time.Duration(ts.Nano())
}

// osYield lets the kernel run another thread on this core (sched_yield):
// a spinning worker on a busy machine gives way to the invoking thread and
// to other processes instead of burning its time slice.
func osYield() { syscall.RawSyscall(syscall.SYS_SCHED_YIELD, 0, 0, 0) }
