package registry

import (
	"context"
	"path/filepath"
	"testing"

	"edgefleet/fleet/api"
)

// TestInventory: the registry keeps the latest inventory a device reported,
// through a bare last will and a restart.
func TestInventory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "reg.db")
	r, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	inv := &api.Inventory{Address: "10.0.0.7", OS: "Debian GNU/Linux 12", Arch: "arm64", DiskFreeBytes: 5, DiskTotalBytes: 9, UptimeS: 60}
	r.UpdateState(api.State{DeviceID: "box-1", Online: true, Time: 1000, Model: "m", Inventory: inv})
	newer := &api.Inventory{Address: "10.0.0.8", OS: "Debian GNU/Linux 12", Arch: "arm64", UptimeS: 360}
	r.UpdateState(api.State{DeviceID: "box-1", Online: true, Time: 2000, Model: "m", Inventory: newer})
	r.UpdateState(api.State{DeviceID: "box-1", Online: false, Time: 3000}) // the last will
	d, ok := r.Get("box-1")
	if !ok || d.Online || d.Inventory == nil || *d.Inventory != *newer {
		t.Fatalf("after the last will: %+v, inventory %+v", d, d.Inventory)
	}
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.Close()
	r, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if d, _ := r.Get("box-1"); d.Inventory == nil || *d.Inventory != *newer {
		t.Fatalf("after a restart: inventory %+v", d.Inventory)
	}
}
