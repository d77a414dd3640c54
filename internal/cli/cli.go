// Package cli is the command-line grammar that edge-agent, fleetd, fleetctl
// and edge-launcher share, over the standard flag package:
//
//	prog [global flags] <command> [<subcommand>] [flags] [args]
//
// The rules:
//   - Commands form a tree ("devices list", "devices show"); a program may
//     also run something itself when no command is named (fleetd serves).
//   - Help at every level goes to stdout and exits 0: prog, prog devices,
//     prog devices list --help, -h, prog help devices list.
//   - A usage error (unknown command or flag, bad flag value, missing or
//     extra argument) prints the error and the usage line on stderr and
//     exits 2; any other error prints "prog command: error" and exits 1.
//   - Global flags (Program.Globals) may come before the command, between
//     its words or after it; flags may follow arguments; "--" ends flags.
//   - Every program has `version` (and --version); Program.Completion adds
//     `completion bash|zsh|fish`, scripts generated from the tree.
//
// A command is a Run func that parses its own flag.FlagSet with Parse (or
// ParseN) before it does anything else: the program learns a command's
// flags, for help and completion, by running it with --help.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
)

// Version is the version of the programs that have no version variable of
// their own, stamped at build time with
// -ldflags "-X edgefleet/internal/cli.Version=V" (the Makefile does).
var Version = "dev"

// Command is one command of a program.
type Command struct {
	// Name is the command's words after the program name, e.g.
	// "devices list"; "" is the program itself, run when no command is
	// named.
	Name string
	// Args shows the arguments in the usage line, e.g. "ID", "IMAGE...",
	// "[-- AGENT-ARGS...]".
	Args string
	// Summary is one line for the command lists; Long, when set, replaces
	// it in the command's own help.
	Summary, Long string
	// Run runs the command with the arguments after its name (global flags
	// given before the name come first). It parses them with Parse or
	// ParseN before anything else.
	Run func(ctx context.Context, args []string) error
}

// Program is a command-line program: its commands and global flags.
// Its zero Stdout and Stderr are os.Stdout and os.Stderr.
type Program struct {
	Name    string
	Summary string
	// Version is what `version` prints (default: the package's Version).
	// A Command named "version" replaces the built-in one.
	Version  string
	Commands []Command
	// Globals declares the flags that may come anywhere on the line; the
	// commands that take them register them on their own flag sets too.
	Globals func(fs *flag.FlagSet)
	// Completion adds `completion bash|zsh|fish`.
	Completion     bool
	Stdout, Stderr io.Writer
}

// node is a place in the command tree: a command, a group of commands, or both.
type node struct {
	path []string
	cmd  *Command
	kids map[string]*node
}

func (n *node) title(prog string) string { return strings.Join(append([]string{prog}, n.path...), " ") }

// leaves returns the commands at and under n, sorted by name.
func (n *node) leaves() []*node {
	var out []*node
	if n.cmd != nil && len(n.path) > 0 {
		out = append(out, n)
	}
	keys := make([]string, 0, len(n.kids))
	for k := range n.kids {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		out = append(out, n.kids[k].leaves()...)
	}
	return out
}

func (p *Program) tree() *node {
	root := &node{kids: map[string]*node{}}
	cmds := slices.Clone(p.Commands)
	if !slices.ContainsFunc(cmds, func(c Command) bool { return c.Name == "version" }) {
		cmds = append(cmds, p.versionCommand())
	}
	if p.Completion {
		cmds = append(cmds, p.completionCommand())
	}
	for i := range cmds {
		n := root
		for _, w := range strings.Fields(cmds[i].Name) {
			k := n.kids[w]
			if k == nil {
				k = &node{path: append(slices.Clone(n.path), w), kids: map[string]*node{}}
				n.kids[w] = k
			}
			n = k
		}
		n.cmd = &cmds[i]
	}
	return root
}

func (p *Program) out() io.Writer {
	if p.Stdout == nil {
		return os.Stdout
	}
	return p.Stdout
}

func (p *Program) errOut() io.Writer {
	if p.Stderr == nil {
		return os.Stderr
	}
	return p.Stderr
}

func (p *Program) globals() *flag.FlagSet {
	fs := flag.NewFlagSet(p.Name, flag.ContinueOnError)
	if p.Globals != nil {
		p.Globals(fs)
	}
	return fs
}

