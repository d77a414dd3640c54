package broker

import (
	"context"
	"errors"
	"testing"

	"edgefleet/fleet/api"
)

func TestAllow(t *testing.T) {
	dev := Identity{Role: RoleDevice, DeviceID: "cam-1"}
	svc := Identity{Role: RoleService}
	tests := []struct {
		id    Identity
		topic string
		write bool
		want  bool
	}{
		{dev, api.StateTopic("cam-1"), true, true},
		{dev, api.TelemetryTopic("cam-1"), true, true},
		{dev, api.DetectionsTopic("cam-1"), true, true},
		{dev, api.JobTopic("cam-1", "job-7"), true, true},
		{dev, api.AcksTopic("cam-1"), true, false},
		{dev, api.CommandsTopic("cam-1"), true, false},
		{dev, api.DetectionsTopic("cam-2"), true, false},
		{dev, api.StateTopic("cam-2"), true, false},
		{dev, api.Prefix + "/cam-1/jobs", true, false},
		{dev, api.Prefix + "/cam-1/jobs/a/b", true, false},
		{dev, "edgefleet/v2/cam-1/state", true, false},
		{dev, "edgefleet/v1/cam-10/state", true, false},
		{dev, "edgefleet/v1cam-1/state", true, false},
		{dev, "edgefleet/v1/cam-1state", true, false},
		{dev, "edgefleet/v1/cam-1/", true, false},
		{dev, "edgefleet/v1/cam-1/jobs/", true, false},
		{dev, "edgefleet/v1/cam-1/jobs/+", true, false},
		{dev, "edgefleet/v1/cam-1/acks/x", false, false},
		{dev, "$SYS/broker/uptime", true, false},
		{dev, api.AcksTopic("cam-1"), false, true},
		{dev, api.CommandsTopic("cam-1"), false, true},
		{dev, api.StateTopic("cam-1"), false, false},
		{dev, api.AcksTopic("cam-2"), false, false},
		{dev, api.Prefix + "/cam-1/#", false, false},
		{dev, api.Prefix + "/+/acks", false, false},
		{dev, "#", false, false},
		{Identity{Role: RoleDevice}, api.StateTopic(""), true, false},
		{Identity{}, api.StateTopic("cam-1"), true, false},
		{svc, "#", false, true},
		{svc, api.DetectionsTopic("cam-2"), true, true},
		{svc, "$share/fleetd/" + api.Filter(api.KindDetections), false, true},
	}
	for _, tt := range tests {
		if got := Allow(tt.id, tt.topic, tt.write); got != tt.want {
			t.Errorf("Allow(%v %q, %q, write=%v) = %v, want %v", tt.id.Role, tt.id.DeviceID, tt.topic, tt.write, got, tt.want)
		}
	}
}

func TestStaticAuth(t *testing.T) {
	a := NewStaticAuth()
	if err := a.SetDevice("cam-1", "s3cret"); err != nil {
		t.Fatal(err)
	}
	if err := a.SetService("fleetd", "svc"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		user, pass string
		want       Identity
		ok         bool
	}{
		{"cam-1", "s3cret", Identity{Role: RoleDevice, DeviceID: "cam-1"}, true},
		{"fleetd", "svc", Identity{Role: RoleService}, true},
		{"cam-1", "s3cre", Identity{}, false},
		{"cam-1", "", Identity{}, false},
		{"cam-2", "s3cret", Identity{}, false},
		{"fleetd", "s3cret", Identity{}, false},
		{"", "", Identity{}, false},
	}
	for _, tt := range tests {
		got, err := a.Authenticate(context.Background(), tt.user, []byte(tt.pass))
		if tt.ok != (err == nil) || got != tt.want {
			t.Errorf("Authenticate(%q, %q) = %+v, %v; want %+v ok=%v", tt.user, tt.pass, got, err, tt.want, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrBadCredentials) {
			t.Errorf("Authenticate(%q): %v is not ErrBadCredentials", tt.user, err)
		}
	}
	a.RemoveDevice("cam-1")
	if _, err := a.Authenticate(context.Background(), "cam-1", []byte("s3cret")); err == nil {
		t.Error("removed device still logs in")
	}
	for _, bad := range []struct{ id, pw string }{{"bad/id", "x"}, {"", "x"}, {"ok", ""}, {"fleetd", "x"}} {
		if err := a.SetDevice(bad.id, bad.pw); err == nil {
			t.Errorf("SetDevice(%q, %q) accepted", bad.id, bad.pw)
		}
	}
	if err := a.SetDevice("cam-3", "x"); err != nil {
		t.Fatal(err)
	}
	if err := a.SetService("cam-3", "x"); err == nil {
		t.Error("SetService accepted a device's name")
	}
}

// BenchmarkAllow is the ACL cost of one publish. One op is 100,000 checks,
// so that `make bench` (-benchtime=1x) still measures something.
func BenchmarkAllow(b *testing.B) {
	const perOp = 100000
	id := Identity{Role: RoleDevice, DeviceID: "cam-box-0042"}
	topic := api.DetectionsTopic(id.DeviceID)
	b.ReportAllocs()
	for b.Loop() {
		for range perOp {
			if !Allow(id, topic, true) {
				b.Fatal("refused")
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*perOp), "ns/check")
}
