package sim_test

import (
	"bytes"
	"context"
	"fmt"
	"image/jpeg"
	"strings"
	"testing"

	"edgefleet/fleet/controller/controllertest"
	"edgefleet/fleet/sim"
)

// TestSimSnapshotThroughFleetd asks a real fleetd for a simulated device's
// snapshot over REST: fleetd relays the command over MQTT and the device
// answers with a real JPEG; an unknown camera is fleetd's 404. (An external
// test package: controllertest imports sim.)
func TestSimSnapshotThroughFleetd(t *testing.T) {
	f := controllertest.Start(t, "services: [{user: sim, password: sim-password}]\n")
	controllertest.StartSim(t, f.MQTT, 2, 0)
	controllertest.WaitOnline(t, f.API, 2)
	ctx := context.Background()
	var first []byte
	for _, dev := range []string{"sim-0", "sim-1"} {
		b, err := f.API.Snapshot(ctx, dev, sim.SimCamera)
		if err != nil {
			t.Fatalf("%s snapshot: %v", dev, err)
		}
		img, err := jpeg.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s snapshot is not a JPEG: %v", dev, err)
		}
		if sz := img.Bounds().Size(); sz.X != sim.SnapshotWidth || sz.Y != sim.SnapshotHeight {
			t.Errorf("%s snapshot is %v, want %dx%d", dev, sz, sim.SnapshotWidth, sim.SnapshotHeight)
		}
		if first == nil {
			first = b
		} else if bytes.Equal(first, b) {
			t.Errorf("sim-0 and sim-1 sent the same image")
		}
	}
	if _, err := f.API.Snapshot(ctx, "sim-0", "nope"); !strings.Contains(fmt.Sprint(err), "HTTP 404") {
		t.Errorf("unknown camera: %v, want HTTP 404", err)
	}
}
