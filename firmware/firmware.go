// Package firmware holds the firmware-specific steps of updating the agent
// binary itself from the fleet: checking a firmware_update command's signed
// bundle manifest against this device before anything is downloaded,
// installing the downloaded payload into the inactive A/B slot on trial
// (edgefleet/firmware/slot), committing the trial once the new version is
// healthy and reporting every finished trial (succeeded, or rolled back by
// the launcher with the reason), and rollbacks of firmware jobs.
//
// Downloading is not here: the agent fetches the payload with the same
// downloader (Range resume, backoff, size cap, credentials, stall timeout)
// and the same job reporter as model updates, between Check and Install:
//
//	m, err := u.Check(cmd)                            // cmd.Kind == api.CommandFirmwareUpdate
//	... download cmd.Artifact (m.Size bytes, sha256 m.SHA256) ...
//	err = u.Install(ctx, cmd, payload)                // then exit with slot.ExitSwitch
//	u.Healthy(ctx)                                    // in the new version, once connected and healthy
//
// The bundle's payload travels as the artifact's bytes; its signed manifest,
// signature and key id travel in the command (api.Artifact).
package firmware

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"edgefleet/firmware/bundle"
	"edgefleet/firmware/slot"
	"edgefleet/fleet/api"
	"edgefleet/models/manifest"
)

// ErrRestart means the active slot changed (Rollback; the agent returns it
// after Install too): the agent must exit with slot.ExitSwitch so the
// launcher starts the new slot.
var ErrRestart = errors.New("firmware: installed; restart into the new slot")

// ErrNotLaunched means the agent does not run under edge-launcher, so it
// cannot update itself.
var ErrNotLaunched = errors.New("firmware: agent not started by edge-launcher")

// Options configure New.
type Options struct {
	// Slots and Slot are the data directory and the slot this process runs
	// from; nil Slots means slot.FromEnv (what edge-launcher sets).
	Slots *slot.Slots
	Slot  string
	// Keys are the pinned signing keys (required).
	Keys manifest.KeySet
	// Target is this device; zero means this process's platform.
	Target bundle.Target
	// DeviceID names this device in the reports of finished trials.
	DeviceID string
	// Report sends a job state to the fleet (required): the agent's job
	// reporter, the same as for model updates.
	Report func(ctx context.Context, s api.JobStatus) error
	// MaxBoots is how many starts a trial gets; 0 means slot.DefaultMaxBoots.
	MaxBoots int
	// Log receives log lines; nil means slog.Default().
	Log *slog.Logger
}

// Updater runs the firmware-specific steps of firmware jobs. It is safe for
// concurrent use.
type Updater struct {
	opt Options
}

// New returns an Updater; it fails with ErrNotLaunched when Slots is nil
// and the process was not started by edge-launcher.
func New(opt Options) (*Updater, error) {
	if opt.Slots == nil {
		s, name, ok, err := slot.FromEnv()
		if err != nil {
			return nil, fmt.Errorf("firmware: %w", err)
		}
		if !ok {
			return nil, ErrNotLaunched
		}
		opt.Slots, opt.Slot = s, name
	}
	if len(opt.Keys) == 0 || opt.Report == nil {
		return nil, errors.New("firmware: Keys and Report are required")
	}
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	return &Updater{opt: opt}, nil
}

func (u *Updater) report(ctx context.Context, job, state, reason string) {
	s := api.JobStatus{DeviceID: u.opt.DeviceID, JobID: job, State: state, Reason: reason, Time: time.Now().UnixMilli()}
	if err := u.opt.Report(ctx, s); err != nil {
		u.opt.Log.Warn("firmware: report", "job_id", job, "state", state, "err", err)
	}
}

// Slots returns the data directory's slots.
func (u *Updater) Slots() *slot.Slots { return u.opt.Slots }

// Check verifies a firmware_update command before its payload is
// downloaded: the bundle manifest's signature, platform and config schema,
// and that the command names what the manifest signs. It returns the
// manifest, whose SHA256 and Size the download must match.
func (u *Updater) Check(c api.Command) (*manifest.Manifest, error) {
	a := c.Artifact
	if c.Kind != api.CommandFirmwareUpdate || a == nil || a.Kind != manifest.KindFirmware {
		return nil, fmt.Errorf("firmware: check: command %s is not a firmware update", c.Kind)
	}
	m, err := bundle.Check(u.opt.Keys, header(a), u.opt.Target)
	if err != nil {
		return nil, fmt.Errorf("firmware: %w", err)
	}
	if m.SHA256 != a.SHA256 || m.Version != a.Version || a.Size != 0 && a.Size != m.Size {
		return nil, fmt.Errorf("firmware: %w: command names %s@%s, manifest %s@%s", manifest.ErrMismatch, a.Version, a.SHA256, m.Version, m.SHA256)
	}
	return m, nil
}

