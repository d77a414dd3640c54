package client

import (
	"context"
	"fmt"
	"io"
	"net/url"

	"edgefleet/fleet/api"
)

// Snapshot fetches the newest frame of a device's camera as a JPEG
// (GET /api/v1/devices/{id}/cameras/{camera}/snapshot): fleetd asks the
// device over MQTT and waits up to 5 s. A 404 (unknown device or camera),
// 504 (offline, or no answer) or 502 (device error) is an *Error.
func (c *Client) Snapshot(ctx context.Context, device, camera string) ([]byte, error) {
	path := "/api/v1/devices/" + esc(device) + "/cameras/" + esc(camera) + "/snapshot"
	return c.getJPEG(ctx, path, nil)
}

// getJPEG reads a JPEG answer of at most api.MaxPayload bytes.
func (c *Client) getJPEG(ctx context.Context, path string, q url.Values) ([]byte, error) {
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
		return nil, fmt.Errorf("client: GET %s: snapshot larger than %d bytes", path, api.MaxPayload)
	}
	return b, nil
}
