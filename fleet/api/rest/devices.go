package rest

import (
	"net/url"
	"strconv"

	"edgefleet/fleet/api"
)

// Device statuses (DeviceRow.Status and DeviceQuery.Status). StatusNever
// is a device provisioned in fleetd's configuration that never reported.
const (
	StatusOnline  = "online"
	StatusOffline = "offline"
	StatusNever   = "never"
)

// Device list limits of GET /api/v1/devices: without limit, every device
// matching comes back (as before paging).
const MaxDeviceLimit = 1000

// DeviceSorts are the sort keys of GET /api/v1/devices?sort=; "-key"
// sorts descending. Ties go by id.
var DeviceSorts = []string{"id", "site", "line", "status", "model", "version", "health", "detections", "rate", "last_seen"}

// DeviceQuery is the query of GET /api/v1/devices; zero fields match all.
// Q matches a substring of the id or of a label value (any case); Status
// is online, offline or never; Health is ok, unhealthy or one flag; Model
// and Version the model a device runs. Offset and Limit page the sorted
// result (Limit 0: everything).
type DeviceQuery struct {
	Q, Site, Line, Status, Health, Model, Version string
	Sort                                          string
	Offset, Limit                                 int
}

// Values is the query string of q.
func (q DeviceQuery) Values() url.Values {
	v := url.Values{}
	for _, kv := range [][2]string{{"q", q.Q}, {"site", q.Site}, {"line", q.Line}, {"status", q.Status}, {"health", q.Health},
		{"model", q.Model}, {"version", q.Version}, {"sort", q.Sort}} {
		if kv[1] != "" {
			v.Set(kv[0], kv[1])
		}
	}
	if q.Offset > 0 {
		v.Set("offset", strconv.Itoa(q.Offset))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return v
}

// DeviceRow is a device with its status: an element of DevicePage
// (without jobs), and (with Jobs and Rollouts) the body of
// GET /api/v1/devices/{id}.
type DeviceRow struct {
	Device
	Status string `json:"status"`
	// Rollouts is the device's part in the rollouts that target it, newest
	// first (device page only).
	Rollouts []DeviceRollout `json:"rollouts,omitempty"`
}

// DeviceRollout is one rollout's job on a device: its trial state.
type DeviceRollout struct {
	ID       string `json:"id"`
	Artifact string `json:"artifact"` // kind name@version
	State    string `json:"state"`    // the rollout's
	Job      Job    `json:"job"`
}

// DevicePage is the body of GET /api/v1/devices: the page of the sorted
// devices from Offset, and Total, how many match.
type DevicePage struct {
	Devices []DeviceRow `json:"devices"`
	Total   int         `json:"total"`
	Offset  int         `json:"offset"`
	Limit   int         `json:"limit,omitempty"`
}

// DeviceJobs is the body of GET /api/v1/devices/{id}/jobs.
type DeviceJobs struct {
	DeviceID string          `json:"device_id"`
	Jobs     []api.JobStatus `json:"jobs"`
}

// Decommissioned is the body of DELETE /api/v1/devices/{id}[?purge=true].
type Decommissioned struct {
	Deleted string `json:"deleted"`
	// Purged counts the detections deleted with purge.
	Purged int  `json:"purged_detections"`
	Purge  bool `json:"purge"`
}
