// Package testutil holds helpers shared by the tests of the agent, the fleet
// and the firmware: waiting for a condition instead of sleeping, and the
// real mosquitto that interop tests talk to.
package testutil

import (
	"os"
	"testing"
	"time"
)

// WaitFor polls cond every few milliseconds until it is true, failing the
// test with what if it is not within timeout (scaled up under -race is the
// caller's business: pass a generous bound, it costs nothing when cond holds).
func WaitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	wait := time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(wait)
		if wait < 50*time.Millisecond {
			wait *= 2
		}
	}
}

// Eventually is WaitFor with a bound of 20 s, long enough for a loaded CI
// machine and never reached when the code works.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	WaitFor(t, what, 20*time.Second, cond)
}

// InCI reports whether the tests run under CI (.ci/run exports CI=true),
// where a missing service is a failure instead of a skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// Need skips the test with why, or fails it under CI.
func Need(t testing.TB, why string) {
	t.Helper()
	if InCI() {
		t.Fatalf("required under CI: %s", why)
	}
	t.Skip(why)
}

// Mosquitto returns host:port of the shared mosquitto that .ci/run starts
// ($EDGEFLEET_MOSQUITTO, anonymous clients allowed). Without it the test is
// skipped, or fails under CI.
func Mosquitto(t testing.TB) string {
	t.Helper()
	addr := os.Getenv("EDGEFLEET_MOSQUITTO")
	if addr == "" {
		Need(t, "EDGEFLEET_MOSQUITTO not set (host:port of a mosquitto allowing anonymous clients; .ci/run starts one)")
	}
	return addr
}
