package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"edgefleet/fleet/api/rest"
)

func init() {
	commands["devices list"] = command{"list devices (--q, --site, --line, --status, --health, --model, --version, --sort, --limit, --offset)", devicesList}
	commands["devices show"] = command{"show one device", devicesShow}
	commands["devices delete"] = command{"decommission a device: the registry forgets it (--purge: its detections too)", devicesDelete}
}

func devicesList(ctx context.Context, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("devices list", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	var q rest.DeviceQuery
	fs.StringVar(&q.Q, "q", "", "search: part of the id or of a label value")
	fs.StringVar(&q.Site, "site", "", "only this site label")
	fs.StringVar(&q.Line, "line", "", "only this line label")
	fs.StringVar(&q.Status, "status", "", "online, offline or never (provisioned, never connected)")
	fs.StringVar(&q.Health, "health", "", "ok, unhealthy or a flag (e.g. camera_down)")
	fs.StringVar(&q.Model, "model", "", "only devices running this model")
	fs.StringVar(&q.Version, "version", "", "only devices running this model version")
	fs.StringVar(&q.Sort, "sort", "", "sort key: "+strings.Join(rest.DeviceSorts, ", ")+" (-key descending)")
	fs.IntVar(&q.Limit, "limit", 0, fmt.Sprintf("at most this many (1..%d; 0: all)", rest.MaxDeviceLimit))
	fs.IntVar(&q.Offset, "offset", 0, "skip this many")
	online := fs.String("online", "", "true or false (old form of --status)")
	if _, err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	c, err := cf.newClient()
	if err != nil {
		return err
	}
	if *online != "" {
		b, err := strconv.ParseBool(*online)
		if err != nil {
			return fmt.Errorf("%w: --online %q is not true or false", errUsage, *online)
		}
		q.Status = map[bool]string{true: rest.StatusOnline, false: rest.StatusOffline}[b]
	}
	p, err := c.DevicePage(ctx, q)
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(w, p.Devices)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSITE\tLINE\tSTATUS\tMODEL\tENGINE\tAGENT\tDET/MIN\tLAST SEEN\tHEALTH")
	for _, d := range p.Devices {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.0f\t%s\t%s\n", d.ID, dash(d.Labels["site"]), dash(d.Labels["line"]), dash(d.Status),
			dash(strings.TrimSpace(d.Model+" "+d.ModelVersion)), dash(d.Engine), dash(d.AgentVersion), d.DetectionsPerMin, ago(d.LastSeen), health(d.Health))
	}
	if len(p.Devices) < p.Total {
		fmt.Fprintf(tw, "(%d-%d of %d)\n", p.Offset+1, p.Offset+len(p.Devices), p.Total)
	}
	return tw.Flush()
}

func devicesDelete(ctx context.Context, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("devices delete", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	purge := fs.Bool("purge", false, "delete the device's detections too")
	pos, err := parseFlags(fs, args, 1)
	if err != nil {
		return err
	}
	c, err := cf.newClient()
	if err != nil {
		return err
	}
	d, err := c.DeleteDevice(ctx, pos[0], *purge)
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(w, d)
	}
	if d.Purge {
		fmt.Fprintf(w, "%s decommissioned, %d detections deleted\n", d.Deleted, d.Purged)
	} else {
		fmt.Fprintf(w, "%s decommissioned (its detections stay; --purge deletes them); it reappears if it connects again\n", d.Deleted)
	}
	return nil
}

func devicesShow(ctx context.Context, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("devices show", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	pos, err := parseFlags(fs, args, 1)
	if err != nil {
		return err
	}
	c, err := cf.newClient()
	if err != nil {
		return err
	}
	d, err := c.Device(ctx, pos[0])
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(w, d)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("ID", d.ID)
	row("Status", status(d.Online))
	labels := make([]string, 0, len(d.Labels))
	for k, v := range d.Labels {
		labels = append(labels, k+"="+v)
	}
	sort.Strings(labels)
	row("Labels", dash(strings.Join(labels, " ")))
	row("Agent", dash(d.AgentVersion))
	row("Model", dash(strings.TrimSpace(d.Model+" "+d.ModelVersion)))
	row("Engine", dash(strings.TrimSpace(d.Engine+" "+d.Delegate)))
	row("Cameras", dash(strings.Join(d.Cameras, ", ")))
	row("First seen", d.FirstSeen.Local().Format(time.DateTime))
	row("Last seen", ago(d.LastSeen))
	row("Detections", fmt.Sprintf("%d (%.0f/min)", d.Detections, d.DetectionsPerMin))
	row("Health", health(d.Health))
	if t := d.Telemetry; t != nil {
		row("Telemetry", fmt.Sprintf("%s: inference p50 %.1f ms p99 %.1f ms, spool %d (oldest %.0fs), disk free %d MB",
			ago(d.TelemetryAt), t.InferP50Ms, t.InferP99Ms, t.SpoolDepth, t.SpoolOldestS, t.DiskFreeBytes>>20))
		for _, cam := range t.Cameras {
			st := "up"
			if !cam.Up {
				st = "DOWN " + cam.Error
			}
			row("  camera "+cam.ID, fmt.Sprintf("%s, %.1f fps, %d dropped", st, cam.FPS, cam.Dropped))
		}
	}
	if j := d.LastJob; j != nil {
		row("Last job", fmt.Sprintf("%s %s %s", j.JobID, j.State, j.Reason))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func status(on bool) string {
	if on {
		return "online"
	}
	return "offline"
}

func health(flags []string) string {
	if len(flags) == 0 {
		return "ok"
	}
	return strings.Join(flags, ",")
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return time.Since(t).Round(time.Second).String() + " ago"
}
