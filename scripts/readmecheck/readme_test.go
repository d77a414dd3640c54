package readmecheck

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"edgefleet/fleet/controller/controllertest"
	"edgefleet/internal/testutil"
)

// Where a command runs: the repository root, or a work dir holding bin/,
// the example config and the test models under the README's names.
const (
	inRepo = iota
	inWork
)

// runCase is a README command the test runs exactly as written.
type runCase struct {
	cmd string
	dir int
	// want are strings the output (stdout and stderr) must contain.
	want []string
	// file, when set, must exist in the work dir afterwards and start with fileWant.
	file, fileWant string
	// after, when set, runs in the same shell after the command (which
	// runs first, unchanged) to show what it did: `complete -p fleetctl`
	// after `source <(fleetctl completion bash)`. Its output counts for want.
	after string
}

// run are the README commands TestREADMECommandsRun runs, in this order
// (later ones use what earlier ones made), with the environment it
// prepares: the binaries built into bin/, fleetctl on PATH, a fleetd
// with simulated devices and EDGEFLEET_SERVER/EDGEFLEET_TOKEN exported.
var run = []runCase{
	{cmd: "make help", dir: inRepo, want: []string{"build", "test", "bench", "lint", "demo", "cross", "clean"}},
	{cmd: "go doc ./agent/spool", dir: inRepo, want: []string{"package spool"}},
	{cmd: "FLEETD_ADMIN_TOKEN=$(openssl rand -hex 16) bin/fleetd --config fleet/cmd/fleetd/fleetd.example.yaml --check-config",
		dir: inWork, want: []string{"config ok"}},
	{cmd: "fleetctl detections query --label person --from -1h --limit 20", dir: inWork, want: []string{"LABEL"}},
	{cmd: "fleetctl detections count --from -24h --bucket 1h", dir: inWork, want: []string{"TOTAL"}},
	{cmd: "fleetctl detections export --format csv --from -24h -o detections.csv", dir: inWork,
		file: "detections.csv", fileWant: "device_id,seq,"},
	{cmd: "edge-agent info --model yolov8n.tflite --profile --profile-top 5", dir: inWork,
		want: []string{"top 5 of 253 operators by time", "by operator type", "CONV_2D"}},
	{cmd: "fleetctl models push yolov8n.tflite --name yolov8n --version 2 --labels coco80.txt", dir: inWork,
		want: []string{"yolov8n@2"}},
	{cmd: "fleetctl models push model.tflite --name yolo-sim --version 2", dir: inWork, want: []string{"yolo-sim@2"}},
	{cmd: "fleetctl rollouts create --model yolo-sim@2 --canary 2 --waves 10%,50%,100% --max-failures 5% --health-window 5s",
		dir: inWork, want: []string{"r1"}},
	{cmd: "fleetctl keys list", dir: inWork, want: []string{"SIGNING"}},
	{cmd: "fleetctl keys export -o fleet.pub", dir: inWork, file: "fleet.pub", fileWant: "-----BEGIN PUBLIC KEY-----"},
	{cmd: "fleetctl keys rotate", dir: inWork, want: []string{"retired"}},
	{cmd: "fleetctl tokens create --name alice --role viewer", dir: inWork, want: []string{"alice (viewer)"}},
	{cmd: "fleetctl devices add box-17 --labels site=a,line=3", dir: inWork, want: []string{""}},
	{cmd: "fleetctl devices revoke box-17", dir: inWork, want: []string{"box-17"}},
	{cmd: "fleetctl devices --help", dir: inWork, want: []string{"devices list", "devices show"}},
	{cmd: "fleetctl help devices list", dir: inWork, want: []string{"usage: fleetctl devices list", "--online"}},
	{cmd: "source <(fleetctl completion bash)", dir: inWork, after: "complete -p fleetctl", want: []string{"-F "}},
	{cmd: "fleetctl rollouts list", dir: inWork, want: []string{"r1", "yolo-sim"}},
	{cmd: "fleetctl rollouts show r1", dir: inWork, want: []string{"r1", "yolo-sim"}},
	{cmd: "fleetctl rollouts create --model yolov8n@2 --canary 1 --waves 100% --max-failures 1 --shadow 10m --min-agreement 0.9 --shadow-sample 1/4 --shadow-cpu 25%",
		dir: inWork, want: []string{"rollout r2", "max failures 1", "shadow 10m0s, min agreement 0.9, 1/4 of frames, 25% of a core"}},
	{cmd: "fleetctl rollouts show r2 --shadow", dir: inWork, want: []string{"rollout r2, shadow 10m0s"}},
}

// simDevices is how many simulated devices the rollout commands target.
const simDevices = 4

func readme(t *testing.T) (root string, cmds []Command) {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	return root, Extract(string(b))
}

// TestREADMECommandsListed fails for a README command that is neither run
// nor excused, and for a list entry the README no longer has.
func TestREADMECommandsListed(t *testing.T) {
	_, cmds := readme(t)
	runs := map[string]bool{}
	for _, r := range run {
		if runs[r.cmd] {
			t.Errorf("readmecheck: %q is twice in run", r.cmd)
		}
		runs[r.cmd] = true
		if _, ok := excused[r.cmd]; ok {
			t.Errorf("readmecheck: %q is both in run and in excused: keep one", r.cmd)
		}
	}
	seen := map[string]bool{}
	for _, c := range cmds {
		seen[c.Text] = true
		if runs[c.Text] || excused[c.Text] != "" {
			continue
		}
		t.Errorf("README.md:%d: no test runs this command and it is not excused:\n\t%s\n"+
			"Add it to run in scripts/readmecheck/readme_test.go (it is then run exactly as written; "+
			"prepare what it needs in TestREADMECommandsRun), or to excused in scripts/readmecheck/lists_test.go "+
			"with the reason, e.g.\n\t%q: synopsis,", c.Line, c.Text, c.Text)
	}
	for cmd := range runs {
		if !seen[cmd] {
			t.Errorf("readmecheck: run lists %q, which README.md no longer has: remove it from run in scripts/readmecheck/readme_test.go", cmd)
		}
	}
	for cmd := range excused {
		if !seen[cmd] {
			t.Errorf("readmecheck: excused lists %q, which README.md no longer has: remove it from scripts/readmecheck/lists_test.go", cmd)
		}
	}
}

