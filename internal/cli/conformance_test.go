package cli_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
)

// binaries are the four programs, as the module root's paths.
var binaries = []string{"./agent/cmd/edge-agent", "./fleet/cmd/fleetd", "./fleet/cmd/fleetctl", "./firmware/cmd/edge-launcher"}

const stamped = "conformance-1.0"

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// build builds the four binaries once, with the version stamped as the
// Makefile does.
func build(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "cli-conformance-"); buildErr != nil {
			return
		}
		ldflags := "-X edgefleet/agent.Version=" + stamped + " -X edgefleet/internal/cli.Version=" + stamped
		cmd := exec.Command("go", append([]string{"build", "-ldflags", ldflags, "-o", buildDir + "/"}, binaries...)...)
		cmd.Dir = filepath.Join("..", "..")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// result is one run of a binary.
type result struct {
	code        int
	out, errOut string
}

// runner runs one binary in a clean environment: no EDGEFLEET_* settings,
// an empty home.
func runner(t *testing.T, bin string) func(args ...string) result {
	home := t.TempDir()
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "XDG_CONFIG_HOME=" + home}
	return func(args ...string) result {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env, cmd.Dir = env, home
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		var ee *exec.ExitError
		code := 0
		switch {
		case errors.As(err, &ee):
			code = ee.ExitCode()
		case err != nil:
			t.Fatalf("%s %q: %v", filepath.Base(bin), args, err)
		}
		return result{code, out.String(), errOut.String()}
	}
}

// commandLine is an entry of a help's command list: "  devices list   summary".
var commandLine = regexp.MustCompile(`^  ([a-z0-9][a-z0-9-]*(?: [a-z0-9][a-z0-9-]*)*)(?:   +.*)?$`)

// commandsOf returns the commands a help text lists.
func commandsOf(help string) []string {
	_, list, ok := strings.Cut(help, "\ncommands:\n")
	if !ok {
		return nil
	}
	var out []string
	for _, l := range strings.Split(list, "\n") {
		m := commandLine.FindStringSubmatch(l)
		if m == nil {
			break
		}
		out = append(out, m[1])
	}
	return out
}

// TestConformance is issue 17's CLI conformance test, over the built
// binaries and every command their own help lists (so a command added
// anywhere is covered): help at every level exits 0 with the usage on
// stdout, an unknown flag exits 2 with the usage on stderr, a command that
// takes arguments shows them and refuses to run without them (exit 2), and
// `version` and --version print the stamped version.
func TestConformance(t *testing.T) {
	dir := build(t)
	for _, path := range binaries {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			run := runner(t, filepath.Join(dir, name))
			top := run("--help")
			if top.code != 0 || !strings.HasPrefix(top.out, "usage: "+name) {
				t.Fatalf("%s --help: exit %d, stdout:\n%s\nstderr:\n%s", name, top.code, top.out, top.errOut)
			}
			for _, args := range [][]string{{"-h"}, {"help"}} {
				if r := run(args...); r.code != 0 || r.out != top.out {
					t.Errorf("%s %q: exit %d, and not the help of --help:\n%s%s", name, args, r.code, r.out, r.errOut)
				}
			}
			if !strings.Contains(top.out, "usage: "+name+" [flags]") { // a program that runs with no command (fleetd) is not run bare
				if r := run(); r.code != 0 || r.out != top.out {
					t.Errorf("%s alone: exit %d, and not the help:\n%s%s", name, r.code, r.out, r.errOut)
				}
			}
			for _, args := range [][]string{{"version"}, {"--version"}} {
				if r := run(args...); r.code != 0 || !strings.HasPrefix(r.out, name+" "+stamped+" ") {
					t.Errorf("%s %q: exit %d, stdout %q, want %q first", name, args, r.code, r.out, name+" "+stamped)
				}
			}
			if r := run("no-such-command"); r.code != 2 || !strings.Contains(r.errOut, `unknown command "no-such-command"`) || !strings.Contains(r.errOut, "usage: "+name) {
				t.Errorf("%s no-such-command: exit %d, stderr:\n%s", name, r.code, r.errOut)
			}
			if r := run("--no-such-flag"); r.code != 2 || !strings.Contains(r.errOut, "unknown flag --no-such-flag") || !strings.Contains(r.errOut, "usage: "+name) {
				t.Errorf("%s --no-such-flag: exit %d, stderr:\n%s", name, r.code, r.errOut)
			}
			cmds := commandsOf(top.out)
			if !slices.Contains(cmds, "version") {
				t.Errorf("%s --help lists no version command: %q", name, cmds)
			}
			groups := map[string][]string{}
			for _, c := range cmds {
				words := strings.Fields(c)
				for i := 1; i < len(words); i++ {
					g := strings.Join(words[:i], " ")
					groups[g] = append(groups[g], c)
				}
				t.Run(strings.ReplaceAll(c, " ", "_"), func(t *testing.T) { checkCommand(t, run, name, words) })
			}
			for g, members := range groups {
				t.Run(strings.ReplaceAll(g, " ", "_"), func(t *testing.T) { checkGroup(t, run, name, strings.Fields(g), members) })
			}
		})
	}
}

