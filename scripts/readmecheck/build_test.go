package readmecheck

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var build struct {
	once sync.Once
	dir  string
	err  error
	out  []byte
}

// TestMain removes the binaries the tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

// binaries builds fleetd, fleetctl and edge-agent from root once per test
// binary (with -race when the test has it) and returns their folder.
func binaries(t *testing.T, root string) string {
	t.Helper()
	build.once.Do(func() {
		if build.dir, build.err = os.MkdirTemp("", "readmecheck-bin-"); build.err != nil {
			return
		}
		args := []string{"build", "-o", build.dir + string(filepath.Separator)}
		if raceBuild {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, "./fleet/cmd/fleetd", "./fleet/cmd/fleetctl", "./agent/cmd/edge-agent")...)
		cmd.Dir = root
		build.out, build.err = cmd.CombinedOutput()
	})
	if build.err != nil {
		t.Fatalf("readmecheck: go build: %v\n%s", build.err, build.out)
	}
	return build.dir
}
