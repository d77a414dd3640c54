// Package launcher is the small supervisor that starts the agent from its
// active slot and rolls a trial version back when it crashes, hangs or
// never reports healthy.
//
// Run loops: Slots.Boot picks the slot (rolling a failed trial back first),
// the agent binary is started with the slot in its environment
// (slot.EnvDataDir, slot.EnvSlot), and then:
//
//   - a committed agent that exits is started again after RestartDelay
//     (doubling up to MaxRestartDelay while it keeps failing quickly);
//   - an agent that exits with slot.ExitSwitch has installed an update and is
//     replaced by the new active slot at once;
//   - a trial that exits before committing is recorded (Slots.TrialExited)
//     and started again, and Boot rolls it back once it has used its boots;
//   - a trial still uncommitted at its deadline is stopped (SIGTERM, then
//     SIGKILL after StopTimeout) and rolled back.
//
// The launcher is kept small and is not updated through the slots, so a bad
// agent build cannot take it down with it. Under systemd it is the unit's
// main process.
package launcher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"syscall"
	"time"

	"edgefleet/firmware/slot"
)

// Options configure Run. The zero value is usable.
type Options struct {
	// Args are passed to the agent binary.
	Args []string
	// Env is added to the launcher's environment for the agent.
	Env []string
	// Stdout and Stderr receive the agent's output; nil means the launcher's.
	Stdout, Stderr io.Writer
	// StopTimeout is how long a stopped agent gets between SIGTERM and
	// SIGKILL; 0 means 10s.
	StopTimeout time.Duration
	// Poll is how often a trial's commit is checked; 0 means 500ms.
	Poll time.Duration
	// RestartDelay is the first wait before restarting an agent that
	// exited; 0 means 1s. MaxRestartDelay caps its doubling; 0 means 30s.
	RestartDelay, MaxRestartDelay time.Duration
	// Log receives the launcher's log lines; nil means slog.Default().
	Log *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.StopTimeout <= 0 {
		o.StopTimeout = 10 * time.Second
	}
	if o.Poll <= 0 {
		o.Poll = 500 * time.Millisecond
	}
	if o.RestartDelay <= 0 {
		o.RestartDelay = time.Second
	}
	if o.MaxRestartDelay <= 0 {
		o.MaxRestartDelay = 30 * time.Second
	}
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return o
}

// Run supervises the agent until ctx is done, then stops it and returns
// nil. It returns an error only when the slots cannot be read or the agent
// cannot be started at all.
func Run(ctx context.Context, s *slot.Slots, opt Options) error {
	opt = opt.withDefaults()
	delay := opt.RestartDelay
	for ctx.Err() == nil {
		b, err := s.Boot()
		if err != nil {
			return fmt.Errorf("launcher: %w", err)
		}
		if o := b.RolledBack; o != nil {
			opt.Log.Warn("trial rolled back", "version", o.Version, "job_id", o.JobID, "reason", o.Reason, "slot", b.Slot)
		}
		opt.Log.Info("starting agent", "slot", b.Slot, "version", b.Version, "trial", b.Trial, "boot_count", b.BootCount)
		started := time.Now()
		res, err := runOnce(ctx, s, b, opt)
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
		switch {
		case res.code == slot.ExitSwitch:
			opt.Log.Info("agent asked to switch slots", "slot", b.Slot, "version", b.Version)
			delay = opt.RestartDelay
			continue
		case res.timedOut:
			if _, err := s.Rollback(b.Slot, res.reason); err != nil && !errors.Is(err, slot.ErrNotTrial) {
				return fmt.Errorf("launcher: %w", err)
			}
			opt.Log.Warn("trial rolled back", "version", b.Version, "slot", b.Slot, "reason", res.reason)
			continue
		case b.Trial && !res.committed:
			how := fmt.Sprintf("%s after %v", res.reason, time.Since(started).Round(time.Millisecond))
			if err := s.TrialExited(b.Slot, how); err != nil {
				return fmt.Errorf("launcher: %w", err)
			}
			opt.Log.Warn("trial exited before reporting healthy", "version", b.Version, "slot", b.Slot, "how", how, "boot_count", b.BootCount)
		default:
			opt.Log.Warn("agent exited", "version", b.Version, "slot", b.Slot, "how", res.reason)
		}
		if time.Since(started) > 4*opt.MaxRestartDelay {
			delay = opt.RestartDelay
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(2*delay, opt.MaxRestartDelay)
	}
	return nil
}

type result struct {
	code      int    // exit status, -1 when killed by a signal
	reason    string // "exited with status 3", "killed by signal ..."
	committed bool   // the trial committed while it ran
	timedOut  bool   // the trial passed its deadline and was stopped
}

func runOnce(ctx context.Context, s *slot.Slots, b slot.Boot, opt Options) (result, error) {
	cmd := exec.Command(b.Path, opt.Args...)
	cmd.Env = append(append(os.Environ(), opt.Env...), slot.EnvDataDir+"="+s.Dir(), slot.EnvSlot+"="+b.Slot)
	cmd.Stdout, cmd.Stderr = opt.Stdout, opt.Stderr
	if err := cmd.Start(); err != nil {
		// A slot whose binary cannot even start is a failed start too.
		if b.Trial {
			how := fmt.Sprintf("could not start: %v", err)
			if err := s.TrialExited(b.Slot, how); err != nil {
				return result{}, fmt.Errorf("launcher: %w", err)
			}
			return result{code: -1, reason: how}, nil
		}
		return result{}, fmt.Errorf("launcher: start %s: %w", b.Path, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	var res result
	var poll <-chan time.Time
	var deadline <-chan time.Time
	if b.Trial {
		t := time.NewTicker(opt.Poll)
		defer t.Stop()
		poll = t.C
		dl := time.NewTimer(time.Until(b.Deadline))
		defer dl.Stop()
		deadline = dl.C
	}
	checkCommitted := func() {
		if st, err := s.State(); err == nil && (st.Active != b.Slot || !st.Trial) {
			res.committed = true
			poll, deadline = nil, nil
			opt.Log.Info("trial committed", "slot", b.Slot, "version", b.Version)
		}
	}
	var err error
wait:
	for {
		select {
		case err = <-done:
			break wait
		case <-poll:
			checkCommitted()
		case <-deadline:
			if checkCommitted(); res.committed {
				continue
			}
			res.timedOut = true
			res.reason = fmt.Sprintf("not healthy within %v of its first start (hung or never connected)", b.Window)
			err = stop(cmd, done, opt.StopTimeout)
			break wait
		case <-ctx.Done():
			err = stop(cmd, done, opt.StopTimeout)
			break wait
		}
	}
	if b.Trial && !res.committed && !res.timedOut {
		checkCommitted()
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		res.code = 0
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	default:
		return result{}, fmt.Errorf("launcher: wait: %w", err)
	}
	if !res.timedOut {
		res.reason = describe(cmd.ProcessState)
	}
	return res, nil
}

// describe says how a process ended.
func describe(ps *os.ProcessState) string {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return "killed by signal " + ws.Signal().String()
	}
	return fmt.Sprintf("exited with status %d", ps.ExitCode())
}

// stop sends SIGTERM, then SIGKILL after timeout, and returns Wait's error.
func stop(cmd *exec.Cmd, done <-chan error, timeout time.Duration) error {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		return err
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		return <-done
	}
}
