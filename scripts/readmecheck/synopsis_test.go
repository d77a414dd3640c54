package readmecheck

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var (
	subcommandWord = regexp.MustCompile(`^[a-z]+$`)
	flagName       = regexp.MustCompile(`--[a-z][a-z-]*`)
)

// TestREADMESynopsisFlags checks the usage synopses the README shows
// instead of a command line: every --flag one names is in the --help of
// that program and subcommand, so a renamed or removed flag fails here.
func TestREADMESynopsisFlags(t *testing.T) {
	if testing.Short() {
		t.Skip("readmecheck: builds the binaries")
	}
	root, cmds := readme(t)
	bin := binaries(t, root)
	checked := 0
	for _, c := range cmds {
		words := strings.Fields(c.Text)
		if excused[c.Text] != synopsis || (words[0] != "fleetctl" && words[0] != "edge-agent") {
			continue
		}
		args := []string{}
		for _, w := range words[1:] {
			if !subcommandWord.MatchString(w) {
				break
			}
			args = append(args, w)
		}
		out, err := exec.Command(filepath.Join(bin, words[0]), append(args, "--help")...).CombinedOutput()
		if err != nil {
			t.Errorf("README.md:%d: %s %s --help: %v\n%s", c.Line, words[0], strings.Join(args, " "), err, out)
			continue
		}
		for _, f := range flagName.FindAllString(c.Text, -1) {
			if !regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(f) + `\b`).Match(out) {
				t.Errorf("README.md:%d: %s %s has no flag %s (README: %s)", c.Line, words[0], strings.Join(args, " "), f, c.Text)
			}
		}
		checked++
	}
	if checked == 0 {
		t.Error("readmecheck: no synopsis checked: the README lost them, or Extract no longer finds them")
	}
}
