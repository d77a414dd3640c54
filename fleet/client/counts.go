package client

import (
	"context"
	"io"

	"edgefleet/fleet/api/rest"
)

// ExportCounts streams the line crossing counts of q as CSV
// (rest.CountCSVHeader first). Only ctx bounds it; the caller closes the reader.
func (c *Client) ExportCounts(ctx context.Context, q rest.CountQuery) (io.ReadCloser, error) {
	return c.csvStream(ctx, rest.Prefix+"/counts", q.Values())
}
