package testutil

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestWaitFor(t *testing.T) {
	var n atomic.Int32
	go func() {
		for range 3 {
			n.Add(1)
		}
	}()
	WaitFor(t, "three increments", 5*time.Second, func() bool { return n.Load() == 3 })
}

func TestWaitForTimesOut(t *testing.T) {
	ft := &fakeT{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		WaitFor(ft, "never", 20*time.Millisecond, func() bool { return false })
	}()
	<-done
	if !ft.failed {
		t.Fatal("WaitFor did not fail on a condition that never holds")
	}
}

type fakeT struct {
	testing.TB
	failed bool
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(string, ...any) {
	f.failed = true
	runtimeGoexit()
}
