// Command edge-agent runs on a camera box: it detects objects in camera
// frames, keeps every detection in a local spool and ships them to the fleet.
//
//	edge-agent detect --model M IMAGE...   run a model on images
//	edge-agent run --config agent.yaml     run the agent
//	edge-agent info --model M              describe a model and the engines here
//	edge-agent version [--json]            print the version
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// command is one subcommand; each registers itself from its own file.
type command struct {
	summary string
	run     func(ctx context.Context, args []string) error
}

var commands = map[string]command{}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: edge-agent <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-10s %s\n", n, commands[n].summary)
	}
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		os.Exit(2)
	}
	cmd, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "edge-agent: unknown command %q\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cmd.run(ctx, os.Args[2:])
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "edge-agent %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
