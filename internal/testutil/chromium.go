package testutil

import (
	"os/exec"
	"testing"
)

// Chromium returns the path of a Chromium (or Chrome) browser for
// headless tests; without one the test is skipped, or fails under CI.
func Chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless_shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	Need(t, "chromium not found; install it (apt package chromium) to test the console")
	return ""
}