// TestREADMECommandsRun runs every command of run, exactly as the README
// writes it, and checks its exit status and output.
func TestREADMECommandsRun(t *testing.T) {
	if testing.Short() {
		t.Skip("readmecheck: builds the binaries")
	}
	root, cmds := readme(t)
	inREADME := map[string]bool{}
	for _, c := range cmds {
		inREADME[c.Text] = true
	}
	for _, tool := range []string{"bash", "make", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			testutil.Need(t, "readmecheck: "+tool+" is not installed")
		}
	}
	work := prepareWork(t, root)
	f := controllertest.Start(t, "services: [{user: sim, password: sim-password}]\n")
	stop := controllertest.StartSim(t, f.MQTT, simDevices, 0)
	t.Cleanup(func() { stop() })
	controllertest.WaitOnline(t, f.API, simDevices)
	env := commandEnv(t, work, "http://"+f.HTTP, controllertest.Token)
	for _, rc := range run {
		if !inREADME[rc.cmd] {
			continue // TestREADMECommandsListed reports it
		}
		dir := root
		if rc.dir == inWork {
			dir = work
		}
		script := rc.cmd
		if rc.after != "" {
			// The command's own status still decides.
			script += "\nstatus=$?; [ $status -eq 0 ] || exit $status\n" + rc.after
		}
		out, err := shell(t, dir, env, script)
		if err != nil {
			t.Errorf("README command %q: %v\n%s", rc.cmd, err, out)
			continue
		}
		for _, w := range rc.want {
			if !strings.Contains(out, w) {
				t.Errorf("README command %q: output lacks %q:\n%s", rc.cmd, w, out)
			}
		}
		if rc.file != "" {
			b, err := os.ReadFile(filepath.Join(work, rc.file))
			if err != nil || !strings.HasPrefix(string(b), rc.fileWant) {
				t.Errorf("README command %q: %s should start with %q: %q, %v", rc.cmd, rc.file, rc.fileWant, b, err)
			}
		}
	}
}

// prepareWork returns a work dir with bin/ holding the binaries, the example config at its README path, and the test models
// under the names the README uses.
func prepareWork(t *testing.T, root string) string {
	t.Helper()
	testdata := os.Getenv("EDGEFLEET_TESTDATA")
	if testdata == "" {
		testdata = filepath.Join(root, "..", "shared", "testdata")
	}
	models := filepath.Join(testdata, "models")
	if _, err := os.Stat(models); err != nil {
		testutil.Need(t, "readmecheck: test models missing (set EDGEFLEET_TESTDATA): "+err.Error())
	}
	work := t.TempDir()
	if err := os.Symlink(binaries(t, root), filepath.Join(work, "bin")); err != nil {
		t.Fatal(err)
	}
	copies := map[string]string{
		"fleet/cmd/fleetd/fleetd.example.yaml": filepath.Join(root, "fleet/cmd/fleetd/fleetd.example.yaml"),
		"yolov8n.tflite":                       filepath.Join(models, "yolov8n_int8.tflite"),
		"coco80.txt":                           filepath.Join(models, "coco80.txt"),
		// A different model: the artifact store refuses the same content twice.
		"model.tflite": filepath.Join(models, "yolo11n_full_integer_quant.tflite"),
	}
	for dst, src := range copies {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		dst = filepath.Join(work, dst)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return work
}

// commandEnv is the environment of the README commands: a fresh HOME (no
// fleetctl.yaml), work/bin first on PATH, the Go caches of this process
// kept, and fleetctl pointed at the test's fleetd.
func commandEnv(t *testing.T, work, server, token string) []string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOCACHE", "GOMODCACHE", "GOPATH").Output()
	if err != nil {
		t.Fatalf("readmecheck: go env: %v", err)
	}
	vals := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(vals) != 3 {
		t.Fatalf("readmecheck: go env printed %q", out)
	}
	home := t.TempDir()
	var env []string
	for _, kv := range os.Environ() {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "HOME", "PATH", "XDG_CONFIG_HOME", "EDGEFLEET_SERVER", "EDGEFLEET_TOKEN", "FLEETD_ADMIN_TOKEN":
		default:
			env = append(env, kv)
		}
	}
	return append(env, "HOME="+home, "PATH="+filepath.Join(work, "bin")+string(os.PathListSeparator)+os.Getenv("PATH"),
		"GOCACHE="+vals[0], "GOMODCACHE="+vals[1], "GOPATH="+vals[2],
		"EDGEFLEET_SERVER="+server, "EDGEFLEET_TOKEN="+token)
}

// shell runs cmd with bash -c in dir and returns its combined output.
func shell(t *testing.T, dir string, env []string, cmd string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	c := exec.CommandContext(ctx, "bash", "-c", cmd)
	c.Dir, c.Env = dir, env
	out, err := c.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (after 60s)", ctx.Err())
	}
	return string(out), err
}
