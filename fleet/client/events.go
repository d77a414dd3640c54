package client

import (
	"context"
	"io"
	"net/url"
	"strconv"

	"edgefleet/fleet/api/rest"
)

// Events returns one page of analytics events, newest first
// (GET /api/v1/events); pass EventPage.Next as q.Cursor for the next.
func (c *Client) Events(ctx context.Context, q rest.EventQuery) (rest.EventPage, error) {
	var p rest.EventPage
	err := c.get(ctx, rest.Prefix+"/events", q.Values(), &p)
	return p, err
}

// ExportEvents streams the analytics events matching q as CSV
// (rest.EventCSVHeader first). Only ctx bounds it; the caller closes the reader.
func (c *Client) ExportEvents(ctx context.Context, q rest.EventQuery) (io.ReadCloser, error) {
	return c.csvStream(ctx, rest.Prefix+"/events", q.Values())
}

// Counts returns line crossings per bucket, line, direction and label
// (GET /api/v1/counts).
func (c *Client) Counts(ctx context.Context, q rest.CountQuery) (rest.CountPage, error) {
	var p rest.CountPage
	err := c.get(ctx, rest.Prefix+"/counts", q.Values(), &p)
	return p, err
}

// EventSnapshot fetches one part (rest.PartCrop or rest.PartThumb) of an
// analytics event's snapshot as a JPEG; a 404 (none sent, or expired) is an *Error.
func (c *Client) EventSnapshot(ctx context.Context, device string, seq uint64, part string) ([]byte, error) {
	path := rest.Prefix + "/events/" + esc(device) + "/" + strconv.FormatUint(seq, 10) + "/snapshot"
	return c.getJPEG(ctx, path, url.Values{"part": {part}}, "event snapshot")
}
