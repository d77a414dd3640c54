// Package firmware updates the agent binary itself from the fleet: it takes a
// firmware_update command, downloads the agent bundle, installs it into the
// inactive A/B slot on trial (edgefleet/firmware/slot) and asks for a
// restart; once the new version has connected and reported healthy, it
// commits the trial and reports every finished trial (succeeded, or rolled
// back by the launcher with the reason) to the fleet.
//
// The agent wires it in three places:
//
//	u, _ := firmware.New(firmware.Options{...})       // at start, under edge-launcher
//	err := u.Handle(ctx, cmd)                         // cmd.Kind == api.CommandFirmwareUpdate
//	if errors.Is(err, firmware.ErrRestart) { os.Exit(slot.ExitSwitch) }
//	u.Healthy(ctx)                                    // once connected and healthy
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
	"net/http"
	"strings"
	"time"

	"edgefleet/firmware/bundle"
	"edgefleet/firmware/slot"
	"edgefleet/fleet/api"
	"edgefleet/models/manifest"
)

// ErrRestart is returned by Handle after a successful install: the agent
// must exit with slot.ExitSwitch so the launcher starts the new slot.
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
	// DeviceID and Token authenticate artifact downloads (HTTP basic).
	DeviceID, Token string
	// Report sends a job state to the fleet (required).
	Report func(ctx context.Context, s api.JobStatus) error
	// HTTP downloads artifacts; nil means a client with no overall timeout.
	HTTP *http.Client
	// MaxBoots is how many starts a trial gets; 0 means slot.DefaultMaxBoots.
	MaxBoots int
	// Log receives log lines; nil means slog.Default().
	Log *slog.Logger
}

// Updater handles firmware commands. It is safe for concurrent use.
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
	if opt.HTTP == nil {
		opt.HTTP = &http.Client{}
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

// Handle runs a firmware_update command: download, check, install on trial.
// It reports each state; on success it returns ErrRestart, on failure the
// reason (also reported as failed). A bundle that fails its checks never
// reaches the inactive slot.
func (u *Updater) Handle(ctx context.Context, c api.Command) error {
	if c.Kind != api.CommandFirmwareUpdate || c.Artifact == nil || c.Artifact.Kind != manifest.KindFirmware {
		return fmt.Errorf("firmware: handle: command %s is not a firmware update", c.Kind)
	}
	err := u.install(ctx, c)
	if err != nil {
		u.report(ctx, c.JobID, api.JobFailed, err.Error())
		return err
	}
	u.report(ctx, c.JobID, api.JobHealthCheck, "restarting into the new version")
	return ErrRestart
}

func (u *Updater) install(ctx context.Context, c api.Command) error {
	a := c.Artifact
	h := bundle.Header{Manifest: a.Manifest, Sig: a.Sig, KeyID: a.KeyID}
	// Refuse before downloading what cannot be installed.
	m, err := bundle.Check(u.opt.Keys, h, u.opt.Target)
	if err != nil {
		return fmt.Errorf("firmware: %w", err)
	}
	if m.SHA256 != a.SHA256 || m.Version != a.Version {
		return fmt.Errorf("firmware: %w: command names %s@%s, manifest %s@%s", manifest.ErrMismatch, a.Version, a.SHA256, m.Version, m.SHA256)
	}
	u.report(ctx, c.JobID, api.JobDownloading, "")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.URL, nil)
	if err != nil {
		return fmt.Errorf("firmware: download: %w", err)
	}
	req.SetBasicAuth(u.opt.DeviceID, u.opt.Token)
	resp, err := u.opt.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("firmware: download: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("firmware: download: %s: %s", resp.Status, b)
	}
	u.report(ctx, c.JobID, api.JobInstalling, "")
	window := time.Duration(c.HealthWindowS * float64(time.Second))
	if _, err := u.opt.Slots.Install(ctx, h, resp.Body, slot.InstallOptions{Keys: u.opt.Keys, Target: u.opt.Target,
		JobID: c.JobID, Window: window, MaxBoots: u.opt.MaxBoots}); err != nil {
		return fmt.Errorf("firmware: %w", err)
	}
	u.opt.Log.Info("firmware: installed on trial", "job_id", c.JobID, "version", m.Version)
	return nil
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
