//go:build unix

package slot

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// locked runs f holding an exclusive flock on state.lock, so the launcher
// and the agent never interleave read-modify-writes of the state.
func (s *Slots) locked(f func() error) error {
	lf, err := os.OpenFile(filepath.Join(s.dir, "state.lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("slot: lock: %w", err)
	}
	defer lf.Close()
	for {
		err = syscall.Flock(int(lf.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("slot: lock: %w", err)
	}
	defer syscall.Flock(int(lf.Fd()), syscall.LOCK_UN)
	return f()
}
