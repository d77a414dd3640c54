package controller

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"edgefleet/internal/dirlock"
)

// TestDataDirLocked: a second fleetd on the same data_dir says at once that
// it is locked and by whom, instead of timing out on a database file.
func TestDataDirLocked(t *testing.T) {
	dir := t.TempDir()
	cfg := func() *Config {
		c, err := ParseConfig(strings.NewReader("data_dir: " + dir + "\nhttp: {listen: 127.0.0.1:0}\nbroker: {listen: 127.0.0.1:0}\noperators: [{name: a, token: 0123456789abcdef}]\n"))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	first, err := New(context.Background(), cfg(), nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = New(context.Background(), cfg(), nil)
	if !errors.Is(err, dirlock.ErrLocked) || !strings.Contains(err.Error(), "data_dir") || !strings.Contains(err.Error(), "locked by fleetd (pid ") {
		t.Fatalf("second fleetd on the same data_dir: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v to refuse", d)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := New(context.Background(), cfg(), nil)
	if err != nil {
		t.Fatalf("after the first closed: %v", err)
	}
	again.Close()
}
