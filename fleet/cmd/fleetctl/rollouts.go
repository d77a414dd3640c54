package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"edgefleet/fleet/api/rest"
)

func init() {
	commands["rollouts create"] = command{"start a rollout: --model N@V --selector k=v,... --canary 2 --waves 10%,50%,100% --max-failures 5% --max-failure-rate 5% --min-executions 20 --rollback-on-abort=false --health-window 2m [--shadow 10m --min-agreement 0.9 --shadow-sample 1/4 --shadow-cpu 25%]", rolloutsCreate}
	commands["rollouts list"] = command{"list rollouts", rolloutsList}
	commands["rollouts show"] = command{"show a rollout's progress per wave and per device [--shadow: each device's shadow phase]", rolloutsShow}
	commands["rollouts accept"] = command{"accept a device's failed shadow phase: --device ID [--reason R]; it gets the update without one", rolloutsAccept}
	commands["rollouts pause"] = command{"pause a rollout (jobs in flight continue)", rolloutAction("pause")}
	commands["rollouts resume"] = command{"resume a paused rollout", rolloutAction("resume")}
	commands["rollouts abort"] = command{"abort a rollout; its devices go back as --rollback-on-abort said [--reason R]", rolloutAction("abort")}
	commands["rollouts rollback"] = command{"send every device of a rollout back to its previous version", rolloutAction("rollback")}
}

func rolloutsCreate(ctx context.Context, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("rollouts create", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	var req rest.CreateRollout
	fs.StringVar(&req.Model, "model", "", "model NAME@VERSION")
	fs.StringVar(&req.Firmware, "firmware", "", "agent bundle NAME@VERSION, instead of --model")
	fs.StringVar(&req.Selector, "selector", "", "device labels, e.g. site=plant-a,line=3 (default: all devices)")
	fs.IntVar(&req.Canary, "canary", 1, "devices in the canary wave")
	fs.StringVar(&req.Waves, "waves", "10%,50%,100%", "cumulative waves, percent of the targets")
	fs.StringVar(&req.MaxFailures, "max-failures", "5%", "abort once failures pass this count or percentage")
	fs.StringVar(&req.HealthWindow, "health-window", "", "how long a device watches the new model before it reports success (default: fleetd's ota.health_window, 2m)")
	fs.StringVar(&req.JobTimeout, "job-timeout", "", "a job unfinished this long after its wave started fails (default: fleetd's ota.job_timeout, 30m)")
	fs.Func("max-failure-rate", "stop a wave and abort once its failures pass this share of the wave, e.g. 5% or 0.05 (default: off)", func(s string) error {
		r, err := rest.ParseRate(s)
		req.MaxFailureRate = r
		return err
	})
	fs.IntVar(&req.MinExecutions, "min-executions", 0, "ended jobs of a wave before their failure rate alone stops it")
	rollbackOnAbort := fs.Bool("rollback-on-abort", true, "on abort, send every device the rollout changed back (false: only the failed)")
	fs.StringVar(&req.Shadow, "shadow", "", "run the candidate beside the serving model this long (e.g. 10m) before each device swaps; needs --min-agreement")
	fs.Float64Var(&req.MinAgreement, "min-agreement", 0, "with --shadow: a device whose agreement (F1 with the serving model, 0..1) ends lower fails without swapping")
	fs.StringVar(&req.ShadowSample, "shadow-sample", "", "with --shadow: run the candidate on 1/N of the frames, e.g. 1/4 (default: every frame)")
	fs.StringVar(&req.ShadowCPU, "shadow-cpu", "", "with --shadow: cap the candidate at this share of one core, e.g. 25% (default 25%)")
	if _, err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	if !*rollbackOnAbort {
		req.RollbackOnAbort = rollbackOnAbort
	}
	if (req.Model == "") == (req.Firmware == "") {
		return fmt.Errorf("%w: rollouts create needs --model NAME@VERSION or --firmware NAME@VERSION", errUsage)
	}
	if _, _, err := splitNameVersion(req.Model + req.Firmware); err != nil {
		return err
	}
	// Check the flags here so a typo is a usage error, not a server round trip.
	if err := req.Check(); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	c, err := cf.newClient()
	if err != nil {
		return err
	}
	sum, err := c.CreateRollout(ctx, req)
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(w, sum)
	}
	fmt.Fprintf(w, "rollout %s: %s@%s to %d devices (%s), canary %d, waves %s, max failures %d%s%s\n",
		sum.ID, sum.Name, sum.Version, sum.Targets, dash(sum.Selector), req.Canary, req.Waves, sum.MaxFailures, safetyLine(sum), shadowLine(sum.Shadow))
	return nil
}

