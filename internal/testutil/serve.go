package testutil

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// ServeBound bounds Serve's wait for a server to be ready and to stop:
// far past what a loaded CI machine needs, far short of go test's -timeout.
const ServeBound = 60 * time.Second

// Serve runs run(ctx) in a goroutine until the test ends or stop is
// called, after waiting for ready (nil: no wait). Stopping cancels ctx and
// waits for run to return; an error from run fails the test. A server not
// ready, or not stopped, within ServeBound fails the test with the
// goroutines that are in this module's code, instead of hanging the whole
// package until go test's -timeout (which shows nothing of the test).
func Serve(t testing.TB, what string, run func(context.Context) error, ready <-chan struct{}) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("%s: %v", what, err)
				}
			case <-time.After(ServeBound):
				t.Errorf("%s did not stop within %v of its context ending; its goroutines:\n%s", what, ServeBound, Goroutines("edgefleet/"))
			}
		})
	}
	t.Cleanup(stop)
	if ready == nil {
		return stop
	}
	select {
	case <-ready:
	case err := <-done:
		done <- err // for stop
		t.Fatalf("%s stopped before it was ready: %v", what, err)
	case <-time.After(ServeBound):
		t.Fatalf("%s not ready within %v; its goroutines:\n%s", what, ServeBound, Goroutines("edgefleet/"))
	}
	return stop
}

// Goroutines returns the stacks of this process's goroutines that have a
// frame whose function or file contains mark (e.g. "edgefleet/"), each cut
// to its first 24 lines.
func Goroutines(mark string) string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if !strings.Contains(g, mark) || strings.Contains(g, "testutil.Goroutines") {
			continue
		}
		lines := strings.Split(g, "\n")
		if len(lines) > 24 {
			lines = append(lines[:24], "\t…")
		}
		out = append(out, strings.Join(lines, "\n"))
	}
	return strings.Join(out, "\n\n")
}
