package client

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"edgefleet/fleet/api/rest"
)

func detectionValues(dq rest.DetectionQuery) url.Values {
	q := url.Values{}
	setIf(q, "device", dq.Device)
	setIf(q, "camera", dq.Camera)
	setIf(q, "label", dq.Label)
	setIf(q, "from", dq.From)
	setIf(q, "to", dq.To)
	setIf(q, "cursor", dq.Cursor)
	if dq.Limit > 0 {
		q.Set("limit", strconv.Itoa(dq.Limit))
	}
	return q
}

// Detections returns one page of detections, newest first; pass
// Page.Next as dq.Cursor for the next.
func (c *Client) Detections(ctx context.Context, dq rest.DetectionQuery) (rest.Page, error) {
	var p rest.Page
	err := c.get(ctx, rest.Prefix+"/detections", detectionValues(dq), &p)
	return p, err
}

// CountDetections counts detections in buckets of a width ("1m", "1h"; ""
// means 1m). dq.Limit and dq.Cursor are ignored.
func (c *Client) CountDetections(ctx context.Context, dq rest.DetectionQuery, bucket string) (rest.Counts, error) {
	q := detectionValues(dq)
	q.Del("limit")
	q.Del("cursor")
	setIf(q, "bucket", bucket)
	var n rest.Counts
	err := c.get(ctx, rest.Prefix+"/detections/count", q, &n)
	return n, err
}

// Export streams the detections matching dq as CSV (rest.CSVHeader first).
// Only ctx bounds it; the caller closes the reader.
func (c *Client) Export(ctx context.Context, dq rest.DetectionQuery) (io.ReadCloser, error) {
	return c.csvStream(ctx, rest.Prefix+"/detections/export", detectionValues(dq))
}

// csvStream GETs path with q (less limit and cursor) as CSV and returns the body.
func (c *Client) csvStream(ctx context.Context, path string, q url.Values) (io.ReadCloser, error) {
	q.Del("limit")
	q.Del("cursor")
	q.Set("format", "csv")
	resp, err := c.do(ctx, c.long, http.MethodGet, path, q, "", nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}
