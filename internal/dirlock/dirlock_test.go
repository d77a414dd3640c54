package dirlock

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestAcquireTwice(t *testing.T) {
	dir := t.TempDir()
	l, err := Acquire(dir, "fleetd")
	if err != nil {
		t.Fatal(err)
	}
	// flock locks belong to the open file description: a second open in
	// this process conflicts like another process would.
	_, err = Acquire(dir, "fleetd")
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "fleetd (pid ") || !strings.Contains(err.Error(), dir) {
		t.Fatalf("second Acquire: %v", err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	l2, err := Acquire(dir, "fleetd")
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	l2.Release()
}

// TestDeadHolder: a process that dies holding the lock does not leave it held.
func TestDeadHolder(t *testing.T) {
	if os.Getenv("DIRLOCK_CHILD") != "" {
		if _, err := Acquire(os.Getenv("DIRLOCK_CHILD"), "child"); err != nil {
			os.Exit(3)
		}
		os.Stdout.WriteString("locked\n")
		select {}
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestDeadHolder$")
	cmd.Env = append(os.Environ(), "DIRLOCK_CHILD="+dir)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 7)
	if _, err := out.Read(buf); err != nil || string(buf) != "locked\n" {
		t.Fatalf("child: %q %v", buf, err)
	}
	if _, err := Acquire(dir, "parent"); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "child (pid") {
		t.Fatalf("while the child holds it: %v", err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	l, err := Acquire(dir, "parent")
	if err != nil {
		t.Fatalf("after the holder was killed: %v", err)
	}
	l.Release()
}
