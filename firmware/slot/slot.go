// Package slot keeps two slots (A/B) for the agent binary in a data
// directory, with a small state file saying which one runs, whether it is
// on trial, and how its trial ended.
//
// Layout of the data directory (everything else in it, such as the spool
// and the current model, belongs to the agent and is never touched here, so
// it survives every switch in both directions):
//
//	state.json          State, replaced atomically (temp file, fsync, rename, fsync dir)
//	state.lock          flock(2) taken around every read-modify-write
//	slots/a/edge-agent  slot A's binary
//	slots/b/edge-agent  slot B's binary
//	slots/.incoming-*   a bundle's payload while it is checked, before it becomes a slot
//
// The life of an update, like Mender's uncommitted state:
//
//  1. The running, committed agent calls Install: the bundle is checked (signature,
//     platform, config schema), its payload staged and checked (ELF machine,
//     length, sha256) and only then renamed into the inactive slot, read back
//     and hashed again. The inactive slot becomes active, on trial.
//     The agent then exits with ExitSwitch.
//  2. The launcher calls Boot before each start: a trial's boot count goes up,
//     and its deadline is set on its first boot. Past MaxBoots boots, or past
//     the deadline, Boot rolls back to the previous slot instead.
//  3. The new agent calls Commit once it has connected and reported healthy:
//     the trial ends and the outcome (succeeded) waits to be reported.
//     A launcher that sees the trial exit before that (TrialExited), or pass
//     its deadline, rolls back (Rollback) and records why.
//  4. Whichever version runs next reports the outcome to the fleet (Pending,
//     Reported): api.JobStatus succeeded, or rolled_back with the reason.
//
// Slots is safe for concurrent use by several goroutines and processes
// (the launcher and the agent): every method reads the state file under the
// lock and writes it back before unlocking.
package slot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"edgefleet/firmware/bundle"
	"edgefleet/fleet/api"
	"edgefleet/internal/atomicfile"
	"edgefleet/models/manifest"
)

// Slot names.
const (
	A = "a"
	B = "b"
)

// BinaryName is the file name of the agent binary in each slot.
const BinaryName = "edge-agent"

// ExitSwitch is the exit status with which an agent that has installed an
// update asks the launcher to start the (new) active slot now. It is not
// counted as a failed start.
const ExitSwitch = 75

// Environment the launcher sets for the agent it starts.
const (
	EnvDataDir = "EDGEFLEET_FIRMWARE_DIR"  // the data directory
	EnvSlot    = "EDGEFLEET_FIRMWARE_SLOT" // the slot the process runs from
)

// Defaults for InstallOptions.
const (
	DefaultMaxBoots = 3
	DefaultWindow   = 5 * time.Minute
)

// Errors returned (wrapped) by Slots. Test with errors.Is.
var (
	// ErrNoState means the data directory has no state yet: Seed it.
	ErrNoState = errors.New("slot: no state (not seeded)")
	// ErrTrial means a trial is in progress; a second update waits for it.
	ErrTrial = errors.New("slot: a trial is in progress")
	// ErrNotTrial means there is no trial to commit or roll back.
	ErrNotTrial = errors.New("slot: no trial in progress")
	// ErrNotActive means the caller does not run from the active slot.
	ErrNotActive = errors.New("slot: caller is not the active slot")
	// ErrNoPrevious means there is no previous slot to go back to.
	ErrNoPrevious = errors.New("slot: no previous slot")
	// ErrVerify means a slot's binary does not read back as installed.
	ErrVerify = errors.New("slot: binary does not read back as installed")
	// ErrCorrupt means the state file cannot be read.
	ErrCorrupt = errors.New("slot: state file corrupt")
)

