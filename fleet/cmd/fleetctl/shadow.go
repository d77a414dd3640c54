package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"edgefleet/fleet/api"
	"edgefleet/fleet/api/rest"
	"edgefleet/fleet/client"
)

// shadowLine describes a rollout's shadow phase ("" without one).
func shadowLine(sp *api.ShadowSpec) string {
	if sp == nil {
		return ""
	}
	d := time.Duration(sp.DurationS * float64(time.Second))
	out := fmt.Sprintf(", shadow %s, min agreement %g", d, sp.MinAgreement)
	if sp.SampleEvery > 1 {
		out += fmt.Sprintf(", 1/%d of frames", sp.SampleEvery)
	}
	cpu := sp.CPUPercent
	if cpu == 0 {
		cpu = 25
	}
	return out + fmt.Sprintf(", %d%% of a core", cpu)
}

// waveShadow is the SHADOW cell of a wave's row ("" without a shadow phase).
func waveShadow(sp *api.ShadowSpec, p rest.WaveProgress) string {
	if sp == nil {
		return ""
	}
	if p.ShadowPassed+p.ShadowFailed+p.ShadowAccepted == 0 {
		return "\t-"
	}
	return fmt.Sprintf("\t%d passed, %d failed, %d accepted; mean agreement %.3f", p.ShadowPassed, p.ShadowFailed, p.ShadowAccepted, p.ShadowAgreement)
}

// showShadow prints each device's shadow phase in a rollout, and writes
// its disagreement samples into dir unless dir is "".
func showShadow(ctx context.Context, c *client.Client, id string, asJSON bool, dir string, w io.Writer) error {
	v, err := c.RolloutShadow(ctx, id)
	if err != nil {
		return err
	}
	if dir != "" {
		if err := saveSamples(ctx, c, v, dir); err != nil {
			return err
		}
	}
	if asJSON {
		return printJSON(w, v)
	}
	fmt.Fprintf(w, "rollout %s%s\n\n", v.ID, shadowLine(v.Spec))
	if len(v.Devices) == 0 {
		fmt.Fprintln(w, "no shadow report yet")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tOUTCOME\tAGREEMENT\tPRECISION\tRECALL\tF1\tCOUNT RATIO\tSCORE SHIFT\tLATENCY RATIO\tFRAMES\tTOP CONFUSIONS")
	for _, d := range v.Devices {
		rep := d.Final
		if rep == nil {
			rep = d.Latest
		}
		outcome := rest.ShadowRunning
		if d.Shadow != nil {
			outcome = d.Shadow.Outcome()
			if outcome == rest.ShadowAccepted {
				outcome = "accepted (" + d.Shadow.AcceptedBy + ")"
			}
		}
		if rep == nil {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\t-\t-\t-\t-\n", d.DeviceID, outcome)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%.3f\t%.3f\t%.3f\t%.3f\t%.2f\t%+.3f\t%.2f\t%d\t%s\n", d.DeviceID, outcome, rep.Agreement, rep.Precision,
			rep.Recall, rep.F1, rep.CountRatio, rep.ScoreShift, rep.LatencyRatio, rep.Frames, topConfusions(rep.Confusion, 3))
	}
	return tw.Flush()
}

// saveSamples writes every device's samples as dir/<device>-<n>.jpg.
func saveSamples(ctx context.Context, c *client.Client, v rest.RolloutShadow, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, d := range v.Devices {
		for n := range d.SampleURLs {
			b, err := c.ShadowSample(ctx, v.ID, d.DeviceID, n)
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%d.jpg", d.DeviceID, n)), b, 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

// topConfusions prints the n most frequent pairs as "serving->candidate ×count".
func topConfusions(cs []api.ShadowConfusion, n int) string {
	cs = slices.Clone(cs)
	slices.SortStableFunc(cs, func(a, b api.ShadowConfusion) int { return b.Count - a.Count })
	var parts []string
	for _, c := range cs[:min(n, len(cs))] {
		parts = append(parts, fmt.Sprintf("%s->%s x%d", c.Serving, c.Candidate, c.Count))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

func rolloutsAccept(ctx context.Context, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("rollouts accept", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	device := fs.String("device", "", "the device whose failed shadow phase to accept")
	reason := fs.String("reason", "", "why, for the record")
	pos, err := parseFlags(fs, args, 1)
	if err != nil {
		return err
	}
	if *device == "" {
		return fmt.Errorf("%w: rollouts accept needs --device ID", errUsage)
	}
	c, err := cf.newClient()
	if err != nil {
		return err
	}
	a, err := c.AcceptShadow(ctx, pos[0], *device, *reason)
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(w, a)
	}
	fmt.Fprintf(w, "rollout %s: %s accepted; it gets %s@%s without a shadow phase (%s, %d failed)\n", a.ID, a.Device, a.Name, a.Version, waveName(a.RolloutSummary), a.Failed)
	return nil
}
