package firmware_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"edgefleet/agent/spool"
)

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// spooled reads the labels of every event in the stand-in agent's spool.
func spooled(t *testing.T, data string) []string {
	t.Helper()
	sp, err := spool.Open(filepath.Join(data, "spool", "events.db"), spool.Options{MaxBytes: spool.MinMaxBytes})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	evs, err := sp.Next(context.Background(), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var labels []string
	for _, e := range evs {
		labels = append(labels, e.Label)
	}
	return labels
}