// Main runs the program on os.Args until SIGINT or SIGTERM and exits with
// its status.
func (p *Program) Main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := p.Run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

// isFlag reports whether a word is a flag ("-" alone and "--" are not).
func isFlag(a string) bool { return len(a) > 1 && a[0] == '-' && a != "--" }

// flagName returns a flag word's name and whether it has "=value".
func flagName(a string) (string, bool) {
	name, _, eq := strings.Cut(strings.TrimLeft(a, "-"), "=")
	return name, eq
}

// Run runs the command that args name and returns the exit status.
func (p *Program) Run(ctx context.Context, args []string) int {
	root, globals := p.tree(), p.globals()
	var moved []string
	n, i := root, 0
walk:
	for {
		for i < len(args) && isFlag(args[i]) && len(n.kids) > 0 { // a command's own flags are its own to parse
			name, hasValue := flagName(args[i])
			f := globals.Lookup(name)
			switch {
			case name == "h" || name == "help":
				return p.help(ctx, n, nil)
			case name == "version" && n == root && f == nil:
				n, args, i = root.kids["version"], nil, 0
				break walk
			case f == nil:
				break walk
			}
			moved = append(moved, args[i])
			if !hasValue && !isBool(f) && i+1 < len(args) {
				i++
				moved = append(moved, args[i])
			}
			i++
		}
		if i < len(args) && n.kids[args[i]] != nil {
			n, i = n.kids[args[i]], i+1
			continue
		}
		break
	}
	rest := args[i:]
	if n == root && len(rest) > 0 && rest[0] == "help" {
		return p.helpCommand(ctx, root, rest[1:])
	}
	if n.cmd == nil || (len(n.kids) > 0 && len(rest) > 0 && !isFlag(rest[0]) && n.cmd.Args == "") {
		switch {
		case len(rest) == 0:
			return p.help(ctx, n, nil)
		case isFlag(rest[0]):
			return p.usageError(n, nil, fmt.Errorf("unknown flag %s", rest[0]))
		}
		return p.usageError(n, nil, fmt.Errorf("unknown command %q", strings.Join(append(slices.Clone(n.path), rest[0]), " ")))
	}
	if meta(n) {
		moved = nil // settings for commands that talk to something: version and completion have no use for them
	}
	return p.finish(ctx, n, n.cmd.Run(ctx, append(moved, rest...)))
}

// meta reports whether n is a built-in command about the program itself.
func meta(n *node) bool {
	return len(n.path) == 1 && (n.path[0] == "version" || n.path[0] == "completion")
}

// finish prints what a command's error calls for and returns the exit status.
func (p *Program) finish(ctx context.Context, n *node, err error) int {
	var pe *ParseError
	errors.As(err, &pe)
	var ee *ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.Code
	case errors.Is(err, flag.ErrHelp):
		return p.help(ctx, n, pe)
	case errors.Is(err, ErrUsage):
		return p.usageError(n, pe, err)
	}
	fmt.Fprintf(p.errOut(), "%s: %v\n", n.title(p.Name), err)
	return 1
}

// usageError prints err and n's usage line on stderr and returns 2.
func (p *Program) usageError(n *node, pe *ParseError, err error) int {
	msg := strings.TrimPrefix(err.Error(), ErrUsage.Error()+": ")
	w := p.errOut()
	fmt.Fprintf(w, "%s: %s\n", n.title(p.Name), msg)
	for _, l := range p.usageLines(n, pe) {
		fmt.Fprintln(w, l)
	}
	fmt.Fprintf(w, "Run '%s --help' for more.\n", n.title(p.Name))
	return 2
}

// helpCommand is `prog help [COMMAND...]`.
func (p *Program) helpCommand(ctx context.Context, root *node, words []string) int {
	n := root
	for _, w := range words {
		k := n.kids[w]
		if k == nil {
			return p.usageError(n, nil, fmt.Errorf("unknown command %q", strings.Join(append(slices.Clone(n.path), w), " ")))
		}
		n = k
	}
	return p.help(ctx, n, nil)
}

// describe runs n's command with --help to learn its flags; nil if it
// does not parse with Parse.
func describe(ctx context.Context, n *node) *ParseError {
	if n.cmd == nil || n.cmd.Run == nil {
		return nil
	}
	var pe *ParseError
	if err := n.cmd.Run(ctx, []string{"--help"}); errors.As(err, &pe) && errors.Is(err, flag.ErrHelp) {
		return pe
	}
	return nil
}