// Info describes the binary in one slot.
type Info struct {
	Version     string    `json:"version"`
	SHA256      string    `json:"sha256"`
	Size        int64     `json:"size"`
	InstalledAt time.Time `json:"installed_at"`
	JobID       string    `json:"job_id,omitempty"` // the fleet job that installed it
	// Committed is true once this binary has run healthy (seeded, or its
	// trial committed); only a committed slot is a place to go back to.
	Committed bool `json:"committed,omitempty"`
}

// Outcome is how a trial ended; it waits in the state until reported.
type Outcome struct {
	JobID   string    `json:"job_id,omitempty"`
	Version string    `json:"version"` // the trial version
	State   string    `json:"state"`   // api.JobSucceeded or api.JobRolledBack
	Reason  string    `json:"reason,omitempty"`
	Time    time.Time `json:"time"`
}

func (o Outcome) same(x Outcome) bool {
	return o.JobID == x.JobID && o.Version == x.Version && o.State == x.State && o.Reason == x.Reason && o.Time.Equal(x.Time)
}

// JobStatus is the report of o for the fleet.
func (o Outcome) JobStatus(deviceID string) api.JobStatus {
	return api.JobStatus{DeviceID: deviceID, JobID: o.JobID, State: o.State, Reason: o.Reason, Time: o.Time.UnixMilli()}
}

// State is the content of state.json.
type State struct {
	Schema   int             `json:"schema"`
	Active   string          `json:"active"`
	Previous string          `json:"previous,omitempty"`
	Slots    map[string]Info `json:"slots"`
	// Trial is true from Install until Commit or Rollback.
	Trial bool `json:"trial"`
	// BootCount counts the trial's starts; MaxBoots is the most allowed.
	BootCount int `json:"boot_count"`
	MaxBoots  int `json:"max_boots,omitempty"`
	// WindowMs is how long the trial has to commit, from its first boot;
	// Deadline is set on that boot.
	WindowMs int64     `json:"window_ms,omitempty"`
	Deadline time.Time `json:"deadline,omitzero"`
	// LastExit is how the trial's last run ended, for the rollback reason.
	LastExit string `json:"last_exit,omitempty"`
	// Outcomes are finished trials not yet reported, oldest first.
	Outcomes []Outcome `json:"outcomes,omitempty"`
}

const stateSchema = 1

func other(s string) string {
	if s == A {
		return B
	}
	return A
}

// Slots is a data directory with A/B slots. See the package doc.
type Slots struct {
	dir string
	now func() time.Time
}

// Open prepares dir (creating it and the slot folders) and returns its
// slots. It does not need a state yet; Seed creates one.
func Open(dir string) (*Slots, error) {
	for _, d := range []string{dir, filepath.Join(dir, "slots", A), filepath.Join(dir, "slots", B)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("slot: open: %w", err)
		}
	}
	return &Slots{dir: dir, now: time.Now}, nil
}

// SetClock replaces time.Now, for tests.
func (s *Slots) SetClock(now func() time.Time) { s.now = now }

// Dir returns the data directory.
func (s *Slots) Dir() string { return s.dir }

// Path returns the binary path of a slot.
func (s *Slots) Path(slot string) string { return filepath.Join(s.dir, "slots", slot, BinaryName) }

// State returns the current state.
func (s *Slots) State() (State, error) {
	var st State
	err := s.locked(func() error {
		var err error
		st, err = s.read()
		return err
	})
	return st, err
}

// Seed installs bin as the committed version in slot A of an empty data
// directory (first installation). It refuses a directory that has a state.
func (s *Slots) Seed(ctx context.Context, bin io.Reader, version string) error {
	return s.locked(func() error {
		if _, err := s.read(); !errors.Is(err, ErrNoState) {
			if err == nil {
				return errors.New("slot: seed: already seeded")
			}
			return fmt.Errorf("slot: seed: %w", err)
		}
		tmp, err := s.stage(func(w io.Writer) error {
			_, err := io.Copy(w, &ctxReader{ctx, bin})
			return err
		})
		if err != nil {
			return fmt.Errorf("slot: seed: %w", err)
		}
		info, err := s.place(tmp, A, "")
		if err != nil {
			return fmt.Errorf("slot: seed: %w", err)
		}
		info.Version, info.Committed = version, true
		return s.write(&State{Schema: stateSchema, Active: A, Slots: map[string]Info{A: info}})
	})
}

