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
	commands["devices list"] = command{"list devices (--site, --line, --online)", devicesList}
	commands["devices show"] = command{"show one device", devicesShow}
}

func devicesList(ctx context.Context, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("devices list", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	site := fs.String("site", "", "only this site label")
	line := fs.String("line", "", "only this line label")
	online := fs.String("online", "", "true or false")
	if _, err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	c, err := cf.newClient()
	if err != nil {
		return err
	}
	f := rest.DeviceFilter{Site: *site, Line: *line}
	if *online != "" {
		b, err := strconv.ParseBool(*online)
		if err != nil {
			return fmt.Errorf("%w: --online %q is not true or false", errUsage, *online)
		}
		f.Online = &b
	}
	devs, err := c.Devices(ctx, f)
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(w, devs)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSITE\tLINE\tSTATUS\tMODEL\tENGINE\tAGENT\tDET/MIN\tLAST SEEN\tHEALTH")
	for _, d := range devs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.0f\t%s\t%s\n", d.ID, dash(d.Labels["site"]), dash(d.Labels["line"]), status(d.Online),
			dash(strings.TrimSpace(d.Model+" "+d.ModelVersion)), dash(d.Engine), dash(d.AgentVersion), d.DetectionsPerMin, ago(d.LastSeen), health(d.Health))
	}
	return tw.Flush()
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
