package slot

import (
	"bytes"
	"os"
)

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

// FromEnv returns the slots and the slot this process runs from, as set by
// the launcher in EnvDataDir and EnvSlot; ok is false when the process was
// not started by the launcher.
func FromEnv() (s *Slots, slot string, ok bool, err error) {
	dir, slot := os.Getenv(EnvDataDir), os.Getenv(EnvSlot)
	if dir == "" || (slot != A && slot != B) {
		return nil, "", false, nil
	}
	s, err = Open(dir)
	if err != nil {
		return nil, "", false, err
	}
	return s, slot, true, nil
}

// CommitRunning is what the agent calls once it has connected to the fleet
// and reported healthy: it commits the trial of the slot it runs from, if
// any, and returns the outcome to report (ok false when there was nothing
// to commit or the agent does not run under the launcher).
func CommitRunning() (o Outcome, ok bool, err error) {
	s, slot, under, err := FromEnv()
	if err != nil || !under {
		return Outcome{}, false, err
	}
	return s.Commit(slot)
}
