package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// argsOf returns what the usage line shows for n's arguments.
func argsOf(n *node, pe *ParseError) string {
	if n.cmd == nil {
		return ""
	}
	if n.cmd.Args == "" && pe != nil && pe.NArgs > 0 {
		return strings.TrimSpace(strings.Repeat("ARG ", pe.NArgs))
	}
	return n.cmd.Args
}

// usageLines returns n's usage lines: "usage: prog devices show ID [flags]".
func (p *Program) usageLines(n *node, pe *ParseError) []string {
	title := n.title(p.Name)
	var lines []string
	if n.cmd != nil {
		l, a := title, argsOf(n, pe)
		flags := pe == nil || hasFlags(pe.Flags)
		if flags && strings.HasPrefix(a, "[--") { // flags cannot follow "--"
			l, flags = l+" [flags]", false
		}
		if a != "" {
			l += " " + a
		}
		if flags {
			l += " [flags]"
		}
		lines = append(lines, l)
	}
	if len(n.kids) > 0 {
		lines = append(lines, title+" <command> [flags] [args]")
	}
	for i := range lines {
		if i == 0 {
			lines[i] = "usage: " + lines[i]
		} else {
			lines[i] = "       " + lines[i]
		}
	}
	return lines
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// help prints n's help on stdout and returns 0.
func (p *Program) help(ctx context.Context, n *node, pe *ParseError) int {
	if pe == nil {
		pe = describe(ctx, n)
	}
	w := p.out()
	for _, l := range p.usageLines(n, pe) {
		fmt.Fprintln(w, l)
	}
	text := ""
	if len(n.path) == 0 {
		text = p.Summary
	}
	if n.cmd != nil && len(n.path) > 0 {
		text = n.cmd.Summary
		if n.cmd.Long != "" {
			text = n.cmd.Long
		}
	}
	if text = strings.TrimSpace(text); text != "" {
		fmt.Fprintf(w, "\n%s\n", text)
	}
	globals := p.globals()
	if pe != nil && hasFlags(pe.Flags) {
		own := flag.NewFlagSet("", flag.ContinueOnError)
		shared := flag.NewFlagSet("", flag.ContinueOnError)
		pe.Flags.VisitAll(func(f *flag.Flag) {
			if globals.Lookup(f.Name) != nil {
				shared.Var(f.Value, f.Name, f.Usage)
			} else {
				own.Var(f.Value, f.Name, f.Usage)
			}
		})
		printFlags(w, "flags", own, pe.Flags)
		printFlags(w, "global flags", shared, pe.Flags)
	}
	if leaves := n.leaves(); len(leaves) > 0 && (n.cmd == nil || len(n.kids) > 0) {
		fmt.Fprintln(w, "\ncommands:")
		tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
		for _, l := range leaves {
			fmt.Fprintf(tw, "  %s\t%s\n", strings.Join(l.path, " "), l.cmd.Summary)
		}
		tw.Flush()
		if n.cmd == nil {
			printFlags(w, "global flags", globals, globals)
		}
		fmt.Fprintf(w, "\nRun '%s help COMMAND' (or COMMAND --help) for a command's arguments and flags.\n", p.Name)
	}
	return 0
}

// printFlags prints the flags of fs under a heading; defaults come from
// orig, the flag set they were declared on.
func printFlags(w io.Writer, heading string, fs, orig *flag.FlagSet) {
	if !hasFlags(fs) {
		return
	}
	fmt.Fprintf(w, "\n%s:\n", heading)
	fs.VisitAll(func(f *flag.Flag) {
		kind, usage := flag.UnquoteUsage(orig.Lookup(f.Name))
		line := "  " + dashes(f.Name)
		if kind != "" {
			line += " " + kind
		}
		def := orig.Lookup(f.Name).DefValue
		switch def {
		case "", "0", "false", "0s", "[]":
		default:
			if kind == "string" {
				def = fmt.Sprintf("%q", def)
			}
			usage += fmt.Sprintf(" (default %s)", def)
		}
		fmt.Fprintf(w, "%s\n    \t%s\n", line, strings.ReplaceAll(usage, "\n", "\n    \t"))
	})
}
