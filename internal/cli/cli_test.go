package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// testProgram is a small program: a group with two commands, a command
// with an argument, global flags; got records what the commands saw.
func testProgram(got *[]string, root bool) (*Program, *bytes.Buffer, *bytes.Buffer) {
	var out, errOut bytes.Buffer
	globals := func(fs *flag.FlagSet) (*string, *bool) {
		return fs.String("server", "http://default", "server `URL`"), fs.Bool("json", false, "print JSON")
	}
	p := &Program{Name: "prog", Summary: "prog does things.", Version: "1.2.3", Completion: true, Stdout: &out, Stderr: &errOut,
		Globals: func(fs *flag.FlagSet) { globals(fs) }}
	p.Commands = []Command{
		{Name: "things list", Summary: "list things", Run: func(_ context.Context, args []string) error {
			fs := flag.NewFlagSet("things list", flag.ContinueOnError)
			server, asJSON := globals(fs)
			site := fs.String("site", "", "only this `site`")
			if _, err := ParseN(fs, args, 0); err != nil {
				return err
			}
			*got = append(*got, fmt.Sprintf("list server=%s json=%v site=%s", *server, *asJSON, *site))
			return nil
		}},
		{Name: "things show", Args: "ID", Summary: "show a thing", Run: func(_ context.Context, args []string) error {
			fs := flag.NewFlagSet("things show", flag.ContinueOnError)
			server, _ := globals(fs)
			pos, err := ParseN(fs, args, 1)
			if err != nil {
				return err
			}
			if pos[0] == "missing" {
				return errors.New("no thing named missing")
			}
			if pos[0] == "bad" {
				return fmt.Errorf("%w: %q is not an id", ErrUsage, pos[0])
			}
			*got = append(*got, "show "+pos[0]+" server="+*server)
			return nil
		}},
		{Name: "exec", Args: "[-- ARGS...]", Summary: "run something", Run: func(_ context.Context, args []string) error {
			fs := flag.NewFlagSet("exec", flag.ContinueOnError)
			v := fs.Bool("v", false, "verbose")
			pos, err := Parse(fs, args)
			if err != nil {
				return err
			}
			*got = append(*got, fmt.Sprintf("exec v=%v %q", *v, pos))
			return nil
		}},
	}
	if root {
		p.Commands = append(p.Commands, Command{Summary: "serve", Run: func(_ context.Context, args []string) error {
			fs := flag.NewFlagSet("prog", flag.ContinueOnError)
			port := fs.Int("port", 80, "port")
			if _, err := ParseN(fs, args, 0); err != nil {
				return err
			}
			*got = append(*got, fmt.Sprintf("serve port=%d", *port))
			return nil
		}})
	}
	return p, &out, &errOut
}