// InstallOptions configure Install. The zero value is usable.
type InstallOptions struct {
	// Keys are the pinned signing keys (required).
	Keys manifest.KeySet
	// Target is the device; zero means this process's platform.
	Target bundle.Target
	// JobID is the fleet job, reported with the outcome.
	JobID string
	// Window is how long the trial has from its first boot to commit;
	// 0 means DefaultWindow.
	Window time.Duration
	// MaxBoots is how many starts the trial gets; 0 means DefaultMaxBoots.
	MaxBoots int
}

// Install checks a bundle and its payload, writes the payload to the
// inactive slot and makes that slot active on trial. Nothing is written to
// the inactive slot unless the header checks (signature, kind, platform,
// config schema) and the whole payload checks (ELF machine, length,
// sha256). It returns the installed manifest; the caller then restarts into
// the new slot (exit with ExitSwitch under the launcher).
func (s *Slots) Install(ctx context.Context, h bundle.Header, payload io.Reader, opt InstallOptions) (*manifest.Manifest, error) {
	m, err := bundle.Check(opt.Keys, h, opt.Target)
	if err != nil {
		return nil, fmt.Errorf("slot: install: %w", err)
	}
	if opt.Window <= 0 {
		opt.Window = DefaultWindow
	}
	if opt.MaxBoots <= 0 {
		opt.MaxBoots = DefaultMaxBoots
	}
	err = s.locked(func() error {
		st, err := s.read()
		if err != nil {
			return err
		}
		if st.Trial {
			return fmt.Errorf("%w: version %s in slot %s", ErrTrial, st.Slots[st.Active].Version, st.Active)
		}
		tmp, err := s.stage(func(w io.Writer) error { return bundle.Copy(w, &ctxReader{ctx, payload}, m) })
		if err != nil {
			return err
		}
		target := other(st.Active)
		info, err := s.place(tmp, target, m.SHA256)
		if err != nil {
			return err
		}
		info.Version, info.JobID = m.Version, opt.JobID
		st.Slots[target] = info
		st.Previous, st.Active = st.Active, target
		st.Trial, st.BootCount, st.MaxBoots = true, 0, opt.MaxBoots
		st.WindowMs, st.Deadline, st.LastExit = opt.Window.Milliseconds(), time.Time{}, ""
		return s.write(&st)
	})
	if err != nil {
		return nil, fmt.Errorf("slot: install: %w", err)
	}
	return m, nil
}

// Boot is what the launcher starts.
type Boot struct {
	Slot, Path, Version string
	Trial               bool
	BootCount           int       // of the trial, this start included
	Deadline            time.Time // of the trial
	Window              time.Duration
	// RolledBack is set when Boot rolled the trial back instead.
	RolledBack *Outcome
}

// Boot is called before each start of the agent. It counts a trial's start
// and sets its deadline on the first; a trial past MaxBoots starts or past
// its deadline is rolled back first, and the previous slot is returned.
func (s *Slots) Boot() (Boot, error) {
	var b Boot
	err := s.locked(func() error {
		st, err := s.read()
		if err != nil {
			return err
		}
		now := s.now()
		if st.Trial {
			reason := ""
			switch {
			case st.BootCount >= st.MaxBoots:
				reason = fmt.Sprintf("trial started %d times without reporting healthy", st.BootCount)
				if st.LastExit != "" {
					reason += "; last run " + st.LastExit
				}
			case !st.Deadline.IsZero() && now.After(st.Deadline):
				reason = fmt.Sprintf("not healthy within %v of its first start (hung or never connected)", time.Duration(st.WindowMs)*time.Millisecond)
			}
			if reason != "" {
				o := rollback(&st, reason, now)
				b.RolledBack = &o
			} else {
				st.BootCount++
				if st.Deadline.IsZero() {
					st.Deadline = now.Add(time.Duration(st.WindowMs) * time.Millisecond)
				}
			}
			if err := s.write(&st); err != nil {
				return err
			}
		}
		b.Slot, b.Path, b.Version = st.Active, s.Path(st.Active), st.Slots[st.Active].Version
		b.Trial, b.BootCount, b.Deadline = st.Trial, st.BootCount, st.Deadline
		b.Window = time.Duration(st.WindowMs) * time.Millisecond
		return nil
	})
	if err != nil {
		return Boot{}, fmt.Errorf("slot: boot: %w", err)
	}
	return b, nil
}