// safetyLine describes the failure-rate rule and what an abort does.
func safetyLine(sum rest.RolloutSummary) string {
	out := ""
	if sum.MaxFailureRate > 0 {
		out = fmt.Sprintf(", max failure rate %g%% per wave", 100*sum.MaxFailureRate)
		if sum.MinExecutions > 0 {
			out += fmt.Sprintf(" (or of %d+ ended jobs)", sum.MinExecutions)
		}
	}
	if sum.RollbackOnAbort {
		return out + ", abort rolls back every changed device"
	}
	return out + ", abort rolls back the failed devices"
}

func waveName(sum rest.RolloutSummary) string {
	switch sum.State {
	case rest.StateCanary:
		return "canary"
	case rest.StateWave:
		return fmt.Sprintf("wave %d/%d", sum.Wave, sum.Waves)
	}
	return string(sum.State)
}

func rolloutsList(ctx context.Context, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("rollouts list", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	if _, err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	c, err := cf.newClient()
	if err != nil {
		return err
	}
	list, err := c.Rollouts(ctx)
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(w, list)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	cancelled := false // the column only when a rollout stopped with jobs unsent
	for _, s := range list {
		cancelled = cancelled || s.Cancelled > 0
	}
	fmt.Fprintln(tw, "ID\tARTIFACT\tSELECTOR\tSTATE\tTARGETS\tSUCCEEDED\tFAILED"+map[bool]string{true: "\tCANCELLED"}[cancelled]+"\tCREATED")
	for _, s := range list {
		fmt.Fprintf(tw, "%s\t%s@%s\t%s\t%s\t%d\t%d\t%d/%d%s\t%s\n", s.ID, s.Name, s.Version, dash(s.Selector), waveName(s),
			s.Targets, s.Succeeded, s.Failed, s.MaxFailures, map[bool]string{true: fmt.Sprintf("\t%d", s.Cancelled)}[cancelled],
			s.CreatedAt.Local().Format(time.DateTime))
	}
	return tw.Flush()
}

func rolloutsShow(ctx context.Context, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("rollouts show", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	all := fs.Bool("all", false, "list every device (default: those not yet succeeded, and the first 20)")
	samples := fs.String("samples", "", "with --shadow: write each disagreement sample to DIR/<device>-<n>.jpg")
	shadow := fs.Bool("shadow", false, "show each device's shadow phase: agreement, precision, recall, F1, count ratio, score shift, latency ratio, frames, outcome, top confusions")
	pos, err := parseFlags(fs, args, 1)
	if err != nil {
		return err
	}
	c, err := cf.newClient()
	if err != nil {
		return err
	}
	if *shadow {
		return showShadow(ctx, c, pos[0], cf.json, *samples, w)
	}
	v, err := c.Rollout(ctx, pos[0])
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(w, v)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "Rollout\t%s\n", v.ID)
	fmt.Fprintf(tw, "Artifact\t%s %s@%s (%s)\n", v.Kind, v.Name, v.Version, v.SHA256)
	fmt.Fprintf(tw, "Selector\t%s\n", dash(v.Selector))
	fmt.Fprintf(tw, "State\t%s\n", waveName(v.RolloutSummary))
	if v.Reason != "" {
		fmt.Fprintf(tw, "Reason\t%s\n", v.Reason)
	}
	fmt.Fprintf(tw, "Devices\t%d: %d succeeded, %d failed (max %d), %d rolled back%s\n", v.Targets, v.Succeeded, v.Failed, v.MaxFailures, v.RolledBack,
		map[bool]string{true: fmt.Sprintf(", %d cancelled (never sent: the rollout stopped first)", v.Cancelled)}[v.Cancelled > 0])
	fmt.Fprintf(tw, "Job states\t%s\n", countsLine(v.States))
	if len(v.RollbackStates) > 0 {
		fmt.Fprintf(tw, "Rollback jobs\t%s\n", countsLine(v.RollbackStates))
	}
	fmt.Fprintf(tw, "Health window\t%s, job timeout %s\n", v.HealthWindow, v.JobTimeout)
	fmt.Fprintf(tw, "Safety\t%s\n", strings.TrimPrefix(safetyLine(v.RolloutSummary), ", "))
	if v.Shadow != nil {
		fmt.Fprintf(tw, "Shadow\t%s\n", strings.TrimPrefix(shadowLine(v.Shadow), ", "))
	}
	tw.Flush()
	if len(v.Transitions) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "TIME\tFROM -> TO\tBY\tREASON")
		for _, tr := range v.Transitions {
			fmt.Fprintf(tw, "%s\t%s -> %s\t%s\t%s\n", tr.At.Local().Format(time.DateTime), dash(tr.From), tr.To, dash(tr.By), dash(tr.Reason))
		}
		tw.Flush()
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	cancelled := v.Cancelled > 0 // the column only when the rollout stopped with jobs unsent
	fmt.Fprintln(tw, "WAVE\tDEVICES\tPENDING\tIN FLIGHT\tSUCCEEDED\tFAILED"+map[bool]string{true: "\tCANCELLED"}[cancelled]+
		map[bool]string{true: "\tSHADOW"}[v.Shadow != nil])
	for _, p := range v.Progress {
		name := "canary"
		if p.Wave > 0 {
			name = fmt.Sprintf("%d (%g%%)", p.Wave, v.WavePercents[p.Wave-1])
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d%s%s\n", name, p.Devices, p.Pending, p.InFlight, p.Succeeded, p.Failed,
			map[bool]string{true: fmt.Sprintf("\t%d", p.Cancelled)}[cancelled], waveShadow(v.Shadow, p))
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tWAVE\tJOB\tSTATE\tPREVIOUS\tROLLBACK\tREASON")
	shown, hidden := 0, 0
	for _, j := range v.Jobs {
		if !*all && (j.State == "succeeded" || j.State == "skipped") && shown >= 20 {
			hidden++
			continue
		}
		shown++
		state := j.State
		if j.State == "downloading" && j.Progress > 0 {
			state = fmt.Sprintf("downloading %.0f%%", 100*j.Progress)
		}
		reason := j.Reason
		if j.RollbackReason != "" {
			reason = strings.TrimSpace(reason + "; rollback: " + j.RollbackReason)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", j.DeviceID, j.Wave, j.JobID, state, dash(j.Previous), dash(j.Rollback), dash(reason))
	}
	tw.Flush()
	if hidden > 0 {
		fmt.Fprintf(w, "(%d more succeeded devices; --all lists them)\n", hidden)
	}
	return nil
}

// jobStateOrder is the order jobs pass through their states.
var jobStateOrder = []string{"pending", "dispatched", "queued", "downloading", "verifying", "shadow", "installing", "health_check",
	"succeeded", "skipped", "failed", "rolled_back", "timed_out", "cancelled"}

// countsLine prints job counts by state in jobStateOrder, e.g. "downloading 3, succeeded 40".
func countsLine(m map[string]int) string {
	var parts []string
	for _, s := range jobStateOrder {
		if m[s] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", s, m[s]))
		}
	}
	for s, n := range m {
		if !slices.Contains(jobStateOrder, s) && n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", s, n))
		}
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

func rolloutAction(action string) func(context.Context, []string, io.Writer) error {
	return func(ctx context.Context, args []string, w io.Writer) error {
		fs := flag.NewFlagSet("rollouts "+action, flag.ContinueOnError)
		var cf clientFlags
		cf.register(fs)
		reason := ""
		if action == "abort" {
			fs.StringVar(&reason, "reason", "", "why, for the record")
		}
		pos, err := parseFlags(fs, args, 1)
		if err != nil {
			return err
		}
		c, err := cf.newClient()
		if err != nil {
			return err
		}
		sum, err := c.RolloutAction(ctx, pos[0], action, reason)
		if err != nil {
			return err
		}
		if cf.json {
			return printJSON(w, sum)
		}
		fmt.Fprintf(w, "rollout %s: %s\n", sum.ID, waveName(sum))
		return nil
	}
}
