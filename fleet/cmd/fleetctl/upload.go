package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"

	"edgefleet/fleet/server"
)

// upload streams a multipart form to fleetd: the fields first, then the
// file, with a progress bar on a terminal for large files. Uploads may take
// long on slow links: only ctx (Ctrl-C) bounds them, unless --timeout was
// given on fs.
func upload(ctx context.Context, c *client, cf *clientFlags, fs *flag.FlagSet, path string, fields [][2]string, f *os.File, label string, quiet bool) (server.ModelView, error) {
	var mv server.ModelView
	fi, err := f.Stat()
	if err != nil {
		return mv, err
	}
	var src io.Reader = f
	var bar *progress
	if !quiet && !cf.json && fi.Size() > 1<<20 && isTerminal(os.Stderr) {
		bar = &progress{r: f, w: os.Stderr, label: label, total: fi.Size()}
		src = bar
	}
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		err := func() error {
			for _, kv := range fields {
				if err := mw.WriteField(kv[0], kv[1]); err != nil {
					return err
				}
			}
			part, err := mw.CreateFormFile("file", filepath.Base(f.Name()))
			if err != nil {
				return err
			}
			if _, err := io.Copy(part, src); err != nil {
				return err
			}
			return mw.Close()
		}()
		pw.CloseWithError(err)
	}()
	hc := &http.Client{}
	fs.Visit(func(fl *flag.Flag) {
		if fl.Name == "timeout" {
			hc.Timeout = cf.timeout
		}
	})
	err = c.send(ctx, hc, "POST", path, mw.FormDataContentType(), pr, &mv)
	if bar != nil {
		fmt.Fprintln(os.Stderr)
	}
	return mv, err
}
