package runtime

import (
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
)

// ClockOffsetEnv names a file holding a Go duration ("2h", "-90m") that
// shifts the spool's clock (spool times, MaxAge) from the system clock. It
// is a test hook: the soak run (scripts/soak) writes it to step a device's
// clock forwards and backwards while the agent runs, which a test cannot
// do to the machine's own clock. The file is read at most once a second; a
// missing or unreadable file means no offset. Unset, the spool uses
// time.Now.
const ClockOffsetEnv = "EDGEFLEET_CLOCK_OFFSET_FILE"

// offsetClock is time.Now shifted by the duration in a file.
type offsetClock struct {
	path string
	log  *slog.Logger

	mu     sync.Mutex
	read   time.Time // when the file was last read (system clock)
	offset time.Duration
}

// clockFromEnv returns the spool's clock: nil (time.Now) unless
// ClockOffsetEnv is set.
func clockFromEnv(log *slog.Logger) func() time.Time {
	path := os.Getenv(ClockOffsetEnv)
	if path == "" {
		return nil
	}
	log.Warn("spool clock offset from a file (test hook)", "env", ClockOffsetEnv, "path", path)
	c := &offsetClock{path: path, log: log}
	return c.now
}

func (c *offsetClock) now() time.Time {
	sys := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if sys.Sub(c.read) >= time.Second || sys.Before(c.read) {
		c.read = sys
		off := time.Duration(0)
		if b, err := os.ReadFile(c.path); err == nil {
			if d, err := time.ParseDuration(strings.TrimSpace(string(b))); err == nil {
				off = d
			}
		}
		if off != c.offset {
			c.log.Info("spool clock stepped", "offset", off, "was", c.offset)
			c.offset = off
		}
	}
	return sys.Add(c.offset)
}
