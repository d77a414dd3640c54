// Package rollout is fleetd's rollout engine: a persisted state machine that
// takes one signed artifact (a model or an agent bundle) to the devices a
// label selector picks — a few canary devices first, then cumulative waves —
// and stops by itself when too many fail.
//
// The engine sees the fleet through two small interfaces: Devices lists the
// devices matching a selector (with their online flag and current versions)
// and Dispatcher sends an api.Command to one device. Job status reports come
// back through HandleJobStatus, which fleetd's ingest calls. Its state is
// kept in a Store: Bolt for one box, Postgres for replicas, where a
// Cluster runs the engine on exactly one replica at a time (see Cluster).
//
// Rules:
//   - The targets are fixed when the rollout is created, sorted by device id;
//     devices already on the artifact's version are skipped (they count as
//     succeeded).
//   - Wave k starts only when every job of the waves before it has ended and
//     the failures are within the limits. The canary is wave 0.
//   - A job queued for an offline device is sent when the device is back; a
//     job still unfinished JobTimeout after its wave started (offline time
//     included) times out and counts as failed.
//   - Two failure limits, checked as each result arrives: MaxFailures counts
//     the failures of the whole rollout; MaxFailureRate applies to each wave
//     alone (see Spec). Past either, the rollout aborts at once: no job not
//     yet sent is sent, of this wave or a later one; those jobs end
//     JobCancelled with the abort's reason (so do a rollback's).
//   - An abort (by the limits or by an operator) sends a rollback command to
//     every device the rollout may have changed, unless the spec's
//     RollbackOnAbort is false; then only the failed devices get one.
//     Rollback does it for every device the rollout touched.
//   - Pause stops new dispatches and wave changes; jobs in flight continue.
//   - A device that no longer matches the selector counts as offline.
//   - A device's reports may arrive out of order (handled concurrently,
//     or split between replicas): a report of an earlier phase than the
//     job's is ignored (counted in edgefleet_rollout_stale_reports_total),
//     a final report ends the job whatever came before, and nothing
//     changes a job that has ended.
//   - Every change of phase is appended to the rollout's Transitions, with
//     who made it and why; nothing there is ever rewritten.
//
// State survives a restart: Open reloads it, and jobs that were in flight
// are sent again (devices ignore a job id they have seen, and report their
// state again).
//
// Rollout ids are r<n>, n from the store's sequence. Job ids are
// <rollout id>-<epoch>-<target index>: the store's epoch, random and made
// with the store, makes job ids of a new database differ from those of an
// old one, which agents remember and would ignore.
package rollout