// rollback switches st back to its previous slot and records why.
func rollback(st *State, reason string, now time.Time) Outcome {
	failed := st.Slots[st.Active]
	o := Outcome{JobID: failed.JobID, Version: failed.Version, State: api.JobRolledBack, Reason: reason, Time: now.UTC()}
	st.Outcomes = append(st.Outcomes, o)
	st.Active, st.Previous = st.Previous, ""
	st.Trial, st.BootCount, st.Deadline, st.LastExit = false, 0, time.Time{}, ""
	return o
}

// TrialExited records how a run of the trial ended before it committed
// (e.g. "exited with status 3 after 40ms"); the next Boot counts the start
// and puts this in its rollback reason. It is a no-op when slot is not the
// active trial.
func (s *Slots) TrialExited(slot, how string) error {
	return s.update("trial exited", func(st *State) (bool, error) {
		if !st.Trial || st.Active != slot {
			return false, nil
		}
		st.LastExit = how
		return true, nil
	})
}

// Rollback ends the trial of slot and goes back to the previous slot,
// recording reason. It fails with ErrNotTrial when slot is not on trial.
func (s *Slots) Rollback(slot, reason string) (Outcome, error) {
	var o Outcome
	err := s.update("rollback", func(st *State) (bool, error) {
		if !st.Trial || st.Active != slot {
			return false, fmt.Errorf("%w (slot %s)", ErrNotTrial, slot)
		}
		o = rollback(st, reason, s.now())
		return true, nil
	})
	return o, err
}

// Revert goes back to the previous slot of a committed version, on the
// fleet's request (api.CommandRollback). The reverted version's job is
// reported rolled back with reason.
func (s *Slots) Revert(reason string) (Outcome, error) {
	var o Outcome
	err := s.update("revert", func(st *State) (bool, error) {
		if st.Trial {
			o = rollback(st, reason, s.now())
			return true, nil
		}
		prev := other(st.Active)
		p, ok := st.Slots[prev]
		if !ok {
			return false, ErrNoPrevious
		}
		if !p.Committed {
			return false, fmt.Errorf("%w: slot %s holds %s, which never ran healthy", ErrNoPrevious, prev, p.Version)
		}
		cur := st.Slots[st.Active]
		o = Outcome{JobID: cur.JobID, Version: cur.Version, State: api.JobRolledBack, Reason: reason, Time: s.now().UTC()}
		st.Outcomes = append(st.Outcomes, o)
		st.Active, st.Previous = prev, ""
		return true, nil
	})
	return o, err
}

// Commit ends the trial of slot as a success; the agent calls it once it
// has connected to the fleet and reported healthy. It returns the outcome
// to report. Committing a slot that is active and not on trial is a no-op
// (ok false); a slot that is not active gets ErrNotActive.
func (s *Slots) Commit(slot string) (o Outcome, ok bool, err error) {
	err = s.update("commit", func(st *State) (bool, error) {
		if st.Active != slot {
			return false, fmt.Errorf("%w: %s runs, %s is active", ErrNotActive, slot, st.Active)
		}
		if !st.Trial {
			return false, nil
		}
		info := st.Slots[slot]
		info.Committed = true
		st.Slots[slot] = info
		o = Outcome{JobID: info.JobID, Version: info.Version, State: api.JobSucceeded, Time: s.now().UTC()}
		st.Outcomes = append(st.Outcomes, o)
		st.Trial, st.BootCount, st.Deadline, st.LastExit = false, 0, time.Time{}, ""
		ok = true
		return true, nil
	})
	return o, ok, err
}

