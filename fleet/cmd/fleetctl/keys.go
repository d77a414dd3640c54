package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"

	"edgefleet/fleet/api/rest"
	"edgefleet/models/manifest"
)

func init() {
	commands["keys generate"] = command{"create a signing key pair: keys generate [--dir D] [--name N]", keysGenerate}
	commands["keys list"] = command{"list the public keys fleetd pins (or those in --dir)", keysList}
}

func keysGenerate(_ context.Context, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("keys generate", flag.ContinueOnError)
	dir := fs.String("dir", ".", "folder for NAME.key (0600) and NAME.pub")
	name := fs.String("name", "fleet", "key file name, without extension")
	if _, err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	// The folder holds a private key: create it for its owner alone.
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return fmt.Errorf("keys generate: %w", err)
	}
	id, err := manifest.GenerateKey(*dir, *name)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "key %s\n  private %s (0600: keep it on fleetd only)\n  public  %s (pin it on agents)\n",
		id, filepath.Join(*dir, *name+".key"), filepath.Join(*dir, *name+".pub"))
	return nil
}

func keysList(ctx context.Context, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("keys list", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	dir := fs.String("dir", "", "list the *.pub files of this folder instead of asking fleetd")
	if _, err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	var keys []rest.Key
	if *dir != "" {
		ks, err := manifest.LoadKeySet(*dir)
		if err != nil {
			return err
		}
		for _, id := range ks.IDs() {
			pem, _ := manifest.EncodePublicKey(ks[id])
			keys = append(keys, rest.Key{ID: id, PublicKey: string(pem)})
		}
	} else {
		c, err := cf.newClient()
		if err != nil {
			return err
		}
		if keys, err = c.Keys(ctx); err != nil {
			return err
		}
	}
	if cf.json {
		return printJSON(w, keys)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY ID\tALGORITHM")
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\ted25519\n", k.ID)
	}
	return tw.Flush()
}
