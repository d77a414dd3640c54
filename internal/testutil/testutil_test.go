package testutil

import (
	"context"
	"errors"
	"strings"
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

func TestServe(t *testing.T) {
	ready := make(chan struct{})
	var stopped atomic.Bool
	stop := Serve(t, "server", func(ctx context.Context) error {
		close(ready)
		<-ctx.Done()
		stopped.Store(true)
		return nil
	}, ready)
	stop()
	if !stopped.Load() {
		t.Fatal("stop returned before run did")
	}
	stop() // a second stop (and the cleanup's) does nothing
}

func TestServeNotReady(t *testing.T) {
	ft := &fakeT{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Serve(ft, "server", func(context.Context) error { return errors.New("no port") }, make(chan struct{}))
	}()
	<-done
	if !ft.failed {
		t.Fatal("Serve did not fail when run returned before ready")
	}
}

func TestGoroutines(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	go parkedForTest(block)
	WaitFor(t, "the goroutine parked", 5*time.Second, func() bool {
		return strings.Contains(Goroutines("edgefleet/"), "parkedForTest")
	})
	if g := Goroutines("edgefleet/"); strings.Contains(g, "testutil.Goroutines") {
		t.Errorf("the dump shows itself:\n%s", g)
	}
}

func parkedForTest(c chan struct{}) { <-c }

func (f *fakeT) Errorf(string, ...any) { f.failed = true }