func TestRun(t *testing.T) {
	tests := []struct {
		name   string
		root   bool // the program serves when no command is named
		args   []string
		code   int
		got    string // what the command saw
		out    string // in stdout
		errOut string // in stderr
	}{
		{"bare: help", false, nil, 0, "", "usage: prog <command> [flags] [args]\n\nprog does things.\n\ncommands:\n  completion", ""},
		{"--help", false, []string{"--help"}, 0, "", "  things list   list things", ""},
		{"-h", false, []string{"-h"}, 0, "", "global flags:\n  --json", ""},
		{"help", false, []string{"help"}, 0, "", "  things show   show a thing", ""},
		{"group", false, []string{"things"}, 0, "", "usage: prog things <command>", ""},
		{"group -h", false, []string{"things", "-h"}, 0, "", "  things list", ""},
		{"help group", false, []string{"help", "things"}, 0, "", "usage: prog things <command>", ""},
		{"command --help", false, []string{"things", "show", "--help"}, 0, "", "usage: prog things show ID [flags]\n\nshow a thing\n\nglobal flags:\n  --json\n    \tprint JSON\n  --server URL", ""},
		{"help command", false, []string{"help", "things", "list"}, 0, "", "flags:\n  --site site\n    \tonly this site\n", ""},
		{"command -h after args", false, []string{"things", "show", "x", "-h"}, 0, "", "usage: prog things show ID [flags]", ""},
		{"run", false, []string{"things", "list"}, 0, "list server=http://default json=false site=", "", ""},
		{"flags after", false, []string{"things", "list", "--site", "a", "--json", "--server=s"}, 0, "list server=s json=true site=a", "", ""},
		{"globals before", false, []string{"--server", "s", "--json", "things", "list", "--site", "a"}, 0, "list server=s json=true site=a", "", ""},
		{"global between words", false, []string{"things", "--server=s", "show", "x"}, 0, "show x server=s", "", ""},
		{"flags after the argument", false, []string{"things", "show", "x", "--server", "s"}, 0, "show x server=s", "", ""},
		{"dash dash", false, []string{"exec", "a", "-v", "--", "-x", "--y"}, 0, `exec v=true ["a" "-x" "--y"]`, "", ""},
		{"unknown command", false, []string{"frob"}, 2, "", "", "prog: unknown command \"frob\"\nusage: prog <command> [flags] [args]\nRun 'prog --help' for more.\n"},
		{"unknown subcommand", false, []string{"things", "frob"}, 2, "", "", "prog things: unknown command \"things frob\"\nusage: prog things <command>"},
		{"unknown flag at the top", false, []string{"--frob", "things", "list"}, 2, "", "", "prog: unknown flag --frob"},
		{"unknown flag", false, []string{"things", "list", "--frob"}, 2, "", "", "prog things list: unknown flag --frob\nusage: prog things list [flags]\nRun 'prog things list --help' for more.\n"},
		{"bad flag value", false, []string{"--json=maybe", "things", "list"}, 2, "", "", "prog things list: invalid boolean value"},
		{"missing flag value", false, []string{"things", "list", "--site"}, 2, "", "", "flag needs an argument"},
		{"missing argument", false, []string{"things", "show"}, 2, "", "", "prog things show: takes 1 argument(s), got 0\nusage: prog things show ID [flags]"},
		{"extra argument", false, []string{"things", "show", "a", "b"}, 2, "", "", "takes 1 argument(s), got 2"},
		{"usage error of the command", false, []string{"things", "show", "bad"}, 2, "", "", "prog things show: \"bad\" is not an id\nusage: prog things show ID"},
		{"runtime error", false, []string{"things", "show", "missing"}, 1, "", "", "prog things show: no thing named missing\n"},
		{"version", false, []string{"version"}, 0, "", "prog 1.2.3 ", ""},
		{"--version", false, []string{"--version"}, 0, "", "prog 1.2.3 ", ""},
		{"version --json", false, []string{"version", "--json"}, 0, "", `{"version":"1.2.3",`, ""},
		{"version takes the globals", false, []string{"--server", "x", "version"}, 0, "", "prog 1.2.3 ", ""},
		{"version refuses what it does not take", false, []string{"version", "--site", "x"}, 2, "", "", "prog version: unknown flag --site"},
		{"help unknown", false, []string{"help", "frob"}, 2, "", "", `unknown command "frob"`},
		{"root serves", true, nil, 0, "serve port=80", "", ""},
		{"root flags", true, []string{"--port", "8"}, 0, "serve port=8", "", ""},
		{"root help", true, []string{"--help"}, 0, "", "usage: prog [flags]\n       prog <command> [flags] [args]\n\nprog does things.\n\nflags:\n  --port int", ""},
		{"root and a command", true, []string{"things", "list"}, 0, "list server=http://default json=false site=", "", ""},
		{"root unknown command", true, []string{"frob"}, 2, "", "", `prog: unknown command "frob"`},
		{"root unknown flag", true, []string{"--frob"}, 2, "", "", "prog: unknown flag --frob\nusage: prog [flags]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			p, out, errOut := testProgram(&got, tt.root)
			code := p.Run(context.Background(), tt.args)
			if code != tt.code {
				t.Errorf("exit status %d, want %d", code, tt.code)
			}
			if g := strings.Join(got, "; "); g != tt.got {
				t.Errorf("the command saw %q, want %q", g, tt.got)
			}
			if !strings.Contains(out.String(), tt.out) || (tt.out == "" && out.Len() > 0) {
				t.Errorf("stdout lacks %q:\n%s", tt.out, out)
			}
			if !strings.Contains(errOut.String(), tt.errOut) || (tt.errOut == "" && errOut.Len() > 0) {
				t.Errorf("stderr lacks %q:\n%s", tt.errOut, errOut)
			}
		})
	}
}

