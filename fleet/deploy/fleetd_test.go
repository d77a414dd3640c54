package deploy_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"gopkg.in/yaml.v3"
)

var (
	fleetdOnce sync.Once
	fleetdPath string
	fleetdErr  error
	fleetdDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if fleetdDir != "" {
		os.RemoveAll(fleetdDir)
	}
	os.Exit(code)
}

// fleetdBinary builds fleetd once for the package's tests.
func fleetdBinary(t *testing.T) string {
	t.Helper()
	root := repoRoot(t)
	fleetdOnce.Do(func() {
		if fleetdDir, fleetdErr = os.MkdirTemp("", "deploy-fleetd-"); fleetdErr != nil {
			return
		}
		// go test runs with the go command's directory first in PATH.
		gobin, err := exec.LookPath("go")
		if err != nil {
			fleetdErr = fmt.Errorf("go build fleetd: %w", err)
			return
		}
		fleetdPath = filepath.Join(fleetdDir, "fleetd")
		cmd := exec.Command(gobin, "build", "-o", fleetdPath, "edgefleet/fleet/cmd/fleetd")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fleetdErr = fmt.Errorf("go build fleetd: %v\n%s", err, out)
		}
	})
	if fleetdErr != nil {
		t.Fatal(fleetdErr)
	}
	return fleetdPath
}

var (
	flagsOnce sync.Once
	flagsSet  map[string]bool
)

// fleetdFlags is the set of flags `fleetd --help` lists.
func fleetdFlags(t *testing.T) map[string]bool {
	t.Helper()
	bin := fleetdBinary(t)
	flagsOnce.Do(func() {
		out, _ := exec.Command(bin, "--help").CombinedOutput() // flag's -help exits 0 or 2 depending on the parser
		flagsSet = map[string]bool{"help": true, "h": true}
		for _, m := range regexp.MustCompile(`(?m)^\s+--?([A-Za-z0-9][A-Za-z0-9_.-]*)`).FindAllStringSubmatch(string(out), -1) {
			flagsSet[m[1]] = true
		}
	})
	if len(flagsSet) < 5 || !flagsSet["config"] || !flagsSet["check-config"] {
		t.Fatalf("fleetd --help lists %v: --config and --check-config expected; is the parse of its output broken?", flagsSet)
	}
	return flagsSet
}

// checkFlags checks that every -flag / --flag in args is one fleetd knows.
func checkFlags(known map[string]bool, where string, args []string) []error {
	var errs []error
	for _, a := range args {
		if !strings.HasPrefix(a, "-") || a == "-" || a == "--" {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !known[name] {
			errs = append(errs, fmt.Errorf("%s: fleetd has no flag %s (fleetd --help)", where, a))
		}
	}
	return errs
}

// flagValue is the value of --name in args ("--name v" or "--name=v").
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		n := strings.TrimLeft(a, "-")
		if n == name && i+1 < len(args) && a != n {
			return args[i+1], true
		}
		if v, ok := strings.CutPrefix(n, name+"="); ok && a != n {
			return v, true
		}
	}
	return "", false
}

// checkConfig runs `fleetd --check-config` on a config with the args it is
// deployed with (--config replaced by a temporary copy). Stand-ins make it
// checkable here: every variable a *_env key names is set, and every
// absolute path under /etc/ (a mounted Secret: signing key, certificates)
// becomes an empty file in a temporary directory. When this fleetd has no
// PostgreSQL support yet (no --database flag), a top-level database key is
// taken out and reported with t.Log; once fleetd lists --database, the key
// is checked like every other.
func checkConfig(t *testing.T, where string, cfg []byte, args []string) error {
	t.Helper()
	bin := fleetdBinary(t)
	var doc yaml.Node
	if err := yaml.Unmarshal(cfg, &doc); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return fmt.Errorf("%s: not a YAML mapping", where)
	}
	dir := t.TempDir()
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	if err := standIns(doc.Content[0], "", dir, &env); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	if !fleetdFlags(t)["database"] && dropKey(doc.Content[0], "database") {
		t.Logf("%s: database.url not checked: this fleetd has no --database flag yet (PostgreSQL support not merged); the rest is", where)
	}
	b, err := yaml.Marshal(&doc)
	if err != nil {
		return err
	}
	path := filepath.Join(dir, "fleetd.yaml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return err
	}
	run := []string{"--check-config"}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch n := strings.TrimLeft(a, "-"); {
		case n == "config" && i+1 < len(args):
			i++
		case strings.HasPrefix(n, "config="):
		case n == "check-config":
		default:
			run = append(run, a)
		}
	}
	run = append(run, "--config", path)
	cmd := exec.Command(bin, run...)
	cmd.Env = env
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: fleetd %s: %v\n%s", where, strings.Join(run, " "), err, out)
	}
	return nil
}

// standIns walks a config: keys ending in _env get their variable set in
// env, and /etc/ paths are rewritten into dir and created there.
func standIns(n *yaml.Node, key, dir string, env *[]string) error {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := standIns(n.Content[i+1], n.Content[i].Value, dir, env); err != nil {
				return err
			}
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			if err := standIns(c, key, dir, env); err != nil {
				return err
			}
		}
	case yaml.ScalarNode:
		switch {
		case strings.HasSuffix(key, "_env"):
			*env = append(*env, n.Value+"=stand-in-value-for-deploy-test")
		case strings.HasPrefix(n.Value, "/etc/"):
			p := filepath.Join(dir, n.Value)
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				return err
			}
			if err := os.WriteFile(p, nil, 0o600); err != nil {
				return err
			}
			n.Value = p
		}
	}
	return nil
}

