// Command fleetctl is the operator CLI of edgefleet, over fleetd's REST API.
//
//	fleetctl devices list [--site S] [--line L] [--online true|false]
//	fleetctl devices show ID
//	fleetctl detections query [--device D] [--camera C] [--label L] [--from T] [--to T] [--limit N]
//	fleetctl detections count [filters] [--bucket 1m]
//	fleetctl detections export --format csv [filters] [-o FILE]
//	fleetctl events list [--device D] [--camera C] [--type T] [--label L] [--line L] [--zone Z] [--from T] [--to T] [--limit N] [--format csv [-o FILE]]
//	fleetctl events snapshot DEVICE SEQ [--part crop|thumb] -o FILE
//	fleetctl counts [--device D] [--camera C] [--line L] [--from T] [--to T] [--bucket 1h] [--format csv [-o FILE]]
//	fleetctl sim --mqtt tcp://127.0.0.1:1883 --devices N --rate R
//	fleetctl completion bash|zsh|fish
//	fleetctl version
//	fleetctl tokens create --name N --role viewer|operator|admin | tokens list | tokens revoke NAME
//	fleetctl audit [--limit N] [--before ID]
//
// `fleetctl help` lists every command; `fleetctl COMMAND --help` shows its
// arguments and flags. Output is a table by default, JSON with --json. The
// server and token come from --server/--token, else
// EDGEFLEET_SERVER/EDGEFLEET_TOKEN, else the config file (--config, default
// ~/.config/edgefleet/fleetctl.yaml, keys server and token), else
// http://127.0.0.1:8080. These global flags may come before or after the
// command. The grammar (help, exit statuses 0/1/2) is edgefleet/internal/cli's.
package main

import (
	"context"
	"flag"
	"io"
	"os"

	"edgefleet/internal/cli"
)

// command is one subcommand; each file registers its own in commands.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout io.Writer) error
}

var commands = map[string]command{}

// commandArgs is what each command's usage line shows for its arguments
// (commands that take none are absent). Entries for commands not built in
// are ignored.
var commandArgs = map[string]string{
	"devices show":      "ID",
	"devices add":       "ID",
	"devices delete":    "ID",
	"devices revoke":    "ID",
	"models push":       "FILE",
	"models show":       "NAME@VERSION",
	"models delete":     "NAME@VERSION",
	"rollouts show":     "ID",
	"rollouts accept":   "ID",
	"rollouts pause":    "ID",
	"rollouts resume":   "ID",
	"rollouts abort":    "ID",
	"rollouts rollback": "ID",
	"firmware push":     "FILE",
	"firmware bundle":   "FILE",
	"tokens revoke":     "NAME",
	"keys export":       "[ID]",
	"events snapshot":   "DEVICE SEQ",
}

// errUsage marks a usage error: exit status 2, with the command's usage.
var errUsage = cli.ErrUsage

func main() {
	program(os.Stdout, os.Stderr).Main()
}

// program is fleetctl's command tree, from the commands map.
func program(stdout, stderr io.Writer) *cli.Program {
	p := &cli.Program{
		Name:       "fleetctl",
		Summary:    "fleetctl operates an edgefleet fleet through fleetd's REST API.",
		Globals:    func(fs *flag.FlagSet) { new(clientFlags).register(fs) },
		Completion: true,
		Stdout:     stdout,
		Stderr:     stderr,
	}
	for name, c := range commands {
		p.Commands = append(p.Commands, cli.Command{Name: name, Args: commandArgs[name], Summary: c.summary,
			Run: func(ctx context.Context, args []string) error { return explain(c.run(ctx, args, stdout)) }})
	}
	return p
}

// run runs fleetctl with args and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return program(stdout, stderr).Run(ctx, args)
}