// Pending returns the trial outcomes not yet reported, oldest first.
func (s *Slots) Pending() ([]Outcome, error) {
	st, err := s.State()
	if err != nil {
		return nil, err
	}
	return st.Outcomes, nil
}

// Reported drops outcome o from the pending ones once the fleet has it.
func (s *Slots) Reported(o Outcome) error {
	return s.update("reported", func(st *State) (bool, error) {
		kept := st.Outcomes[:0]
		for _, x := range st.Outcomes {
			if !x.same(o) {
				kept = append(kept, x)
			}
		}
		changed := len(kept) != len(st.Outcomes)
		st.Outcomes = kept
		return changed, nil
	})
}

// update runs f on the state under the lock and writes it back if f says so.
func (s *Slots) update(op string, f func(*State) (bool, error)) error {
	err := s.locked(func() error {
		st, err := s.read()
		if err != nil {
			return err
		}
		changed, err := f(&st)
		if err != nil || !changed {
			return err
		}
		return s.write(&st)
	})
	if err != nil {
		return fmt.Errorf("slot: %s: %w", op, err)
	}
	return nil
}

func (s *Slots) statePath() string { return filepath.Join(s.dir, "state.json") }

func (s *Slots) read() (State, error) {
	b, err := os.ReadFile(s.statePath())
	if errors.Is(err, os.ErrNotExist) {
		return State{}, ErrNoState
	}
	if err != nil {
		return State{}, err
	}
	var st State
	dec := json.NewDecoder(bytesReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return State{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if st.Schema != stateSchema {
		return State{}, fmt.Errorf("%w: schema %d, want %d", ErrCorrupt, st.Schema, stateSchema)
	}
	if st.Active != A && st.Active != B {
		return State{}, fmt.Errorf("%w: active slot %q", ErrCorrupt, st.Active)
	}
	if _, ok := st.Slots[st.Active]; !ok {
		return State{}, fmt.Errorf("%w: active slot %s has no binary", ErrCorrupt, st.Active)
	}
	if st.Trial && st.Previous != other(st.Active) {
		return State{}, fmt.Errorf("%w: trial in %s without previous slot", ErrCorrupt, st.Active)
	}
	return st, nil
}

func (s *Slots) write(st *State) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(s.statePath(), append(b, '\n'), 0o644)
}

// stage writes a staging file with fill, fsyncs it and returns its path; it
// removes it on error.
func (s *Slots) stage(fill func(io.Writer) error) (string, error) {
	f, err := os.CreateTemp(filepath.Join(s.dir, "slots"), ".incoming-*")
	if err != nil {
		return "", err
	}
	err = fill(f)
	if err == nil {
		err = f.Chmod(0o755)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// place renames a staged file into slot, syncs the folder and reads the
// binary back; wantSHA, when set, must match.
func (s *Slots) place(tmp, slot, wantSHA string) (Info, error) {
	dst := s.Path(slot)
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return Info{}, err
	}
	if err := atomicfile.SyncDir(filepath.Dir(dst)); err != nil {
		return Info{}, err
	}
	sum, size, err := hashFile(dst)
	if err != nil {
		return Info{}, err
	}
	if wantSHA != "" && sum != wantSHA {
		return Info{}, fmt.Errorf("%w: %s has sha256 %s, want %s", ErrVerify, dst, sum, wantSHA)
	}
	return Info{SHA256: sum, Size: size, InstalledAt: s.now().UTC()}, nil
}

func hashFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
