package client

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strconv"

	"edgefleet/fleet/api"
	"edgefleet/fleet/api/rest"
)

// Snapshot fetches the newest frame of a device's camera as a JPEG
// (GET /api/v1/devices/{id}/cameras/{camera}/snapshot): fleetd asks the
// device over MQTT and waits up to 5 s. A 404 (unknown device or camera),
// 504 (offline, or no answer) or 502 (device error) is an *Error.
func (c *Client) Snapshot(ctx context.Context, device, camera string) ([]byte, error) {
	return c.getJPEG(ctx, "/api/v1/devices/"+esc(device)+"/cameras/"+esc(camera)+"/snapshot", nil, "snapshot")
}

// ShadowSample fetches disagreement sample n of a device's final shadow
// report in a rollout, a JPEG (GET /api/v1/rollouts/{id}/devices/{device}/shadow/samples/{n}).
func (c *Client) ShadowSample(ctx context.Context, id, device string, n int) ([]byte, error) {
	return c.getJPEG(ctx, rest.Prefix+"/rollouts/"+esc(id)+"/devices/"+esc(device)+"/shadow/samples/"+strconv.Itoa(n), nil, "shadow sample")
}

// getJPEG reads an image answer of at most api.MaxPayload bytes; what names
// it in errors.
func (c *Client) getJPEG(ctx context.Context, path string, q url.Values, what string) ([]byte, error) {
	resp, err := c.do(ctx, c.short, "GET", path, q, "", nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, api.MaxPayload+1))
	if err != nil {
		return nil, fmt.Errorf("client: GET %s: %w", path, err)
	}
	if len(b) > api.MaxPayload {
		return nil, fmt.Errorf("client: GET %s: %s larger than %d bytes", path, what, api.MaxPayload)
	}
	return b, nil
}