func checkCommand(t *testing.T, run func(...string) result, prog string, words []string) {
	title := strings.Join(append([]string{prog}, words...), " ")
	help := run(append(words, "--help")...)
	first, _, _ := strings.Cut(help.out, "\n")
	// usage: prog devices show ID [flags]
	rest, ok := strings.CutPrefix(first, "usage: "+title)
	if help.code != 0 || !ok || (rest != "" && rest[0] != ' ') {
		t.Fatalf("%s --help: exit %d, first line %q, want \"usage: %s [ARGS] [flags]\"\nstderr: %s", title, help.code, first, title, help.errOut)
	}
	withFlags := strings.Contains(rest, " [flags]")
	args := strings.Replace(rest, " [flags]", "", 1)
	for _, args := range [][]string{append(words, "-h"), append([]string{"help"}, words...)} {
		if r := run(args...); r.code != 0 || r.out != help.out {
			t.Errorf("%q: exit %d, not the help of --help:\n%s%s", args, r.code, r.out, r.errOut)
		}
	}
	if withFlags && !strings.Contains(help.out, "\nflags:\n") && !strings.Contains(help.out, "\nglobal flags:\n") {
		t.Errorf("%s --help shows [flags] but lists none:\n%s", title, help.out)
	}
	bad := run(append(words, "--no-such-flag")...)
	if bad.code != 2 || !strings.Contains(bad.errOut, title+": unknown flag --no-such-flag\nusage: "+title) || bad.out != "" {
		t.Errorf("%s --no-such-flag: exit %d, want 2 with the usage on stderr:\n%s%s", title, bad.code, bad.out, bad.errOut)
	}
	// Arguments shown as required (not in [brackets]) are required: without
	// any, the command refuses with its usage before doing anything.
	if args = strings.TrimSpace(args); args != "" && !strings.HasPrefix(args, "[") {
		r := run(words...)
		if r.code != 2 || !strings.Contains(r.errOut, "\n"+first+"\n") {
			t.Errorf("%s without its arguments (%s): exit %d, want 2 with the usage on stderr:\n%s%s", title, args, r.code, r.out, r.errOut)
		}
	}
}

func checkGroup(t *testing.T, run func(...string) result, prog string, words, members []string) {
	title := strings.Join(append([]string{prog}, words...), " ")
	for _, args := range [][]string{words, append(words, "--help"), append(words, "-h"), append([]string{"help"}, words...)} {
		r := run(args...)
		if r.code != 0 || !strings.HasPrefix(r.out, "usage: "+title+" <command>") {
			t.Errorf("%q: exit %d, stdout:\n%s\nstderr:\n%s", args, r.code, r.out, r.errOut)
			continue
		}
		if got := commandsOf(r.out); !slices.Equal(got, members) {
			t.Errorf("%q lists %q, want %q", args, got, members)
		}
	}
	r := run(append(words, "no-such-command")...)
	if r.code != 2 || !strings.Contains(r.errOut, "unknown command") || !strings.Contains(r.errOut, "usage: "+title) {
		t.Errorf("%s no-such-command: exit %d, stderr:\n%s", title, r.code, r.errOut)
	}
}