func TestExit(t *testing.T) {
	var errOut bytes.Buffer
	p := &Program{Name: "prog", Stderr: &errOut, Commands: []Command{{Name: "x", Run: func(context.Context, []string) error { return Exit(3) }}}}
	if code := p.Run(context.Background(), []string{"x"}); code != 3 || errOut.Len() > 0 {
		t.Errorf("exit %d, stderr %q", code, errOut.String())
	}
}

// TestBashCompletion sources the generated script in bash and completes.
func TestBashCompletion(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	var got []string
	p, out, _ := testProgram(&got, false)
	if code := p.Run(context.Background(), []string{"completion", "bash"}); code != 0 {
		t.Fatalf("completion bash: exit %d", code)
	}
	script := out.String()
	for _, tt := range []struct {
		line string // the words typed; the last is completed
		want string // COMPREPLY, space separated
	}{
		{"prog ", "completion exec things version --json --server"},
		{"prog th", "things"},
		{"prog things ", "list show"},
		{"prog --server http://x things s", "show"},
		{"prog things list --s", "--server --site"},
		{"prog things show abc --j", "--json"},
		{"prog things list --site ", ""},
		{"prog completion ", "bash zsh fish"},
		{"prog completion bash ", ""},
	} {
		words := strings.Split(tt.line, " ")
		quoted := make([]string, len(words))
		for i, w := range words {
			quoted[i] = "'" + w + "'"
		}
		cmd := exec.Command(bash, "--norc", "-c", script+fmt.Sprintf("\nCOMP_WORDS=(%s); COMP_CWORD=%d; %s; echo \"${COMPREPLY[*]}\"",
			strings.Join(quoted, " "), len(words)-1, funcName("prog")))
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%q: %v\n%s", tt.line, err, b)
		}
		if g := strings.TrimSpace(string(b)); g != tt.want {
			t.Errorf("%q completes to %q, want %q", tt.line, g, tt.want)
		}
	}
}

// TestShellScripts: the zsh and fish scripts parse in their shells, when
// installed.
func TestShellScripts(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		t.Run(sh, func(t *testing.T) {
			var got []string
			p, out, _ := testProgram(&got, false)
			if code := p.Run(context.Background(), []string{"completion", sh}); code != 0 || !strings.Contains(out.String(), "things") {
				t.Fatalf("completion %s: exit %d\n%s", sh, code, out)
			}
			bin, err := exec.LookPath(sh)
			if err != nil {
				t.Skipf("no %s here to parse the script", sh)
			}
			cmd := exec.Command(bin, "-n")
			cmd.Stdin = strings.NewReader(out.String())
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s -n: %v\n%s\n%s", sh, err, b, out)
			}
			// Complete "prog things " in the shell itself.
			script := filepath.Join(t.TempDir(), "prog."+sh)
			if err := os.WriteFile(script, out.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			try := map[string][]string{
				"bash": {"--norc", "-c", "source " + script + `; COMP_WORDS=(prog things ""); COMP_CWORD=2; __prog; echo "${COMPREPLY[*]}"`},
				"zsh": {"-f", "-c", "autoload -U compinit && compinit -u -d " + script + ".dump; source " + script +
					`; emulate sh -c 'COMP_WORDS=(prog things ""); COMP_CWORD=2; __prog; echo "${COMPREPLY[*]}"'`},
				"fish": {"--no-config", "-c", "source " + script + `; complete -C "prog things "`},
			}[sh]
			b, err := exec.Command(bin, try...).CombinedOutput()
			if got := strings.Fields(string(b)); err != nil || !slices.Contains(got, "list") || !slices.Contains(got, "show") {
				t.Errorf("%s completes \"prog things \" to %q (%v), want list and show", sh, got, err)
			}
		})
	}
	var errOut bytes.Buffer
	p := &Program{Name: "prog", Completion: true, Stderr: &errOut}
	if code := p.Run(context.Background(), []string{"completion", "tcsh"}); code != 2 || !strings.Contains(errOut.String(), "unknown shell") {
		t.Errorf("completion tcsh: exit %d, %s", code, errOut.String())
	}
}
