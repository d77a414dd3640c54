package client_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"edgefleet/fleet/api/rest"
	"edgefleet/fleet/client"
	"edgefleet/fleet/controller/controllertest"
	"edgefleet/models/modeltest"
)

// TestClient runs the client against a whole fleetd.
func TestClient(t *testing.T) {
	model, err := os.ReadFile(modeltest.Path(t, "models", "yolov5n-int8.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	f := controllertest.Start(t, "")
	ctx := context.Background()
	c := f.API

	if h, err := c.Health(ctx); err != nil || h.Status != "ok" {
		t.Fatalf("health: %+v %v", h, err)
	}
	if devs, err := c.Devices(ctx, rest.DeviceFilter{Site: "nowhere"}); err != nil || len(devs) != 0 {
		t.Fatalf("devices: %v %v", devs, err)
	}
	// An error carries the server's reason and status.
	_, err = c.Device(ctx, "cam-404")
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != http.StatusNotFound || !strings.Contains(ce.Reason, `"cam-404" not found`) || errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("missing device: %v", err)
	}
	if _, err := c.Detections(ctx, rest.DetectionQuery{From: "yesterday"}); !errors.As(err, &ce) || ce.Status != http.StatusBadRequest || !strings.HasPrefix(ce.Reason, "from:") {
		t.Fatalf("bad query: %v", err)
	}

	// A streamed upload of unknown length, then the artifact routes.
	body := io.MultiReader(bytes.NewReader(model[:1000]), bytes.NewReader(model[1000:]))
	m, err := c.Push(ctx, rest.KindModel, rest.Upload{Name: "yolo", Version: "2", Labels: []byte("a\nb\n")}, "yolo.tflite", body)
	if err != nil || m.Size != int64(len(model)) || m.Labels != 2 || len(m.Inputs) != 1 {
		t.Fatalf("push: %+v %v", m, err)
	}
	if l, err := c.Artifacts(ctx, rest.KindModel); err != nil || len(l) != 1 || l[0].SHA256 != m.SHA256 {
		t.Fatalf("models: %+v %v", l, err)
	}
	if l, err := c.Artifacts(ctx, rest.KindFirmware); err != nil || len(l) != 0 {
		t.Fatalf("firmware: %+v %v", l, err)
	}
	if _, err := c.Push(ctx, rest.KindModel, rest.Upload{Name: "yolo", Version: "2"}, "yolo.tflite", bytes.NewReader(model)); !errors.As(err, &ce) || ce.Status != http.StatusConflict {
		t.Fatalf("push again: %v", err)
	}
	if keys, err := c.Keys(ctx); err != nil || len(keys) != 1 || keys[0].ID != m.KeyID {
		t.Fatalf("keys: %+v %v", keys, err)
	}
	if _, err := c.CreateRollout(ctx, rest.CreateRollout{Model: "yolo@2"}); !errors.As(err, &ce) || ce.Status != http.StatusUnprocessableEntity {
		t.Fatalf("rollout without devices: %v", err)
	}
	if d, err := c.DeleteArtifact(ctx, rest.KindModel, "yolo", "2"); err != nil || d.Deleted != "yolo@2" || d.SHA256 != m.SHA256 {
		t.Fatalf("delete: %+v %v", d, err)
	}

	// A wrong token.
	bad, err := client.New("http://"+f.HTTP, "not-the-token", client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.Fleet(ctx); !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("wrong token: %v", err)
	}
}

// TestClientTransportErrors: nothing listening, and a server that never answers.
func TestClientTransportErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, err := client.New("http://"+addr, "token", client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Fleet(context.Background()); !errors.Is(err, client.ErrUnreachable) {
		t.Fatalf("nothing listening: %v", err)
	}

	// Accepts connections and never answers.
	ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
		}
	}()
	c, err = client.New("http://"+ln.Addr().String(), "token", client.Options{Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Fleet(context.Background()); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "did not answer in 100ms") {
		t.Fatalf("silent server: %v", err)
	}
	// Exports are bounded by ctx only.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := c.Export(ctx, rest.DetectionQuery{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("export from a silent server: %v", err)
	}

	for _, tc := range []struct{ server, token string }{{"ftp://x", "t"}, {"http://", "t"}, {"http://127.0.0.1:1", ""}} {
		if _, err := client.New(tc.server, tc.token, client.Options{}); err == nil || !strings.HasPrefix(err.Error(), "client: ") {
			t.Errorf("New(%q, %q) = %v", tc.server, tc.token, err)
		}
	}
}
