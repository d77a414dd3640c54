package manifest

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoInterpreter keeps the interpreter out of everything that signs or
// checks manifests without running models (issue 10): the manifest package
// itself, and so fleetctl, fleetd's artifact registry and edge-launcher.
func TestNoInterpreter(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-deps", "edgefleet/models/manifest").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "edgefleet/models/tfmodel\n") {
		t.Errorf("manifest does not parse models with tfmodel any more; update this test")
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.Contains(dep, "models/tflite") {
			t.Errorf("edgefleet/models/manifest depends on %s", dep)
		}
	}
}
