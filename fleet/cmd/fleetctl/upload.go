package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"edgefleet/fleet/api/rest"
	"edgefleet/fleet/client"
)

// upload streams a file to fleetd as a model or an agent bundle, with a
// progress bar on a terminal for large files. Only ctx (Ctrl-C) bounds it,
// unless --timeout was given.
func upload(ctx context.Context, c *client.Client, cf *clientFlags, kind string, u rest.Upload, f *os.File, label string, quiet bool) (rest.Model, error) {
	fi, err := f.Stat()
	if err != nil {
		return rest.Model{}, err
	}
	var src io.Reader = f
	var bar *progress
	if !quiet && !cf.json && fi.Size() > 1<<20 && isTerminal(os.Stderr) {
		bar = &progress{r: f, w: os.Stderr, label: label, total: fi.Size()}
		src = bar
	}
	m, err := c.Push(ctx, kind, u, filepath.Base(f.Name()), src)
	if bar != nil {
		fmt.Fprintln(os.Stderr)
	}
	return m, err
}
