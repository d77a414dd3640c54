package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"edgefleet/fleet/api/rest"
	"edgefleet/internal/cli"
	"edgefleet/models/manifest"
)

// fleetd keeps its signing keys (fleet/controller/keys.go): these commands
// manage them through the API. There is no local key generation: a key file
// that fleetd does not use only misleads the agents that pin it.
func init() {
	commands["keys list"] = command{"list fleetd's signing keys: the one that signs, and retired ones agents may still pin", keysList}
	commands["keys rotate"] = command{"make a new signing key (admin); the old one stays listed as retired", keysRotate}
	commands["keys export"] = command{"write a public key for agents to pin (default: the signing key): keys export [ID] [-o fleet.pub]", keysExport}
}

func keysList(ctx context.Context, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("keys list", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	if _, err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	c, err := cf.newClient()
	if err != nil {
		return err
	}
	keys, err := c.Keys(ctx)
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(w, keys)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSIGNING\tCREATED\tRETIRED\tSOURCE")
	for _, k := range keys {
		signing := "no"
		if k.Signing {
			signing = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.ID, signing, keyTime(k.CreatedAt), keyTime(k.RetiredAt), k.Source)
	}
	return tw.Flush()
}

func keyTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format(time.DateTime)
}

func keysRotate(ctx context.Context, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("keys rotate", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	if _, err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	c, err := cf.newClient()
	if err != nil {
		return err
	}
	r, err := c.RotateKey(ctx)
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(w, r)
	}
	fmt.Fprintf(w, "signing key %s (retired %s)\n", r.Signing.ID, r.Retired.ID)
	fmt.Fprintf(w, "artifacts pushed from now on are signed by %s: agents refuse them until they pin it.\n", r.Signing.ID)
	fmt.Fprintf(w, "pin it beside the old key: fleetctl keys export %s -o %s.pub, then copy it to each agent's update.keys folder\n", r.Signing.ID, r.Signing.ID)
	return nil
}

func keysExport(ctx context.Context, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("keys export", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	out := fs.String("o", "", "write the public key to this file (agents pin it) instead of stdout")
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return fmt.Errorf("%w: keys export takes at most one key ID, got %d", errUsage, len(pos))
	}
	id := rest.SigningKeyID
	if len(pos) == 1 {
		id = pos[0]
	}
	c, err := cf.newClient()
	if err != nil {
		return err
	}
	pem, err := c.PublicKeyPEM(ctx, id)
	if err != nil {
		return err
	}
	pub, err := manifest.ParsePublicKey(pem)
	if err != nil {
		return fmt.Errorf("keys export: fleetd's answer: %w", err)
	}
	if *out == "" {
		_, err := w.Write(pem)
		return err
	}
	if err := os.WriteFile(*out, pem, 0o644); err != nil {
		return fmt.Errorf("keys export: %w", err)
	}
	fmt.Fprintf(w, "wrote %s (key %s): pin it on the agents (update.keys)\n", *out, manifest.KeyID(pub))
	return nil
}
