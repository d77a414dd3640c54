// Package modeltest finds the shared test assets (real YOLO models, photos,
// reference detections) for tests anywhere in the module.
//
// The folder is $EDGEFLEET_TESTDATA, else ../shared/testdata next to the
// checkout. When it is missing, tests skip, except under CI (CI=true), where
// a missing asset is a failure.
package modeltest

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// Dir returns the test data folder, or "" when none is found.
func Dir() string {
	if d := os.Getenv("EDGEFLEET_TESTDATA"); d != "" {
		return d
	}
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return ""
	}
	// file is <repo>/models/modeltest/modeltest.go; shared/ sits beside <repo>.
	repo := filepath.Dir(filepath.Dir(filepath.Dir(file)))
	d := filepath.Join(filepath.Dir(repo), "shared", "testdata")
	if _, err := os.Stat(d); err != nil {
		return ""
	}
	return d
}

// Path returns the path of a file under the test data folder, skipping the
// test when it is absent (failing it under CI).
func Path(t testing.TB, rel ...string) string {
	t.Helper()
	d := Dir()
	p := filepath.Join(append([]string{d}, rel...)...)
	if d == "" {
		missing(t, "test data folder not found: set EDGEFLEET_TESTDATA or run scripts/fetch-testdata.sh")
		return ""
	}
	if _, err := os.Stat(p); err != nil {
		missing(t, "test asset missing: "+p)
	}
	return p
}

// Glob returns the test data files matching a pattern under the folder.
func Glob(t testing.TB, pattern string) []string {
	t.Helper()
	d := Path(t)
	m, err := filepath.Glob(filepath.Join(d, pattern))
	if err != nil || len(m) == 0 {
		missing(t, "no test assets match "+pattern)
	}
	return m
}

func missing(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}