// TestGlobalFlagsAnywhere: the global flags of fleetctl, fleetd and
// edge-launcher work before the command, between its words and after it;
// errors that are not usage errors exit 1 as "prog command: error".
func TestGlobalFlagsAnywhere(t *testing.T) {
	dir := build(t)
	fleetctl := runner(t, filepath.Join(dir, "fleetctl"))
	launcher := runner(t, filepath.Join(dir, "edge-launcher"))
	fleetd := runner(t, filepath.Join(dir, "fleetd"))
	down := "http://127.0.0.1:1" // nothing listens there
	data := t.TempDir()
	tests := []struct {
		name   string
		run    func(...string) result
		args   []string
		code   int
		errOut string // stderr starts with it
	}{
		{"fleetctl before", fleetctl, []string{"--server", down, "--token", "t", "devices", "list"}, 1, "fleetctl devices list: "},
		{"fleetctl between", fleetctl, []string{"devices", "--server=" + down, "--json", "list", "--token", "t"}, 1, "fleetctl devices list: "},
		{"fleetctl after", fleetctl, []string{"devices", "show", "cam-1", "--server", down, "--token", "t"}, 1, "fleetctl devices show: "},
		{"fleetctl refuses a bad value anywhere", fleetctl, []string{"--timeout", "soon", "devices", "list"}, 2, "fleetctl devices list: invalid value"},
		{"fleetctl no token is a usage error", fleetctl, []string{"--server", down, "models", "list"}, 2, "fleetctl models list: no operator token"},
		{"export has no --json", fleetctl, []string{"detections", "export", "--json", "--server", down, "--token", "t"}, 2, "fleetctl detections export: unknown flag --json"},
		{"edge-launcher before", launcher, []string{"--data", data, "status"}, 1, "edge-launcher status: "},
		{"edge-launcher after", launcher, []string{"status", "--data", data}, 1, "edge-launcher status: "},
		{"fleetd before", fleetd, []string{"--config", filepath.Join(data, "none.yaml"), "--check-config"}, 1, "fleetd: config: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.run(tt.args...)
			if r.code != tt.code || !strings.HasPrefix(r.errOut, tt.errOut) {
				t.Errorf("exit %d, want %d; stderr %q, want it to start with %q", r.code, tt.code, r.errOut, tt.errOut)
			}
		})
	}
}

// TestFleetctlCompletion: the bash script completes fleetctl's real tree.
func TestFleetctlCompletion(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	dir := build(t)
	r := runner(t, filepath.Join(dir, "fleetctl"))("completion", "bash")
	if r.code != 0 {
		t.Fatalf("completion bash: exit %d: %s", r.code, r.errOut)
	}
	for _, tt := range []struct{ line, want string }{
		{"fleetctl dev", "devices"},
		{"fleetctl --server x devices ", "list show"},
		{"fleetctl detections export --f", "--format --from"},
		{"fleetctl rollouts show r-1 --a", "--all"},
	} {
		words := strings.Split(tt.line, " ")
		script := r.out + fmt.Sprintf("\nCOMP_WORDS=('%s'); COMP_CWORD=%d; __fleetctl; echo \"${COMPREPLY[*]}\"", strings.Join(words, "' '"), len(words)-1)
		out, err := exec.Command(bash, "--norc", "-c", script).CombinedOutput()
		if err != nil {
			t.Fatalf("%q: %v\n%s", tt.line, err, out)
		}
		got := strings.Fields(string(out))
		for _, w := range strings.Fields(tt.want) {
			if !slices.Contains(got, w) {
				t.Errorf("%q completes to %q, lacking %q", tt.line, got, w)
			}
		}
	}
}