// dropKey removes key from a mapping node and says whether it was there.
func dropKey(m *yaml.Node, key string) bool {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content = slices.Delete(m.Content, i, i+2)
			return true
		}
	}
	return false
}

// fleetdListen is what a fleetd config listens on and connects to.
type fleetdListen struct {
	HTTP struct {
		Listen string `yaml:"listen"`
	} `yaml:"http"`
	Broker struct {
		Listen    string `yaml:"listen"`
		TLSListen string `yaml:"tls_listen"`
		URL       string `yaml:"url"`
		Username  string `yaml:"username"`
		Password  string `yaml:"password"`
	} `yaml:"broker"`
	Database struct {
		URL string `yaml:"url"`
	} `yaml:"database"`
	Devices []struct {
		ID       string `yaml:"id"`
		Password string `yaml:"password"`
	} `yaml:"devices"`
}

// listenPorts maps each port a config listens on to its host part. The
// defaults are fleetd's: http 127.0.0.1:8080, embedded broker
// 127.0.0.1:1883 when there is no broker.url.
func listenPorts(cfg []byte) (map[int]string, *fleetdListen, error) {
	var c fleetdListen
	if err := yaml.Unmarshal(cfg, &c); err != nil {
		return nil, nil, err
	}
	addrs := []string{c.HTTP.Listen, c.Broker.Listen, c.Broker.TLSListen}
	if addrs[0] == "" {
		addrs[0] = "127.0.0.1:8080"
	}
	if c.Broker.URL == "" && c.Broker.Listen == "" && c.Broker.TLSListen == "" {
		addrs[1] = "127.0.0.1:1883"
	}
	ports := map[int]string{}
	for _, a := range addrs {
		if a == "" {
			continue
		}
		host, p, err := net.SplitHostPort(a)
		if err != nil {
			return nil, nil, err
		}
		n, err := strconv.Atoi(p)
		if err != nil {
			return nil, nil, fmt.Errorf("listen %s: %w", a, err)
		}
		ports[n] = host
	}
	return ports, &c, nil
}

// checkPublished checks that each port published from a container is one its
// config listens on, on an address reachable from outside the container.
func checkPublished(where string, listen map[int]string, published []int) []error {
	var errs []error
	for _, p := range published {
		host, ok := listen[p]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("%s: port %d is published but the config listens on %v", where, p, keys(listen)))
		case host != "" && host != "0.0.0.0" && host != "::":
			errs = append(errs, fmt.Errorf("%s: port %d is published but the config listens on %s only, unreachable from outside the container", where, p, host))
		}
	}
	return errs
}

func keys(m map[int]string) []int {
	var out []int
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// containerfile is what the test needs of the Containerfile.
type containerfile struct {
	Expose []int
	Args   []string // ENTRYPOINT[1:] + CMD
	User   string
	From   []string
}

func parseContainerfile(b []byte) (*containerfile, error) {
	var c containerfile
	var entry, cmd []string
	// Join continuation lines, drop comments.
	text := regexp.MustCompile(`\\\n`).ReplaceAllString(string(b), " ")
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		instr, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToUpper(instr) {
		case "FROM":
			c.From = append(c.From, strings.Fields(rest)[0])
		case "USER":
			c.User = rest
		case "EXPOSE":
			for _, f := range strings.Fields(rest) {
				p, err := strconv.Atoi(strings.TrimSuffix(f, "/tcp"))
				if err != nil {
					return nil, fmt.Errorf("EXPOSE %s: %w", f, err)
				}
				c.Expose = append(c.Expose, p)
			}
		case "ENTRYPOINT", "CMD":
			var v []string
			// Exec form only: the final image has no shell to run the shell form.
			if err := yaml.Unmarshal([]byte(rest), &v); err != nil || !strings.HasPrefix(rest, "[") {
				return nil, fmt.Errorf("%s %s: not the exec form [\"...\"] (there is no shell in the image)", instr, rest)
			}
			if strings.ToUpper(instr) == "CMD" {
				cmd = v
			} else {
				entry = v
			}
		}
	}
	if len(entry) == 0 || filepath.Base(entry[0]) != "fleetd" {
		return nil, errors.New("ENTRYPOINT is not fleetd")
	}
	c.Args = append(entry[1:], cmd...)
	return &c, nil
}

func TestContainerfile(t *testing.T) {
	c, err := parseContainerfile(readFile(t, "Containerfile"))
	if err != nil {
		t.Fatal("Containerfile:", err)
	}
	if last := c.From[len(c.From)-1]; last != "scratch" && !strings.HasPrefix(last, "gcr.io/distroless/static") {
		t.Errorf("final stage FROM %s: want scratch or distroless static (no shell)", last)
	}
	if uid, _, _ := strings.Cut(c.User, ":"); uid == "" || uid == "0" || strings.Trim(uid, "0123456789") != "" {
		t.Errorf("USER %q: want a numeric non-root uid (runAsNonRoot can check only numbers)", c.User)
	}
	for _, err := range checkFlags(fleetdFlags(t), "Containerfile ENTRYPOINT/CMD", c.Args) {
		t.Error(err)
	}
	// The image serves the example config's ports as well as the deployments'.
	listen := map[int]string{}
	for _, f := range []string{filepath.Join(repoRoot(t), "fleet/cmd/fleetd/fleetd.example.yaml"), "compose/fleetd-1.yaml"} {
		ports, _, err := listenPorts(readFile(t, f))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for p := range ports {
			listen[p] = ""
		}
	}
	for _, err := range checkPublished("Containerfile EXPOSE", listen, c.Expose) {
		t.Error(err)
	}
}
