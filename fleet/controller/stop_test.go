package controller

import (
	"context"
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
	cfg, err := ParseConfig(strings.NewReader("data_dir: " + t.TempDir() + "\nhttp: {listen: 127.0.0.1:0}\nbroker: {listen: 127.0.0.1:0}\noperators: [{name: a, token: 0123456789abcdef}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	select {
	case <-c.Ready():
	case <-time.After(testutil.ServeBound):
		t.Fatal("fleetd not ready")
	}

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
