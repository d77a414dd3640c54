package registry

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	bolt "go.etcd.io/bbolt"

	"edgefleet/fleet/api"
)

// MaxJobs bounds a device's job history (Device.Jobs).
const MaxJobs = 20

// Device statuses for Filter.Status. StatusNever is for devices that are
// provisioned (fleetd's configuration) but never reported: the registry
// has none of them, the REST API adds them.
const (
	StatusOnline  = "online"
	StatusOffline = "offline"
	StatusNever   = "never"
)

// Health filters for Filter.Health besides a flag name.
const (
	HealthOK        = "ok"        // no flag raised
	HealthUnhealthy = "unhealthy" // some flag raised
)

// Filter selects devices for List; zero fields match all.
type Filter struct {
	Site, Line string
	Online     *bool
	// Labels must all match too.
	Labels map[string]string
	// Q matches a device whose id, or a label value, contains it
	// (case-insensitive).
	Q string
	// Status is StatusOnline or StatusOffline (StatusNever matches none).
	Status string
	// Health is HealthOK, HealthUnhealthy or a flag (e.g. FlagCameraDown).
	Health string
	// Model and Version match the model the device runs.
	Model, Version string
}

// Check reports a filter value that cannot match as intended.
func (f Filter) Check() error {
	switch f.Status {
	case "", StatusOnline, StatusOffline, StatusNever:
	default:
		return fmt.Errorf("registry: status %q is not online, offline or never", f.Status)
	}
	return nil
}

func (f Filter) match(d *Device) bool {
	if f.Site != "" && d.Labels["site"] != f.Site || f.Line != "" && d.Labels["line"] != f.Line {
		return false
	}
	if f.Online != nil && d.Online != *f.Online {
		return false
	}
	for k, v := range f.Labels {
		if d.Labels[k] != v {
			return false
		}
	}
	switch f.Status {
	case StatusOnline, StatusOffline:
		if d.Online != (f.Status == StatusOnline) {
			return false
		}
	case "":
	default:
		return false
	}
	if f.Model != "" && d.Model != f.Model || f.Version != "" && d.ModelVersion != f.Version {
		return false
	}
	return f.Q == "" || matchQ(d, strings.ToLower(f.Q))
}

func matchQ(d *Device, q string) bool {
	if strings.Contains(strings.ToLower(d.ID), q) {
		return true
	}
	for _, v := range d.Labels {
		if strings.Contains(strings.ToLower(v), q) {
			return true
		}
	}
	return false
}

// matchHealth checks the health filter against a view (health computed).
func (f Filter) matchHealth(d *Device) bool {
	switch f.Health {
	case "":
		return true
	case HealthOK:
		return len(d.Health) == 0
	case HealthUnhealthy:
		return len(d.Health) > 0
	}
	return slices.Contains(d.Health, f.Health)
}

// List returns the devices matching f, sorted by id.
func (r *Registry) List(f Filter) []Device {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Device, 0, len(r.devices))
	for _, e := range r.devices {
		if f.match(&e.Device) {
			if v := r.view(e, now); f.matchHealth(&v) {
				out = append(out, v)
			}
		}
	}
	sortByID(out)
	return out
}

// List returns the devices matching f, sorted by id.
func (r *Postgres) List(f Filter) []Device {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Device, 0, len(r.cache))
	for _, e := range r.cache {
		if f.match(&e.Device) {
			if v := r.view(e, now); f.matchHealth(&v) {
				out = append(out, v)
			}
		}
	}
	sortByID(out)
	return out
}

// applyJob records a job status in d: LastJob, and the job's entry in the
// history (moved to the front, the oldest beyond MaxJobs dropped). It
// replaces d.Jobs rather than changing it (Flush copies devices shallowly).
// A report older than the one recorded for its job (an earlier phase, or
// any report once the job ended: api.JobReportStale) changes nothing.
func applyJob(d *Device, j api.JobStatus) {
	for _, o := range d.Jobs {
		if o.JobID == j.JobID {
			if api.JobReportStale(o.State, j.State) {
				return
			}
			break
		}
	}
	jc := j
	d.LastJob = &jc
	jobs := make([]api.JobStatus, 0, min(len(d.Jobs)+1, MaxJobs))
	jobs = append(jobs, j)
	for _, o := range d.Jobs {
		if o.JobID != j.JobID && len(jobs) < MaxJobs {
			jobs = append(jobs, o)
		}
	}
	d.Jobs = jobs
}

// Delete implements Devices: the device leaves memory and the file at once.
func (r *Registry) Delete(id string) (bool, error) {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return false, ErrClosed
	}
	_, known := r.devices[id]
	delete(r.devices, id)
	r.mu.Unlock()
	err := r.db.Update(func(tx *bolt.Tx) error {
		devs, hist := tx.Bucket(bucketDevices), tx.Bucket(bucketHistory)
		if devs.Get([]byte(id)) != nil {
			known = true
		}
		if err := devs.Delete([]byte(id)); err != nil {
			return err
		}
		prefix := append([]byte(id), 0)
		var dead [][]byte
		c := hist.Cursor()
		for k, _ := c.Seek(prefix); k != nil && len(k) == len(prefix)+8 && string(k[:len(prefix)]) == string(prefix); k, _ = c.Next() {
			dead = append(dead, k)
		}
		for _, k := range dead {
			if err := hist.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return known, fmt.Errorf("registry: delete %s: %w", id, err)
	}
	return known, nil
}

// Delete implements Devices: the rows go from the database in one
// transaction, and from this replica's cache at once; other replicas
// drop it at their next refresh.
func (r *Postgres) Delete(id string) (bool, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return false, ErrClosed
	}
	_, known := r.cache[id]
	delete(r.cache, id)
	delete(r.pending, id)
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), r.opt.Timeout)
	defer cancel()
	var n int64
	err := pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		// In the order updates and flushes take these tables' rows, so
		// that neither can deadlock with a delete.
		tag, err := tx.Exec(ctx, `DELETE FROM devices WHERE id = $1`, id)
		if err != nil {
			return err
		}
		n = tag.RowsAffected()
		for _, q := range []string{`DELETE FROM device_counts WHERE id = $1`, `DELETE FROM device_rates WHERE device = $1`, `DELETE FROM device_telemetry WHERE device = $1`} {
			if _, err := tx.Exec(ctx, q, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return known, fmt.Errorf("registry: delete %s: %w", id, err)
	}
	r.mu.Lock()
	delete(r.cache, id) // a refresh that read before the delete
	r.mu.Unlock()
	return known || n > 0, nil
}
