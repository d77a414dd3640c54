package client

import (
	"context"
	"net/http"

	"edgefleet/fleet/api/rest"
)

// AddDevice registers a device for enrollment and returns its one-time
// enrollment token. Adding a device again makes a new token (the old one
// stops working) and replaces its labels.
func (c *Client) AddDevice(ctx context.Context, id string, labels map[string]string) (rest.DeviceAdded, error) {
	var out rest.DeviceAdded
	err := c.call(ctx, c.short, http.MethodPost, rest.Prefix+"/devices", nil, rest.DeviceAdd{ID: id, Labels: labels}, &out)
	return out, err
}

// RevokeDevice revokes a device for good: its certificate and tokens stop
// working, the broker drops its session, and its downloads are refused.
func (c *Client) RevokeDevice(ctx context.Context, id string) (rest.DeviceRevoked, error) {
	var out rest.DeviceRevoked
	err := c.call(ctx, c.short, http.MethodPost, rest.Prefix+"/devices/"+esc(id)+"/revoke", nil, nil, &out)
	return out, err
}
