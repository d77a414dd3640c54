package client

import (
	"context"
	"io"
	"net/http"

	"edgefleet/fleet/api/rest"
)

// ExportCounts streams the line crossing counts of q as CSV
// (rest.CountCSVHeader first). Only ctx bounds it; the caller closes the reader.
func (c *Client) ExportCounts(ctx context.Context, q rest.CountQuery) (io.ReadCloser, error) {
	v := q.Values()
	v.Set("format", "csv")
	resp, err := c.do(ctx, c.long, http.MethodGet, rest.Prefix+"/counts", v, "", nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}
