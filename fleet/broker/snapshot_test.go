package broker

import (
	"strings"
	"testing"
	"time"

	"edgefleet/fleet/api"
)

func TestAllowSnapshot(t *testing.T) {
	dev := Identity{Role: RoleDevice, DeviceID: "cam-1"}
	tests := []struct {
		topic string
		write bool
		want  bool
	}{
		{api.SnapshotTopic("cam-1", "r-1"), true, true},
		{api.SnapshotTopic("cam-2", "r-1"), true, false},
		{api.SnapshotTopic("cam-1", "r-1"), false, false}, // a device never reads replies
		{api.Prefix + "/cam-1/snapshot", true, false},
		{api.Prefix + "/cam-1/snapshot/", true, false},
		{api.Prefix + "/cam-1/snapshot/+", true, false},
		{api.Prefix + "/cam-1/snapshot/a/b", true, false},
		{api.Prefix + "/cam-1/snapshots/r-1", true, false},
		{api.Filter(api.KindSnapshot), false, false},
	}
	for _, tt := range tests {
		if got := Allow(dev, tt.topic, tt.write); got != tt.want {
			t.Errorf("Allow(cam-1, %q, write=%v) = %v, want %v", tt.topic, tt.write, got, tt.want)
		}
	}
	if !Allow(Identity{Role: RoleService}, api.Filter(api.KindSnapshot), false) {
		t.Error("the service may not subscribe to snapshot replies")
	}
}

// TestSnapshotReplySpoofRefused: a device publishing a snapshot reply on
// another device's topic is refused by the embedded broker (QoS 0 dropped,
// QoS 1 costs the connection); its own reply gets through.
func TestSnapshotReplySpoofRefused(t *testing.T) {
	b, _ := startBroker(t, nil)
	svc := mustDial(t, b, "fleetd", "svc", "svcpw")
	if code := subscribe(t, svc, api.Filter(api.KindSnapshot)); code != 1 {
		t.Fatalf("service subscribe: code %#x", code)
	}
	dev2 := mustDial(t, b, "dev2", "dev2", "pw2")
	publish(t, dev2, api.SnapshotTopic("dev1", "r-1"), 0, "spoof")
	publish(t, dev2, api.SnapshotTopic("dev2", "r-2"), 1, "own")
	waitFor(t, "dev2's own reply", func() bool { return len(svc.received()) >= 1 })
	dev2.Publish(api.SnapshotTopic("dev1", "r-3"), 1, false, "spoof")
	select {
	case <-dev2.lost:
	case <-time.After(wait):
		t.Fatal("dev2 still connected after a QoS 1 publish to dev1's snapshot topic")
	}
	dev1 := mustDial(t, b, "dev1", "dev1", "pw1")
	publish(t, dev1, api.SnapshotTopic("dev1", "r-4"), 1, "marker")
	waitFor(t, "marker", func() bool { return strings.HasSuffix(strings.Join(svc.received(), " "), "=marker") })
	want := api.SnapshotTopic("dev2", "r-2") + "=own " + api.SnapshotTopic("dev1", "r-4") + "=marker"
	if got := strings.Join(svc.received(), " "); got != want {
		t.Errorf("service received %q, want %q", got, want)
	}
}

// TestMosquittoSnapshotACL: the same with mosquitto.acl.example.
func TestMosquittoSnapshotACL(t *testing.T) {
	addr := mosquittoAddr(t)
	svc, err := dial(addr, "fleetd-snap", "fleetd", "svcpw", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Disconnect(0) })
	subscribe(t, svc, api.Filter(api.KindSnapshot))
	dev2, err := dial(addr, "dev2", "dev2", "pw2", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev2.Disconnect(0) })
	publish(t, dev2, api.SnapshotTopic("dev1", "r-1"), 1, "spoof")
	publish(t, dev2, api.SnapshotTopic("dev2", "r-2"), 1, "marker")
	waitFor(t, "dev2's own reply", func() bool { return strings.HasSuffix(strings.Join(svc.received(), " "), "=marker") })
	if got, want := strings.Join(svc.received(), " "), api.SnapshotTopic("dev2", "r-2")+"=marker"; got != want {
		t.Errorf("service received %q, want %q", got, want)
	}
}
