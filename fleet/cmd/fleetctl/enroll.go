package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
)

func init() {
	commands["devices add"] = command{"register a device and print its one-time enrollment token (--labels k=v,...)", devicesAdd}
	commands["devices revoke"] = command{"revoke a device: certificate, broker session and downloads", devicesRevoke}
}

// devicesAdd: fleetctl devices add box-17 --labels site=a,line=3
func devicesAdd(ctx context.Context, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("devices add", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	labelsFlag := fs.String("labels", "", "labels, k=v,k=v")
	pos, err := parseFlags(fs, args, 1)
	if err != nil {
		return err
	}
	labels, err := parseLabels(*labelsFlag)
	if err != nil {
		return err
	}
	c, err := cf.newClient()
	if err != nil {
		return err
	}
	added, err := c.AddDevice(ctx, pos[0], labels)
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(w, added)
	}
	// The token alone on stdout, so that scripts can take it as is.
	fmt.Fprintln(w, added.Token)
	return nil
}

func devicesRevoke(ctx context.Context, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("devices revoke", flag.ContinueOnError)
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
	r, err := c.RevokeDevice(ctx, pos[0])
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(w, r)
	}
	session := "no live session"
	if r.Disconnected {
		session = "live session dropped"
	}
	fmt.Fprintf(w, "revoked %s (%s)\n", r.ID, session)
	return nil
}

// parseLabels parses k=v,k=v.
func parseLabels(s string) (map[string]string, error) {
	if s == "" {
		return nil, nil
	}
	labels := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%w: --labels: %q is not key=value", errUsage, kv)
		}
		labels[k] = v
	}
	return labels, nil
}
