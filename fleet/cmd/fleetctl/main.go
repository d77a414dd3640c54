// Command fleetctl is the operator CLI of edgefleet, over fleetd's REST API.
//
//	fleetctl devices list [--site S] [--line L] [--online true|false]
//	fleetctl devices show ID
//	fleetctl detections query [--device D] [--camera C] [--label L] [--from T] [--to T] [--limit N]
//	fleetctl detections count [filters] [--bucket 1m]
//	fleetctl detections export --format csv [filters] [-o FILE]
//	fleetctl sim --mqtt tcp://127.0.0.1:1883 --devices N --rate R
//	fleetctl tokens create --name N --role viewer|operator|admin | tokens list | tokens revoke NAME
//	fleetctl audit [--limit N] [--before ID]
//
// Output is a table by default, JSON with --json. The server and token come
// from --server/--token, else EDGEFLEET_SERVER/EDGEFLEET_TOKEN, else the
// config file (--config, default ~/.config/edgefleet/fleetctl.yaml, keys
// server and token), else http://127.0.0.1:8080.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// command is one subcommand.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout io.Writer) error
}

var commands = map[string]command{}

// errUsage marks a usage error; main exits 2 after printing it.
var errUsage = errors.New("usage")

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: fleetctl <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-20s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun fleetctl <command> -h for its flags.")
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run dispatches args to a command and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		return 2
	}
	name := args[0]
	rest := args[1:]
	// Two-word commands: "devices list".
	if len(args) > 1 {
		if _, ok := commands[args[0]+" "+args[1]]; ok {
			name, rest = args[0]+" "+args[1], args[2:]
		}
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "fleetctl: unknown command %q\n", name)
		usage(stderr)
		return 2
	}
	if err := cmd.run(ctx, rest, stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 2
		}
		if errors.Is(err, errUsage) {
			fmt.Fprintln(stderr, "fleetctl:", err)
			return 2
		}
		fmt.Fprintln(stderr, "fleetctl:", explain(err))
		return 1
	}
	return 0
}
