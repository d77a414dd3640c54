package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"edgefleet/fleet/api/rest"
)

func init() {
	commands["tokens create"] = command{"make an operator token, shown once: tokens create --name N --role viewer|operator|admin", tokensCreate}
	commands["tokens list"] = command{"list operator tokens: name, role, created, last used", tokensList}
	commands["tokens revoke"] = command{"revoke an operator's token: tokens revoke NAME", tokensRevoke}
}

func tokensCreate(ctx context.Context, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("tokens create", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	var req rest.CreateToken
	fs.StringVar(&req.Name, "name", "", "operator name (letters, digits, . _ - @)")
	fs.StringVar(&req.Role, "role", "", "viewer (reads), operator (also pushes and rollouts) or admin (also devices, keys, tokens)")
	if _, err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	if err := req.Check(); err != nil {
		return fmt.Errorf("%w: tokens create --name N --role R: %v", errUsage, err)
	}
	c, err := cf.newClient()
	if err != nil {
		return err
	}
	tc, err := c.CreateToken(ctx, req)
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(w, tc)
	}
	fmt.Fprintf(w, "token for %s (%s), shown only now; fleetd keeps its hash:\n%s\n", tc.Name, tc.Role, tc.Token)
	return nil
}

func tokensList(ctx context.Context, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("tokens list", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	if _, err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	c, err := cf.newClient()
	if err != nil {
		return err
	}
	ts, err := c.Tokens(ctx)
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(w, ts)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tROLE\tCREATED\tLAST USED")
	for _, t := range ts {
		created := stamp(t.CreatedAt)
		if t.Fixed {
			created = "fleetd.yaml"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.Name, t.Role, created, stamp(t.LastUsed))
	}
	return tw.Flush()
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04")
}

func tokensRevoke(ctx context.Context, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("tokens revoke", flag.ContinueOnError)
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
	if err := c.RevokeToken(ctx, pos[0]); err != nil {
		return err
	}
	if cf.json {
		return printJSON(w, rest.TokenRevoked{Revoked: pos[0]})
	}
	fmt.Fprintf(w, "revoked the token of %s\n", pos[0])
	return nil
}
