package rollout

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"edgefleet/fleet/database/dbtest"
	"edgefleet/internal/testutil"
)

const killEnv = "EDGEFLEET_ROLLOUT_KILL_DSN"

// TestClusterKill9: the replica holding the rollout lease is another
// process, killed with SIGKILL while its canary job is in flight. Its
// connections drop with it, the lock with them: the standby takes the
// lease within 15 s, sends the job again and completes the rollout.
func TestClusterKill9(t *testing.T) {
	if dsn := os.Getenv(killEnv); dsn != "" {
		killChild(t, dsn)
		return
	}
	dsn := dbtest.DSN(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestClusterKill9$", "-test.v")
	cmd.Env = append(os.Environ(), killEnv+"="+dsn)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	id := ""
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if r, ok := strings.CutPrefix(sc.Text(), "LEADING "); ok {
			id = r
			break
		}
	}
	if id == "" {
		t.Fatalf("child never led: %v", sc.Err())
	}
	go func() { // drain the rest
		for sc.Scan() {
		}
	}()
	s := newSim(t, 4, "1")
	b := startReplica(t, dsn, s)
	s.mu.Lock()
	s.eng = b.c
	s.mu.Unlock()
	if b.c.Leader() {
		t.Fatal("standby leads while the child holds the lease")
	}
	if r, err := b.c.Get(id); err != nil || len(r.Jobs) != 4 || r.Jobs[0].State != "queued" {
		t.Fatalf("before the kill: %+v, %v", r, err)
	}
	killed := time.Now()
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	testutil.WaitFor(t, "standby takes the lease", 15*time.Second, b.c.Leader)
	t.Logf("standby took over %v after SIGKILL", time.Since(killed).Round(time.Millisecond))
	r := waitRollout(t, b.c, id, "rollout completes", func(r *Rollout) bool { return r.State.Final() })
	if r.State != StateCompleted || r.Summarize().Succeeded != 4 {
		t.Fatalf("rollout %s: %+v", r.State, r.Summarize())
	}
}

// killChild leads, creates a rollout whose canary device holds its job,
// says so on stdout and waits to be killed.
func killChild(t *testing.T, dsn string) {
	s := newSim(t, 4, "1")
	s.set("cam-0000", func(d *simDevice) { d.behave = behaveHold })
	a := startReplica(t, dsn, s)
	s.mu.Lock()
	s.eng = a.c
	s.mu.Unlock()
	testutil.WaitFor(t, "child leads", 10*time.Second, a.c.Leader)
	sum, err := a.c.Create(context.Background(), Spec{Artifact: testArtifact("2"), Canary: 1, Waves: []float64{100}})
	if err != nil {
		t.Fatal(err)
	}
	waitRollout(t, a.c, sum.ID, "canary queued", func(r *Rollout) bool { return r.Jobs[0].State == "queued" })
	fmt.Printf("LEADING %s\n", sum.ID)
	select {} // until SIGKILL
}
