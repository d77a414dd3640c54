package registry

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"edgefleet/fleet/api"
)

func TestListFilter(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) { testListFilter(t, im.open) })
	}
}

func ids(ds []Device) []string {
	out := []string{}
	for _, d := range ds {
		out = append(out, d.ID)
	}
	return out
}

func testListFilter(t *testing.T, openR func(*testing.T, *clock) Devices) {
	c := &clock{time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	r := openR(t, c)
	devs := []struct {
		id, site, line, model, version string
		online, camUp                  bool
	}{
		{"cam-a1", "plant-a", "1", "yolov8n", "3", true, true},
		{"cam-a2", "plant-a", "2", "yolov8n", "4", true, false},
		{"cam-b1", "plant-b", "1", "yolo11n", "1", false, true},
		{"gate-7", "Dock-North", "9", "yolov8n", "3", true, true},
	}
	for _, d := range devs {
		st := api.State{DeviceID: d.id, Online: d.online, Time: c.t.UnixMilli(), Model: d.model, ModelVersion: d.version,
			Labels: map[string]string{"site": d.site, "line": d.line}}
		if err := r.UpdateState(st); err != nil {
			t.Fatal(err)
		}
		if d.online {
			if err := r.UpdateTelemetry(tele(d.id, 10, 0, d.camUp, 1)); err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []struct {
		name string
		f    Filter
		want []string
	}{
		{"all", Filter{}, []string{"cam-a1", "cam-a2", "cam-b1", "gate-7"}},
		{"q in id", Filter{Q: "A2"}, []string{"cam-a2"}},
		{"q in a label", Filter{Q: "north"}, []string{"gate-7"}},
		{"q matches none", Filter{Q: "zzz"}, []string{}},
		{"site and line", Filter{Site: "plant-a", Line: "1"}, []string{"cam-a1"}},
		{"online", Filter{Status: StatusOnline}, []string{"cam-a1", "cam-a2", "gate-7"}},
		{"offline", Filter{Status: StatusOffline}, []string{"cam-b1"}},
		{"never is not in the registry", Filter{Status: StatusNever}, []string{}},
		{"healthy", Filter{Health: HealthOK}, []string{"cam-a1", "gate-7"}},
		{"unhealthy", Filter{Health: HealthUnhealthy}, []string{"cam-a2", "cam-b1"}},
		{"one flag", Filter{Health: FlagCameraDown}, []string{"cam-a2"}},
		{"model", Filter{Model: "yolov8n"}, []string{"cam-a1", "cam-a2", "gate-7"}},
		{"model and version", Filter{Model: "yolov8n", Version: "3"}, []string{"cam-a1", "gate-7"}},
		{"all together", Filter{Q: "cam", Site: "plant-a", Status: StatusOnline, Health: HealthOK, Model: "yolov8n", Version: "3"}, []string{"cam-a1"}},
	}
	for _, tt := range tests {
		if got := ids(r.List(tt.f)); !slices.Equal(got, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
	if err := (Filter{Status: "gone"}).Check(); err == nil {
		t.Error("status gone accepted")
	}
}

func TestDeleteAndJobs(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) { testDeleteAndJobs(t, im.open) })
	}
}

func testDeleteAndJobs(t *testing.T, openR func(*testing.T, *clock) Devices) {
	c := &clock{time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	r := openR(t, c)
	for _, id := range []string{"cam-1", "cam-2"} {
		if err := r.UpdateState(api.State{DeviceID: id, Online: true}); err != nil {
			t.Fatal(err)
		}
		if err := r.UpdateTelemetry(tele(id, 10, 0, true, 1)); err != nil {
			t.Fatal(err)
		}
	}
	// Job history: one entry per job, newest first, bounded.
	for i := range MaxJobs + 5 {
		for _, st := range []string{api.JobDownloading, api.JobSucceeded} {
			if err := r.RecordJob(api.JobStatus{DeviceID: "cam-1", JobID: fmt.Sprintf("j%d", i), State: st}); err != nil {
				t.Fatal(err)
			}
		}
	}
	d, _ := r.Get("cam-1")
	if len(d.Jobs) != MaxJobs || d.Jobs[0].JobID != fmt.Sprintf("j%d", MaxJobs+4) || d.Jobs[0].State != api.JobSucceeded || d.Jobs[MaxJobs-1].JobID != "j5" {
		t.Fatalf("jobs: %d, first %+v", len(d.Jobs), d.Jobs[0])
	}

	if ok, err := r.Delete("cam-1"); !ok || err != nil {
		t.Fatalf("delete cam-1: %v, %v", ok, err)
	}
	if ok, err := r.Delete("cam-1"); ok || err != nil {
		t.Fatalf("delete cam-1 again: %v, %v", ok, err)
	}
	if _, ok := r.Get("cam-1"); ok {
		t.Fatal("cam-1 still there")
	}
	if h, ok := r.History("cam-1", time.Time{}); ok || len(h) != 0 {
		t.Fatalf("cam-1 history after delete: %v %v", h, ok)
	}
	if got := ids(r.List(Filter{})); !slices.Equal(got, []string{"cam-2"}) {
		t.Fatalf("list after delete: %v", got)
	}
	if n, _ := r.Counts(); n != 1 {
		t.Fatalf("Counts after delete: %d", n)
	}
	// It reappears, fresh, when it reports again.
	if err := r.UpdateState(api.State{DeviceID: "cam-1", Online: true}); err != nil {
		t.Fatal(err)
	}
	if d, ok := r.Get("cam-1"); !ok || len(d.Jobs) != 0 || d.Telemetry != nil {
		t.Fatalf("cam-1 back: %+v", d)
	}
}

// TestDeletePersists: a deleted device does not come back when the file
// is reopened, even if it was dirty when deleted.
func TestDeletePersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "reg.db")
	c := &clock{time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	r, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r.now = c.now
	for _, id := range []string{"cam-1", "cam-2"} {
		r.UpdateState(api.State{DeviceID: id, Online: true})
		r.UpdateTelemetry(tele(id, 10, 0, true, 1))
	}
	if err := r.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	r.UpdateTelemetry(tele("cam-1", 11, 0, true, 1)) // dirty again
	if ok, err := r.Delete("cam-1"); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	r2 := open(t, path, c)
	if got := ids(r2.List(Filter{})); !slices.Equal(got, []string{"cam-2"}) {
		t.Fatalf("reopened: %v", got)
	}
	if h, _ := r2.History("cam-2", time.Time{}); len(h) != 1 {
		t.Fatalf("cam-2 history %v", h)
	}
}

// TestJobReportsOutOfOrder: a device's job reports can arrive out of order
// (fleetd handles one device's messages concurrently; replicas split
// them). A report of an earlier phase than the one recorded, or any report
// after the job ended, changes neither the job's entry nor LastJob.
func TestJobReportsOutOfOrder(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			r := im.open(t, &clock{time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)})
			if err := r.UpdateState(api.State{DeviceID: "cam-1", Online: true}); err != nil {
				t.Fatal(err)
			}
			steps := []struct {
				job, state string
				want       string // the job's state afterwards
			}{
				{"j1", api.JobDownloading, api.JobDownloading},
				{"j1", api.JobHealthCheck, api.JobHealthCheck},
				{"j1", api.JobDownloading, api.JobHealthCheck}, // late
				{"j1", api.JobShadow, api.JobHealthCheck},      // late
				{"j1", api.JobHealthCheck, api.JobHealthCheck},
				{"j1", api.JobSucceeded, api.JobSucceeded},
				{"j1", api.JobInstalling, api.JobSucceeded}, // late
				{"j1", api.JobFailed, api.JobSucceeded},     // the job had ended
				{"j2", api.JobQueued, api.JobQueued},        // another job
			}
			for i, s := range steps {
				if err := r.RecordJob(api.JobStatus{DeviceID: "cam-1", JobID: s.job, State: s.state, Time: int64(i)}); err != nil {
					t.Fatal(err)
				}
				d, _ := r.Get("cam-1")
				var got string
				for _, j := range d.Jobs {
					if j.JobID == s.job {
						got = j.State
					}
				}
				if got != s.want || d.LastJob == nil || d.LastJob.JobID != s.job && s.job != "j1" {
					t.Fatalf("step %d (%s %s): job state %q, want %q; last job %+v", i, s.job, s.state, got, s.want, d.LastJob)
				}
				if s.want != s.state && d.LastJob.State == s.state && d.LastJob.Time == int64(i) {
					t.Fatalf("step %d: the late report became LastJob: %+v", i, d.LastJob)
				}
			}
		})
	}
}
