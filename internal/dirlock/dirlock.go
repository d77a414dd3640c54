// Package dirlock keeps two processes off one data directory: the first
// holds an exclusive lock on DIR/.lock (released by the kernel when it
// dies, so a crash never leaves a stale lock), and the second is told at
// once who holds it instead of timing out on a database file.
package dirlock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ErrLocked is wrapped by Acquire when another process holds the lock.
var ErrLocked = errors.New("dirlock: data directory in use")

// Lock is a held directory lock.
type Lock struct {
	f *os.File
}

// Acquire locks dir for the program named by who ("fleetd"). It does not
// wait: a held lock is an error wrapping ErrLocked that names the holder.
func Acquire(dir, who string) (*Lock, error) {
	path := filepath.Join(dir, ".lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("dirlock: %w", err)
	}
	if err := tryLock(f); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, errWouldBlock) {
			h := strings.TrimSpace(string(holder))
			if h == "" {
				h = "another process"
			}
			return nil, fmt.Errorf("%w: %s is locked by %s; stop it or use another data directory", ErrLocked, dir, h)
		}
		return nil, fmt.Errorf("dirlock: lock %s: %w", path, err)
	}
	host, _ := os.Hostname()
	info := fmt.Sprintf("%s (pid %d on %s, since %s)\n", who, os.Getpid(), host, time.Now().UTC().Format(time.RFC3339))
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(info), 0)
	}
	return &Lock{f: f}, nil
}

// Release unlocks and closes. The file stays (removing it would race with
// a process that has just opened it).
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	l.f.Truncate(0)
	err := l.f.Close() // closing drops the lock
	l.f = nil
	return err
}
