package main

import (
	"context"
	"encoding/csv"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"edgefleet/fleet/api/rest"
)

func init() {
	commands["detections query"] = command{"list detections, newest first", detectionsQuery}
	commands["detections count"] = command{"count detections per time bucket", detectionsCount}
	commands["detections export"] = command{"export detections (--format csv)", detectionsExport}
}

type filterFlags struct{ device, camera, label, from, to string }

func (f *filterFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.device, "device", "", "device id")
	fs.StringVar(&f.camera, "camera", "", "camera id")
	fs.StringVar(&f.label, "label", "", "class label, any case (model labels are lower case: person, forklift)")
	fs.StringVar(&f.from, "from", "", "start: RFC 3339, unix ms, or -duration like -1h")
	fs.StringVar(&f.to, "to", "", "end (exclusive), same forms")
}

func (f *filterFlags) query() rest.DetectionQuery {
	// fleetd matches labels exactly and they are lower case (COCO names):
	// "--label Person" must not silently match nothing.
	return rest.DetectionQuery{Device: f.device, Camera: f.camera, Label: strings.ToLower(f.label), From: f.from, To: f.to}
}

func detectionsQuery(ctx context.Context, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("detections query", flag.ContinueOnError)
	var cf clientFlags
	var ff filterFlags
	cf.register(fs)
	ff.register(fs)
	limit := fs.Int("limit", 50, "records to show (pages through the API as needed)")
	if _, err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	if *limit < 1 {
		return fmt.Errorf("%w: --limit must be at least 1", errUsage)
	}
	c, err := cf.newClient()
	if err != nil {
		return err
	}
	q := ff.query()
	recs, err := collect(*limit, func(n int, cursor string) ([]rest.Record, string, error) {
		q.Limit, q.Cursor = n, cursor
		p, err := c.Detections(ctx, q)
		return p.Records, p.Next, err
	})
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(w, recs)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tDEVICE\tCAMERA\tSEQ\tLABEL\tSCORE\tBOX")
	for _, r := range recs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%.2f\t%.0f,%.0f,%.0f,%.0f\n", time.UnixMicro(r.Time).Local().Format("2006-01-02 15:04:05.000"),
			r.Device, r.CameraID, r.Seq, r.Label, r.Score, r.Box[0], r.Box[1], r.Box[2], r.Box[3])
	}
	return tw.Flush()
}

func detectionsCount(ctx context.Context, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("detections count", flag.ContinueOnError)
	var cf clientFlags
	var ff filterFlags
	cf.register(fs)
	ff.register(fs)
	bucket := fs.String("bucket", "1m", "bucket width")
	if _, err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	c, err := cf.newClient()
	if err != nil {
		return err
	}
	out, err := c.CountDetections(ctx, ff.query(), *bucket)
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(w, out)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "BUCKET START\tCOUNT")
	for _, b := range out.Buckets {
		fmt.Fprintf(tw, "%s\t%d\n", b.Start.Local().Format(time.DateTime), b.Count)
	}
	fmt.Fprintf(tw, "TOTAL\t%d\n", out.Total)
	return tw.Flush()
}

func detectionsExport(ctx context.Context, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("detections export", flag.ContinueOnError)
	var cf clientFlags
	var ff filterFlags
	cf.registerConn(fs) // CSV only: no --json
	ff.register(fs)
	format := fs.String("format", "csv", "output format: csv")
	out := fs.String("o", "", "write to this file instead of stdout")
	if _, err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	if *format != "csv" {
		return fmt.Errorf("%w: --format %q is not supported (csv)", errUsage, *format)
	}
	c, err := cf.newClient()
	if err != nil {
		return err
	}
	ctx, cancel := cf.bound(ctx) // only ctx bounds an export
	defer cancel()
	body, err := c.Export(ctx, ff.query())
	if err != nil {
		return err
	}
	defer body.Close()
	rows, err := writeCSV(body, w, *out)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if *out != "" {
		fmt.Fprintf(os.Stderr, "wrote %d detections to %s\n", rows, *out)
	}
	return nil
}

// collect pages through a list route, newest first, until it has limit
// items or the list ends; page fetches up to n items from cursor and
// returns them with the next cursor. The result is never nil (JSON []).
func collect[T any](limit int, page func(n int, cursor string) ([]T, string, error)) ([]T, error) {
	out, cursor := []T{}, ""
	for len(out) < limit {
		items, next, err := page(min(limit-len(out), rest.MaxLimit), cursor)
		if err != nil {
			return nil, err
		}
		out = append(out, items...)
		if next == "" {
			break
		}
		cursor = next
	}
	return out, nil
}

// writeCSV copies a CSV answer to w, or to the file out when set, and
// returns its rows after the header. It parses the CSV on the way
// through, so a cut-off transfer is an error.
func writeCSV(body io.Reader, w io.Writer, out string) (int, error) {
	dst := w
	if out != "" {
		f, err := os.Create(out)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		dst = f
	}
	r := csv.NewReader(io.TeeReader(body, dst))
	rows := 0
	for {
		_, err := r.Read()
		if err == io.EOF {
			return max(rows-1, 0), nil
		}
		if err != nil {
			return max(rows-1, 0), fmt.Errorf("after %d rows: %w", rows, err)
		}
		rows++
	}
}
