// Command edge-agent runs on a camera box: it detects objects in camera
// frames, keeps every detection in a local spool and ships them to the fleet.
//
//	edge-agent detect --model M IMAGE...   run a model on images
//	edge-agent run --config agent.yaml     run the agent
//	edge-agent info --model M              describe a model and the engines here
//	edge-agent version [--json]            print the version
//
// `edge-agent help` lists every command; `edge-agent COMMAND --help` shows
// its flags. The grammar (help, exit statuses 0/1/2) is
// edgefleet/internal/cli's.
package main

import (
	"context"

	"edgefleet/agent"
	"edgefleet/internal/cli"
)

// command is one subcommand; each registers itself from its own file. Its
// run parses its flags with cli.Parse or cli.ParseN before anything else.
type command struct {
	summary string
	args    string // the arguments in the usage line, e.g. "--model PATH IMAGE..."
	long    string // the help text, when more than the summary
	run     func(ctx context.Context, args []string) error
}

var commands = map[string]command{}

// program is edge-agent's command tree, from the commands map.
func program() *cli.Program {
	p := &cli.Program{
		Name:    "edge-agent",
		Summary: "edge-agent detects objects in camera frames, spools them and ships them to the fleet.",
		Version: agent.Version,
	}
	for name, c := range commands {
		p.Commands = append(p.Commands, cli.Command{Name: name, Args: c.args, Summary: c.summary, Long: c.long, Run: c.run})
	}
	return p
}

func main() {
	program().Main()
}
