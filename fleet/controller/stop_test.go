package controller

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"edgefleet/internal/testutil"
)

// TestStopWithLiveFeedClient: fleetd stops within 2 s, without an error,
// while a live-feed client is connected (it used to wait out the 10 s
// shutdown deadline and log an error).
func TestStopWithLiveFeedClient(t *testing.T) {
	c := newStopTest(t)
	cancel, done := runStopTest(t, c)

	req, _ := http.NewRequest("GET", "http://"+c.HTTPAddr()+"/api/v1/detections/stream", nil)
	req.Header.Set("Authorization", "Bearer 0123456789abcdef")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("stream: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}

	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("stopped after %v, want within 2 s", d)
		}
	case <-time.After(8 * time.Second):
		t.Fatal("fleetd did not stop within 8 s with a live-feed client connected")
	}
}

// TestStopTimeoutNamesStuckPart: a part that does not end when fleetd stops
// makes Run return ErrStopTimeout naming it after the stop timeout, instead
// of hanging until the process is killed; the other parts have stopped.
func TestStopTimeoutNamesStuckPart(t *testing.T) {
	c := newStopTest(t)
	release := make(chan struct{})
	defer close(release)
	c.stopTimeout = 300 * time.Millisecond
	c.extraParts = map[string]func(context.Context) error{
		"stuck part": func(context.Context) error { <-release; return nil },
	}
	cancel, done := runStopTest(t, c)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, ErrStopTimeout) || !strings.HasSuffix(err.Error(), ": stuck part") {
			t.Fatalf("Run: %v, want ErrStopTimeout naming only the stuck part", err)
		}
	case <-time.After(testutil.ServeBound):
		t.Fatal("Run did not give up on the stuck part")
	}
	if _, err := http.Get("http://" + c.HTTPAddr() + "/healthz"); err == nil {
		t.Error("the HTTP server still answers after Run returned")
	}
}

// newStopTest builds a bbolt fleetd on loopback, closed when the test ends.
func newStopTest(t *testing.T) *Controller {
	t.Helper()
	cfg, err := ParseConfig(strings.NewReader("data_dir: " + t.TempDir() + "\nhttp: {listen: 127.0.0.1:0}\nbroker: {listen: 127.0.0.1:0}\noperators: [{name: a, token: 0123456789abcdef}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// runStopTest runs c until cancel and waits for it to be ready; done
// receives Run's result (these tests time the stop themselves).
func runStopTest(t *testing.T, c *Controller) (cancel func(), done <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ch := make(chan error, 1)
	go func() { ch <- c.Run(ctx) }()
	select {
	case <-c.Ready():
	case <-time.After(testutil.ServeBound):
		t.Fatal("fleetd not ready")
	}
	return cancel, ch
}
