package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"edgefleet/fleet/api"
	"edgefleet/fleet/api/rest"
)

// Events returns one page of analytics events (track_end, line_cross,
// zone_enter, zone_exit), newest first; pass EventPage.Next as q.Cursor
// for the next (older) page.
func (c *Client) Events(ctx context.Context, q rest.EventQuery) (rest.EventPage, error) {
	var p rest.EventPage
	err := c.get(ctx, rest.Prefix+"/events", q.Values(), &p)
	return p, err
}

// EventsCSV streams the events matching q as CSV (rest.EventCSVHeader
// first); q.Cursor is ignored, q.Limit caps the rows when set. Only ctx
// bounds it; the caller closes the reader.
func (c *Client) EventsCSV(ctx context.Context, q rest.EventQuery) (io.ReadCloser, error) {
	q.Cursor = ""
	return c.csv(ctx, rest.Prefix+"/events", q.Values())
}

// Counts returns the line crossings matching q per bucket, line,
// direction and label.
func (c *Client) Counts(ctx context.Context, q rest.CountQuery) (rest.CountPage, error) {
	var p rest.CountPage
	err := c.get(ctx, rest.Prefix+"/counts", q.Values(), &p)
	return p, err
}

// CountsCSV streams the counts of q as CSV (rest.CountCSVHeader first).
// Only ctx bounds it; the caller closes the reader.
func (c *Client) CountsCSV(ctx context.Context, q rest.CountQuery) (io.ReadCloser, error) {
	return c.csv(ctx, rest.Prefix+"/counts", q.Values())
}

// EventSnapshot returns an event's JPEG: part rest.PartCrop (the object)
// or rest.PartThumb (the whole frame, box drawn). A 404 *Error means the
// event has no such picture, or it expired.
func (c *Client) EventSnapshot(ctx context.Context, device string, seq uint64, part string) ([]byte, error) {
	if part != rest.PartCrop && part != rest.PartThumb {
		return nil, fmt.Errorf("client: snapshot part %q is neither %q nor %q", part, rest.PartCrop, rest.PartThumb)
	}
	path := rest.Prefix + "/events/" + esc(device) + "/" + strconv.FormatUint(seq, 10) + "/snapshot"
	return c.getBytes(ctx, path, url.Values{"part": {part}}, api.MaxEventSnapshot)
}

// csv GETs path with format=csv and returns the body unread, over the
// client without a timeout (ctx bounds it).
func (c *Client) csv(ctx context.Context, path string, q url.Values) (io.ReadCloser, error) {
	q.Set("format", "csv")
	resp, err := c.do(ctx, c.long, http.MethodGet, path, q, "", nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}
