package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"edgefleet/fleet/api/rest"
)

func init() {
	commands["events list"] = command{"list analytics events (line crossings, zones, ended tracks), newest first", eventsList}
	commands["events snapshot"] = command{"save an event's picture (crop or thumbnail) to a file", eventsSnapshot}
	commands["counts"] = command{"count line crossings per time bucket, line, direction and label", countsShow}
}

// outputFlags choose between the table, --json and --format csv [-o FILE].
type outputFlags struct{ format, out string }

func (o *outputFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&o.format, "format", "table", "output format: table or csv (--json for JSON)")
	fs.StringVar(&o.out, "o", "", "with --format csv: write to this file instead of stdout")
}

// csv reports whether CSV was asked for, and refuses what does not go together.
func (o *outputFlags) csv(json bool) (bool, error) {
	switch {
	case o.format != "table" && o.format != "csv":
		return false, fmt.Errorf("%w: --format %q is not supported (table, csv)", errUsage, o.format)
	case o.format == "csv" && json:
		return false, fmt.Errorf("%w: --json and --format csv do not go together", errUsage)
	case o.out != "" && o.format != "csv":
		return false, fmt.Errorf("%w: -o needs --format csv", errUsage)
	}
	return o.format == "csv", nil
}

// export writes a CSV answer to stdout or -o FILE.
func (o *outputFlags) export(body io.ReadCloser, w io.Writer, what string) error {
	defer body.Close()
	rows, err := writeCSV(body, w, o.out)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if o.out != "" {
		fmt.Fprintf(os.Stderr, "wrote %d %s to %s\n", rows, what, o.out)
	}
	return nil
}

func eventsList(ctx context.Context, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("events list", flag.ContinueOnError)
	var cf clientFlags
	var ff filterFlags
	var of outputFlags
	cf.register(fs)
	ff.register(fs)
	of.register(fs)
	typ := fs.String("type", "", "event type: track_end, line_cross, zone_enter or zone_exit")
	line := fs.String("line", "", "line id (line_cross events)")
	zone := fs.String("zone", "", "zone id (zone events)")
	limit := fs.Int("limit", 50, "events to show (pages through the API as needed); --format csv exports every match")
	if _, err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	asCSV, err := of.csv(cf.json)
	if err != nil {
		return err
	}
	if *limit < 1 {
		return fmt.Errorf("%w: --limit must be at least 1", errUsage)
	}
	c, err := cf.newClient()
	if err != nil {
		return err
	}
	dq := ff.query()
	q := rest.EventQuery{Device: dq.Device, Camera: dq.Camera, Type: *typ, Label: dq.Label, Line: *line, Zone: *zone, From: dq.From, To: dq.To}
	if asCSV {
		ctx, cancel := cf.bound(ctx) // only ctx bounds an export
		defer cancel()
		body, err := c.ExportEvents(ctx, q)
		if err != nil {
			return err
		}
		return of.export(body, w, "events")
	}
	evs, err := collect(*limit, func(n int, cursor string) ([]rest.EventRecord, string, error) {
		q.Limit, q.Cursor = n, cursor
		p, err := c.Events(ctx, q)
		return p.Events, p.Next, err
	})
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(w, evs)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tDEVICE\tCAMERA\tSEQ\tTYPE\tLABEL\tSCORE\tDETAIL\tSNAPSHOT")
	for _, e := range evs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%.2f\t%s\t%s\n", time.UnixMicro(e.Time).Local().Format("2006-01-02 15:04:05.000"),
			e.Device, e.CameraID, e.Seq, e.Type, e.Label, e.Score, eventDetail(e), snapshotParts(e))
	}
	return tw.Flush()
}

