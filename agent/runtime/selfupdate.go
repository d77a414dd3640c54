package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"edgefleet/agent"
	"edgefleet/agent/config"
	"edgefleet/agent/link"
	"edgefleet/agent/update"
	"edgefleet/firmware"
	"edgefleet/firmware/slot"
	"edgefleet/fleet/api"
	"edgefleet/models/manifest"
)

// selfUpdate is the firmware side of the agent: under edge-launcher, the
// slots it runs from and, with keys pinned, the updater of its own binary.
type selfUpdate struct {
	u *firmware.Updater
	// off says why firmware_update commands are refused (u nil).
	off error
	// slots and slot are set under edge-launcher, even without keys, so that
	// a trial installed locally (edge-launcher install) is still committed.
	slots *slot.Slots
	slot  string
	// dl downloads bundles, as it does models; jobs reports their states.
	dl   *update.Downloader
	jobs update.Reporter
}

// openFirmware sets up firmware updates from cfg.Firmware and the
// environment edge-launcher gives the agent; jobs reports their states.
func openFirmware(cfg *config.Config, dl *update.Downloader, jobs update.Reporter, log *slog.Logger) (*selfUpdate, error) {
	f := &selfUpdate{dl: dl, jobs: jobs}
	c := cfg.Firmware
	s, name, launched, err := slot.FromEnv()
	if err != nil {
		return nil, fmt.Errorf("firmware: %s %s: %w", slot.EnvDataDir, os.Getenv(slot.EnvDataDir), err)
	}
	if !launched {
		f.off = errors.New("firmware: the agent does not run under edge-launcher, so it cannot update itself")
		if c.DataDir != "" {
			log.Warn("firmware.data_dir is set but the agent was not started by edge-launcher: firmware updates are off", "data_dir", c.DataDir)
		} else {
			log.Debug("not under edge-launcher: firmware updates are off")
		}
		return f, nil
	}
	if c.DataDir != "" && !sameDir(c.DataDir, s.Dir()) {
		return nil, fmt.Errorf("firmware.data_dir %s: edge-launcher runs this agent from %s", c.DataDir, s.Dir())
	}
	f.slots, f.slot = s, name
	if !c.Enabled() {
		f.off = errors.New("firmware: no firmware.keys (or update.keys) configured to verify agent bundles")
		log.Warn("under edge-launcher without keys: firmware updates are refused", "data_dir", s.Dir(), "slot", name)
		return f, nil
	}
	keys, err := manifest.LoadKeySet(c.Keys...)
	if err != nil {
		return nil, fmt.Errorf("firmware.keys: %w", err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("firmware.keys: no public key in %v", c.Keys)
	}
	f.u, err = firmware.New(firmware.Options{
		Slots: s, Slot: name, Keys: keys, DeviceID: cfg.DeviceID,
		Report: jobs.Report, MaxBoots: c.MaxBoots, Log: log.With("component", "firmware"),
	})
	if err != nil {
		return nil, err
	}
	log.Info("firmware updates enabled", "data_dir", s.Dir(), "slot", name, "keys", keys.IDs())
	return f, nil
}

func sameDir(a, b string) bool {
	if filepath.Clean(a) == filepath.Clean(b) {
		return true
	}
	ai, err1 := os.Stat(a)
	bi, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(ai, bi)
}

// command runs c when it is firmware's: a firmware_update, or a rollback of
// a firmware job. handled is false for a command the model executor runs.
func (f *selfUpdate) command(ctx context.Context, c api.Command, log *slog.Logger) (handled bool, err error) {
	switch c.Kind {
	case api.CommandFirmwareUpdate:
		if f.u == nil {
			refuseJob(ctx, f.jobs, c, f.off, log)
			return true, nil
		}
		err := f.handle(ctx, c, log)
		if err != nil && !errors.Is(err, ErrRestart) {
			log.Warn("firmware update failed", "job_id", c.JobID, "err", err) // reported by the updater
			return true, nil
		}
		return true, err
	case api.CommandRollback:
		if f.u == nil {
			return false, nil
		}
		handled, err := f.u.Rollback(ctx, c)
		if errors.Is(err, ErrRestart) {
			log.Info("firmware: rolled back by the fleet", "job_id", c.JobID)
			return true, err
		}
		if handled && err != nil {
			log.Warn("firmware rollback failed", "job_id", c.JobID, "err", err)
		}
		if !handled && err != nil {
			log.Warn("firmware rollback: passing the command on to the model updater", "job_id", c.JobID, "err", err)
		}
		return handled, nil
	}
	return false, nil
}

// handle runs a firmware_update command: the firmware checks, the shared
// download into <data>/download, the install on trial; each state goes out
// through the job reporter. It returns ErrRestart once installed. A job
// that already installed one of the slots (the command delivered again
// after the restart) is not run again: its outcome is reported by
// whenHealthy.
func (f *selfUpdate) handle(ctx context.Context, c api.Command, log *slog.Logger) error {
	if name, in, ok := f.u.Installed(c.JobID); ok {
		log.Info("firmware: job already installed; not running it again", "job_id", c.JobID, "slot", name, "version", in.Version)
		return nil
	}
	err := f.install(ctx, c)
	if err != nil {
		f.report(ctx, api.JobStatus{JobID: c.JobID, State: api.JobFailed, Reason: err.Error()}, log)
		return err
	}
	f.report(ctx, api.JobStatus{JobID: c.JobID, State: api.JobHealthCheck, Reason: "restarting into the new version"}, log)
	return ErrRestart
}

func (f *selfUpdate) install(ctx context.Context, c api.Command) error {
	m, err := f.u.Check(c)
	if err != nil {
		return err
	}
	f.report(ctx, api.JobStatus{JobID: c.JobID, State: api.JobDownloading}, nil)
	dir := filepath.Join(f.slots.Dir(), "download")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("firmware: download: %w", err)
	}
	fetch := update.Fetch{URL: c.Artifact.URL, Part: filepath.Join(dir, m.SHA256+".part"), SHA256: m.SHA256, Size: m.Size}
	if err := f.dl.Download(ctx, fetch); err != nil {
		if update.IsPermanent(err) {
			fetch.Discard()
		} // else a later job for this bundle resumes the partial file
		return err
	}
	defer fetch.Discard()
	f.report(ctx, api.JobStatus{JobID: c.JobID, State: api.JobInstalling}, nil)
	payload, err := os.Open(fetch.Part)
	if err != nil {
		return fmt.Errorf("firmware: %w", err)
	}
	defer payload.Close()
	return f.u.Install(ctx, c, payload)
}

