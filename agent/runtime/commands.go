package runtime

import (
	"context"
	"errors"

	"edgefleet/fleet/api"
)

// errUpdatesDisabled is the reason a model job fails with when no update
// keys are configured.
var errUpdatesDisabled = errors.New("update: updates are disabled on this device (no update.keys configured)")

// forwardCommands hands snapshot requests to the snapshotter, and the
// fleet's other commands to the firmware updater
// (firmware_update, and rollbacks of firmware jobs) or the model update
// executor; with updates disabled it fails each job at once so that the
// fleet does not wait for its timeout. It returns ErrRestart when a new
// agent version must start.
func (r *Runtime) forwardCommands(ctx context.Context) error {
	for {
		var c api.Command
		select {
		case <-ctx.Done():
			return nil
		case c = <-r.link.Commands():
		}
		if c.Kind == api.CommandSnapshot {
			r.snaps.offer(c) // answered off this loop; a full queue drops it
			continue
		}
		handled, err := r.fw.command(ctx, c, r.log)
		if errors.Is(err, ErrRestart) {
			return err
		}
		if handled {
			continue
		}
		if r.updates == nil {
			refuseJob(ctx, r.jobs, c, errUpdatesDisabled, r.log)
			continue
		}
		if err := r.updates.Handle(ctx, c); err != nil {
			r.log.Warn("command refused", "job_id", c.JobID, "kind", c.Kind, "err", err)
		}
	}
}