// eventDetail says what an event is about: the line and direction, the
// zone and dwell, or the track's life.
func eventDetail(e rest.EventRecord) string {
	var parts []string
	if e.Line != nil {
		parts = append(parts, e.Line.Line+" "+e.Line.Direction)
	}
	if e.Zone != nil {
		parts = append(parts, fmt.Sprintf("%s %.1fs", e.Zone.Zone, float64(e.Zone.DwellMs)/1000))
	}
	if t := e.Track; t != nil {
		s := "track " + strconv.FormatUint(t.ID, 10)
		if t.Frames > 0 {
			s += fmt.Sprintf(", %d frames, %.1fs", t.Frames, float64(t.LastUs-t.FirstUs)/1e6)
		}
		parts = append(parts, s)
	}
	if len(parts) == 0 {
		return "–"
	}
	return strings.Join(parts, "; ")
}

func snapshotParts(e rest.EventRecord) string {
	switch {
	case e.Crop && e.Thumb:
		return rest.PartCrop + "," + rest.PartThumb
	case e.Crop:
		return rest.PartCrop
	case e.Thumb:
		return rest.PartThumb
	}
	return "–"
}

func eventsSnapshot(ctx context.Context, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("events snapshot", flag.ContinueOnError)
	var cf clientFlags
	cf.registerConn(fs) // a picture: no --json
	part := fs.String("part", rest.PartCrop, "which picture: crop (the object) or thumb (the whole frame, box drawn)")
	out := fs.String("o", "", "write the JPEG to this file (- for stdout); required")
	pos, err := parseFlags(fs, args, 2)
	if err != nil {
		return err
	}
	seq, err := strconv.ParseUint(pos[1], 10, 64)
	if err != nil {
		return fmt.Errorf("%w: SEQ %q is not an event's sequence number", errUsage, pos[1])
	}
	if *part != rest.PartCrop && *part != rest.PartThumb {
		return fmt.Errorf("%w: --part %q is neither crop nor thumb", errUsage, *part)
	}
	if *out == "" {
		return fmt.Errorf("%w: -o FILE is required (- for stdout)", errUsage)
	}
	c, err := cf.newClient()
	if err != nil {
		return err
	}
	b, err := c.EventSnapshot(ctx, pos[0], seq, *part)
	if err != nil {
		return err
	}
	if *out == "-" {
		_, err = w.Write(b)
		return err
	}
	if err := os.WriteFile(*out, b, 0o644); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	fmt.Fprintf(os.Stderr, "wrote the %s of %s/%d (%d bytes) to %s\n", *part, pos[0], seq, len(b), *out)
	return nil
}

func countsShow(ctx context.Context, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("counts", flag.ContinueOnError)
	var cf clientFlags
	var of outputFlags
	var q rest.CountQuery
	cf.register(fs)
	of.register(fs)
	fs.StringVar(&q.Device, "device", "", "device id")
	fs.StringVar(&q.Camera, "camera", "", "camera id")
	fs.StringVar(&q.Line, "line", "", "line id")
	fs.StringVar(&q.From, "from", "", "start: RFC 3339, unix ms, or -duration like -24h")
	fs.StringVar(&q.To, "to", "", "end (exclusive), same forms")
	fs.StringVar(&q.Bucket, "bucket", "1h", "bucket width")
	if _, err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	asCSV, err := of.csv(cf.json)
	if err != nil {
		return err
	}
	c, err := cf.newClient()
	if err != nil {
		return err
	}
	if asCSV {
		ctx, cancel := cf.bound(ctx)
		defer cancel()
		body, err := c.ExportCounts(ctx, q)
		if err != nil {
			return err
		}
		return of.export(body, w, "count rows")
	}
	p, err := c.Counts(ctx, q)
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(w, p)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "BUCKET START\tLINE\tDIRECTION\tLABEL\tCOUNT")
	for _, r := range p.Rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", r.Start.Local().Format(time.DateTime), r.Line, r.Direction, r.Label, r.Count)
	}
	fmt.Fprintf(tw, "TOTAL\t\t\t\t%d\n", p.Total)
	return tw.Flush()
}