func header(a *api.Artifact) bundle.Header {
	return bundle.Header{Manifest: a.Manifest, Sig: a.Sig, KeyID: a.KeyID}
}

// Install checks the command again and installs payload (the artifact's
// bytes) into the inactive slot on trial, with the command's health window.
// A payload that fails its checks (ELF machine, length, sha256) never
// reaches the slot. On success the agent must exit with slot.ExitSwitch.
func (u *Updater) Install(ctx context.Context, c api.Command, payload io.Reader) error {
	m, err := u.Check(c)
	if err != nil {
		return err
	}
	window := time.Duration(c.HealthWindowS * float64(time.Second))
	if _, err := u.opt.Slots.Install(ctx, header(c.Artifact), payload, slot.InstallOptions{Keys: u.opt.Keys, Target: u.opt.Target,
		JobID: c.JobID, Window: window, MaxBoots: u.opt.MaxBoots}); err != nil {
		return fmt.Errorf("firmware: %w", err)
	}
	u.opt.Log.Info("firmware: installed on trial", "job_id", c.JobID, "version", m.Version)
	return nil
}

// Installed returns the slot a job already installed (the command delivered
// again after the restart it asked for); ok is false when it installed none.
func (u *Updater) Installed(jobID string) (name string, in slot.Info, ok bool) {
	st, err := u.opt.Slots.State()
	if err != nil || jobID == "" {
		return "", slot.Info{}, false
	}
	for name, in := range st.Slots {
		if in.JobID == jobID {
			return name, in, true
		}
	}
	return "", slot.Info{}, false
}

// Healthy is called once the agent has connected to the fleet and is
// healthy: it commits this slot's trial, if any, and reports every finished
// trial not yet reported (this one as succeeded, earlier ones rolled back by
// the launcher with their reason). An outcome whose report fails stays
// pending for the next call.
func (u *Updater) Healthy(ctx context.Context) error {
	if _, _, err := u.opt.Slots.Commit(u.opt.Slot); err != nil {
		return fmt.Errorf("firmware: healthy: %w", err)
	}
	pending, err := u.opt.Slots.Pending()
	if err != nil {
		return fmt.Errorf("firmware: healthy: %w", err)
	}
	for _, o := range pending {
		if o.JobID == "" {
			_ = u.opt.Slots.Reported(o) // a local install: nobody to tell
			continue
		}
		if err := u.opt.Report(ctx, o.JobStatus(u.opt.DeviceID)); err != nil {
			return fmt.Errorf("firmware: healthy: report %s: %w", o.JobID, err)
		}
		if err := u.opt.Slots.Reported(o); err != nil {
			return fmt.Errorf("firmware: healthy: %w", err)
		}
	}
	return nil
}

// rollbackSuffix ends the job id of a rollback command: the id of the job it
// undoes plus this suffix (fleet/rollout.RollbackJobID).
const rollbackSuffix = "-rb"

// Rollback handles an api.CommandRollback. handled is false when the job it
// undoes is not a firmware job on this device (pass the command on to the
// model updater). When the version that job installed is the active one,
// Rollback switches back to the previous slot, reports the rollback job
// succeeded and returns ErrRestart; when the device already runs the
// previous version (the job failed before switching, or the launcher rolled
// it back) it only reports success.
func (u *Updater) Rollback(ctx context.Context, c api.Command) (handled bool, err error) {
	if c.Kind != api.CommandRollback {
		return false, fmt.Errorf("firmware: rollback: command %s is not a rollback", c.Kind)
	}
	orig, ok := strings.CutSuffix(c.JobID, rollbackSuffix)
	if !ok || orig == "" {
		return false, nil
	}
	st, err := u.opt.Slots.State()
	if err != nil {
		return false, fmt.Errorf("firmware: rollback: %w", err)
	}
	active := st.Slots[st.Active]
	switch {
	case active.JobID == orig:
		if _, err := u.opt.Slots.Revert("rolled back by the fleet (job " + c.JobID + ")"); err != nil {
			u.report(ctx, c.JobID, api.JobFailed, err.Error())
			return true, fmt.Errorf("firmware: rollback: %w", err)
		}
		u.report(ctx, c.JobID, api.JobSucceeded, "back to the previous agent version; restarting")
		return true, ErrRestart
	case st.Slots[other(st.Active)].JobID == orig:
		u.report(ctx, c.JobID, api.JobSucceeded, "already on the previous agent version "+active.Version)
		return true, nil
	}
	return false, nil
}

func other(s string) string {
	if s == slot.A {
		return slot.B
	}
	return slot.A
}
