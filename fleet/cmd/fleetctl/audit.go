package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"

	"edgefleet/fleet/api/rest"
)

func init() {
	commands["audit"] = command{"show the audit log, newest first: audit [--limit N] [--before ID] [--json]", auditList}
}

func auditList(ctx context.Context, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	var q rest.AuditQuery
	fs.IntVar(&q.Limit, "limit", 50, "entries to show (1..1000)")
	fs.Uint64Var(&q.Before, "before", 0, "show entries older than this id (the NEXT of the previous page)")
	if _, err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	if q.Limit < 1 || q.Limit > 1000 {
		return fmt.Errorf("%w: --limit %d is not in 1..1000", errUsage, q.Limit)
	}
	c, err := cf.newClient()
	if err != nil {
		return err
	}
	l, err := c.Audit(ctx, q)
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(w, l)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTIME\tOPERATOR\tROLE\tACTION\tTARGET\tOUTCOME\tDETAIL")
	for _, e := range l.Entries {
		outcome := e.Outcome
		if e.Outcome != rest.OutcomeOK {
			outcome += " " + strconv.Itoa(e.Status)
		}
		detail := e.Detail
		if e.Error != "" {
			detail = e.Error
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, e.Time.Local().Format("2006-01-02 15:04:05"),
			e.Operator, e.Role, e.Action, dash(e.Target), outcome, detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if l.Next != 0 {
		fmt.Fprintf(w, "older: fleetctl audit --before %d\n", l.Next)
	}
	return nil
}