func (f *selfUpdate) report(ctx context.Context, st api.JobStatus, log *slog.Logger) {
	if err := f.jobs.Report(ctx, st); err != nil && log != nil {
		log.Warn("firmware: report", "job_id", st.JobID, "state", st.State, "err", err)
	}
}

// whenHealthy waits until the agent is healthy (the first frame inferred
// and, with a fleet, the link connected), then commits the trial this
// process runs, if any, and reports the finished trials, retrying with
// backoff until the reports are out.
func (f *selfUpdate) whenHealthy(ctx context.Context, l *link.Link, firstFrame <-chan struct{}, log *slog.Logger) {
	if f.slots == nil {
		return
	}
	select {
	case <-ctx.Done():
		return
	case <-firstFrame:
	}
	for delay := time.Second; ; delay = min(2*delay, time.Minute) {
		if l != nil {
			if _, err := l.WaitConnected(ctx); err != nil {
				return
			}
		}
		err := f.commit(ctx, log)
		if err == nil || ctx.Err() != nil {
			return
		}
		log.Warn("firmware: healthy report", "err", err, "retry_in", delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}

// commit commits the trial this process runs and reports finished trials.
func (f *selfUpdate) commit(ctx context.Context, log *slog.Logger) error {
	before, _ := f.slots.State()
	var err error
	if f.u != nil {
		err = f.u.Healthy(ctx)
	} else {
		_, _, err = f.slots.Commit(f.slot)
	}
	if before.Trial && before.Active == f.slot {
		if after, serr := f.slots.State(); serr == nil && !after.Trial {
			log.Info("firmware: healthy; this version is committed", "version", agent.Version, "slot", f.slot)
		}
	}
	return err
}

// refuseJob reports c failed with reason.
func refuseJob(ctx context.Context, jobs update.Reporter, c api.Command, reason error, log *slog.Logger) {
	log.Warn("command refused", "job_id", c.JobID, "kind", c.Kind, "err", reason)
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	st := api.JobStatus{JobID: c.JobID, State: api.JobFailed, Reason: reason.Error(), Time: time.Now().UnixMilli()}
	if err := jobs.Report(pctx, st); err != nil && ctx.Err() == nil {
		log.Warn("job status not sent", "job_id", c.JobID, "err", err)
	}
}
