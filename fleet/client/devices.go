package client

import (
	"context"
	"net/http"
	"net/url"

	"edgefleet/fleet/api/rest"
)

// DevicePage returns one page of the devices matching q, sorted as q says,
// with the total that match.
func (c *Client) DevicePage(ctx context.Context, q rest.DeviceQuery) (rest.DevicePage, error) {
	var p rest.DevicePage
	err := c.get(ctx, rest.Prefix+"/devices", q.Values(), &p)
	return p, err
}

// DeviceDetail returns one device with its status, job history and rollouts.
func (c *Client) DeviceDetail(ctx context.Context, id string) (rest.DeviceRow, error) {
	var d rest.DeviceRow
	err := c.get(ctx, rest.Prefix+"/devices/"+esc(id), nil, &d)
	return d, err
}

// DeviceJobs returns a device's recent job history, newest first.
func (c *Client) DeviceJobs(ctx context.Context, id string) (rest.DeviceJobs, error) {
	var j rest.DeviceJobs
	err := c.get(ctx, rest.Prefix+"/devices/"+esc(id)+"/jobs", nil, &j)
	return j, err
}

// DeleteDevice decommissions a device: the registry forgets it, and purge
// deletes its detections too. A device that connects again reappears.
func (c *Client) DeleteDevice(ctx context.Context, id string, purge bool) (rest.Decommissioned, error) {
	var q url.Values
	if purge {
		q = url.Values{"purge": {"true"}}
	}
	var d rest.Decommissioned
	err := c.call(ctx, c.short, http.MethodDelete, rest.Prefix+"/devices/"+esc(id), q, nil, &d)
	return d, err
}
