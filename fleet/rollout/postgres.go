package rollout

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"edgefleet/fleet/api"
)

// ErrNotLeader is returned by a save of a replica that no longer holds the
// rollout lease, and by operator actions when no replica has held it for a
// while.
var ErrNotLeader = errors.New("rollout: not the rollout engine's lease holder")

// Postgres is the PostgreSQL Store (schema: fleet/database migrations
// 00003 and 00009), shared by fleetd replicas. As a Store it behaves as Bolt does; a
// Cluster adds what replicas need on top of it: reads of the stored state,
// and the inboxes of job reports and operator actions that the lease holder
// applies. It is safe for concurrent use.
type Postgres struct {
	pool  *pgxpool.Pool
	epoch string
}

var _ Store = (*Postgres)(nil)

// OpenPostgres opens the rollout store in pool's database, whose schema
// database.Open has migrated; the first to open it sets the epoch.
func OpenPostgres(ctx context.Context, pool *pgxpool.Pool) (*Postgres, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("rollout: open: %w", err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO rollout_meta (epoch) VALUES ($1) ON CONFLICT DO NOTHING`, hex.EncodeToString(b[:])); err != nil {
		return nil, fmt.Errorf("rollout: open: %w", err)
	}
	s := &Postgres{pool: pool}
	if err := pool.QueryRow(ctx, `SELECT epoch FROM rollout_meta`).Scan(&s.epoch); err != nil {
		return nil, fmt.Errorf("rollout: open: %w", err)
	}
	return s, nil
}

// Epoch implements Store.
func (s *Postgres) Epoch() string { return s.epoch }

// Load implements Store.
func (s *Postgres) Load(ctx context.Context) ([]*Rollout, error) {
	rows, err := s.pool.Query(ctx, `SELECT doc FROM rollouts`)
	if err != nil {
		return nil, fmt.Errorf("rollout: load: %w", err)
	}
	out, err := scanRollouts(rows)
	if err != nil {
		return nil, fmt.Errorf("rollout: load: %w", err)
	}
	return out, nil
}

func scanRollouts(rows pgx.Rows) ([]*Rollout, error) {
	var out []*Rollout
	var doc []byte
	_, err := pgx.ForEachRow(rows, []any{&doc}, func() error {
		r := &Rollout{}
		if err := json.Unmarshal(doc, r); err != nil {
			return err
		}
		out = append(out, r)
		return nil
	})
	return out, err
}

// Create implements Store.
func (s *Postgres) Create(ctx context.Context, fill func(id string) (*Rollout, error)) (*Rollout, error) {
	var r *Rollout
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var n int64
		if err := tx.QueryRow(ctx, `SELECT nextval('rollout_ids')`).Scan(&n); err != nil {
			return err
		}
		var err error
		if r, err = fill("r" + strconv.FormatInt(n, 10)); err != nil {
			return errFill{err}
		}
		return insertRollout(ctx, tx, r)
	})
	var fe errFill
	if errors.As(err, &fe) {
		return nil, fe.err
	}
	if err != nil {
		return nil, fmt.Errorf("rollout: create: %w", err)
	}
	return r, nil
}

func insertRollout(ctx context.Context, tx pgx.Tx, r *Rollout) error {
	doc, sum, err := encodeRollout(r)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO rollouts (id, doc, summary, sha256, final, created_at) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (id) DO UPDATE SET doc = excluded.doc, summary = excluded.summary, final = excluded.final`,
		r.ID, doc, sum, r.Spec.Artifact.SHA256, r.State.Final(), r.CreatedAt)
	return err
}

func encodeRollout(r *Rollout) (doc, sum []byte, err error) {
	if doc, err = json.Marshal(r); err != nil {
		return nil, nil, err
	}
	sum, err = json.Marshal(r.Summarize())
	return doc, sum, err
}

// Save implements Store.
func (s *Postgres) Save(ctx context.Context, rs ...*Rollout) error { return s.save(ctx, 0, rs) }

// save writes rs in one transaction; with a fence (the backend pid of the
// lease connection) only while that connection still holds the lease.
func (s *Postgres) save(ctx context.Context, fence uint32, rs []*Rollout) error {
	if len(rs) == 0 {
		return nil
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if fence != 0 {
			var held bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'
				AND classid = $1 AND objid = $2 AND objsubid = 2 AND pid = $3 AND granted)`,
				leaseKey1, leaseKey2, int64(fence)).Scan(&held); err != nil {
				return err
			}
			if !held {
				return ErrNotLeader
			}
		}
		for _, r := range rs {
			if err := insertRollout(ctx, tx, r); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, ErrNotLeader) {
		return err
	}
	if err != nil {
		return fmt.Errorf("rollout: save: %w", err)
	}
	return nil
}

// SaveShadow implements Store. It is not fenced: a report is a device's
// measurement, the same whichever replica writes it.
func (s *Postgres) SaveShadow(ctx context.Context, recs ...ShadowRecord) error {
	if len(recs) == 0 {
		return nil
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for _, rec := range recs {
			var latest, final []byte
			var err error
			if rec.Latest != nil {
				if latest, err = json.Marshal(rec.Latest); err != nil {
					return err
				}
			}
			if rec.Final != nil {
				if final, err = json.Marshal(rec.Final); err != nil {
					return err
				}
			}
			if _, err := tx.Exec(ctx, `INSERT INTO rollout_shadow (rollout_id, device_id, job_id, latest, final, updated_at)
				VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (rollout_id, device_id) DO UPDATE SET job_id = excluded.job_id,
				latest = COALESCE(excluded.latest, rollout_shadow.latest), final = COALESCE(excluded.final, rollout_shadow.final),
				updated_at = excluded.updated_at`, rec.RolloutID, rec.DeviceID, rec.JobID, latest, final, rec.UpdatedAt); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("rollout: save shadow reports: %w", err)
	}
	return nil
}

// LoadShadow implements Store.
func (s *Postgres) LoadShadow(ctx context.Context, rolloutID string) ([]ShadowRecord, error) {
	rows, err := s.pool.Query(ctx, `SELECT device_id, job_id, latest, final, updated_at FROM rollout_shadow WHERE rollout_id = $1`, rolloutID)
	if err != nil {
		return nil, fmt.Errorf("rollout: load shadow reports of %s: %w", rolloutID, err)
	}
	var out []ShadowRecord
	var rec ShadowRecord
	var latest, final []byte
	_, err = pgx.ForEachRow(rows, []any{&rec.DeviceID, &rec.JobID, &latest, &final, &rec.UpdatedAt}, func() error {
		r := ShadowRecord{RolloutID: rolloutID, DeviceID: rec.DeviceID, JobID: rec.JobID, UpdatedAt: rec.UpdatedAt.UTC()}
		for _, p := range []struct {
			b   []byte
			out **api.ShadowReport
		}{{latest, &r.Latest}, {final, &r.Final}} {
			if p.b == nil {
				continue
			}
			*p.out = &api.ShadowReport{}
			if err := json.Unmarshal(p.b, *p.out); err != nil {
				return fmt.Errorf("%s: %w", r.DeviceID, err)
			}
		}
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("rollout: load shadow reports of %s: %w", rolloutID, err)
	}
	return out, nil
}

// Close implements Store; the pool is the caller's.
func (s *Postgres) Close() error { return nil }

// get reads one stored rollout.
func (s *Postgres) get(ctx context.Context, id string) (*Rollout, error) {
	rows, err := s.pool.Query(ctx, `SELECT doc FROM rollouts WHERE id = $1`, id)
	if err != nil {
		return nil, fmt.Errorf("rollout: get %s: %w", id, err)
	}
	rs, err := scanRollouts(rows)
	if err != nil {
		return nil, fmt.Errorf("rollout: get %s: %w", id, err)
	}
	if len(rs) == 0 {
		return nil, fmt.Errorf("%w: get %s", ErrNotFound, id)
	}
	return rs[0], nil
}

// list reads every rollout's summary, newest first.
func (s *Postgres) list(ctx context.Context) ([]Summary, error) {
	rows, err := s.pool.Query(ctx, `SELECT summary FROM rollouts ORDER BY created_at DESC, id DESC`)
	if err != nil {
		return nil, fmt.Errorf("rollout: list: %w", err)
	}
	var out []Summary
	var b []byte
	_, err = pgx.ForEachRow(rows, []any{&b}, func() error {
		var sum Summary
		if err := json.Unmarshal(b, &sum); err != nil {
			return err
		}
		out = append(out, sum)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("rollout: list: %w", err)
	}
	return out, nil
}

// inUse lists the unfinished rollouts that send an artifact.
func (s *Postgres) inUse(ctx context.Context, sha256 string) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT id FROM rollouts WHERE sha256 = $1 AND NOT final ORDER BY id`, sha256)
	if err != nil {
		return nil, fmt.Errorf("rollout: in use: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("rollout: in use: %w", err)
	}
	return ids, nil
}

// ids lists every stored rollout id.
func (s *Postgres) ids(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT id FROM rollouts`)
	if err != nil {
		return nil, fmt.Errorf("rollout: ids: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// putReport records a device's job report once per (job, state); a
// repeated one only refreshes progress and reason while not yet applied.
// One that carries a shadow report (the periodic ones share the state
// JobShadow) is queued again even if applied, always under a new n (so
// that the holder, marking applied the n it read, does not mark it); a final
// shadow report has a row of its own (state + finalSuffix), so that it
// does not replace a periodic one not yet applied.
func (s *Postgres) putReport(ctx context.Context, st api.JobStatus) error {
	var shadow []byte
	if st.Shadow != nil {
		var err error
		if shadow, err = json.Marshal(st.Shadow); err != nil {
			return fmt.Errorf("rollout: job status: %w", err)
		}
		if st.Shadow.Final {
			st.State += finalSuffix
		}
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO rollout_reports (job_id, state, device_id, progress, reason, shadow) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (job_id, state) DO UPDATE SET progress = excluded.progress, reason = excluded.reason, shadow = excluded.shadow,
		n = CASE WHEN excluded.shadow IS NOT NULL THEN excluded.n ELSE rollout_reports.n END, applied = false
		WHERE NOT rollout_reports.applied OR excluded.shadow IS NOT NULL`, st.JobID, st.State, st.DeviceID, st.Progress, st.Reason, shadow)
	if err != nil {
		return fmt.Errorf("rollout: job status: %w", err)
	}
	return nil
}

// finalSuffix marks the report row of a final shadow report.
const finalSuffix = "+final"

// report is a queued job report.
type report struct {
	n  int64
	st api.JobStatus
}

// pendingReports returns up to limit reports not yet applied, oldest first.
// It reads every one not applied, not only those after the last read: row
// numbers are taken at insert and rows commit in another order (replicas
// and handlers insert at once), so a row may appear behind one already
// read; skipping it would lose the report for good (a device's report of
// the same job and state again updates that row, keeping its number).
func (s *Postgres) pendingReports(ctx context.Context, limit int) ([]report, error) {
	rows, err := s.pool.Query(ctx, `SELECT n, job_id, state, device_id, progress, reason, shadow FROM rollout_reports
		WHERE NOT applied ORDER BY n LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("rollout: reports: %w", err)
	}
	var out []report
	var r report
	var shadow []byte
	_, err = pgx.ForEachRow(rows, []any{&r.n, &r.st.JobID, &r.st.State, &r.st.DeviceID, &r.st.Progress, &r.st.Reason, &shadow}, func() error {
		q := r
		q.st.State = strings.TrimSuffix(q.st.State, finalSuffix)
		if shadow != nil {
			q.st.Shadow = &api.ShadowReport{}
			if err := json.Unmarshal(shadow, q.st.Shadow); err != nil {
				return fmt.Errorf("job %s: shadow: %w", q.st.JobID, err)
			}
		}
		out = append(out, q)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("rollout: reports: %w", err)
	}
	return out, nil
}

// markApplied marks reports applied, drops their shadow reports (kept in
// rollout_shadow by then; with their samples they are the bulk of a row),
// and forgets those applied more than keep ago.
func (s *Postgres) markApplied(ctx context.Context, ns []int64, keep time.Duration) error {
	if len(ns) == 0 {
		return nil
	}
	if _, err := s.pool.Exec(ctx, `UPDATE rollout_reports SET applied = true, shadow = NULL WHERE n = ANY($1)`, ns); err != nil {
		return fmt.Errorf("rollout: reports: %w", err)
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM rollout_reports WHERE applied AND received_at < now() - $1::interval`,
		fmt.Sprintf("%d seconds", int(keep.Seconds()))); err != nil {
		return fmt.Errorf("rollout: reports: %w", err)
	}
	return nil
}

// queuedAction is an operator action waiting for the lease holder.
type queuedAction struct {
	n  int64
	id string
	a  Action
}

// putAction queues an operator action and returns its number.
func (s *Postgres) putAction(ctx context.Context, id string, a Action) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `INSERT INTO rollout_actions (rollout_id, kind, by_name, reason, device) VALUES ($1, $2, $3, $4, $5) RETURNING n`,
		id, string(a.Kind), a.By, a.Reason, a.Device).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("rollout: %s %s: %w", a.Kind, id, err)
	}
	return n, nil
}

// pendingActions returns the actions not yet done, oldest first.
func (s *Postgres) pendingActions(ctx context.Context) ([]queuedAction, error) {
	rows, err := s.pool.Query(ctx, `SELECT n, rollout_id, kind, by_name, reason, device FROM rollout_actions WHERE NOT done ORDER BY n LIMIT 100`)
	if err != nil {
		return nil, fmt.Errorf("rollout: actions: %w", err)
	}
	var out []queuedAction
	var q queuedAction
	var kind string
	_, err = pgx.ForEachRow(rows, []any{&q.n, &q.id, &kind, &q.a.By, &q.a.Reason, &q.a.Device}, func() error {
		q.a.Kind = ActionKind(kind)
		out = append(out, q)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("rollout: actions: %w", err)
	}
	return out, nil
}

// finishAction writes an action's outcome.
func (s *Postgres) finishAction(ctx context.Context, n int64, sum Summary, aerr error) error {
	var b []byte
	var msg, kind *string
	if aerr != nil {
		m, k := aerr.Error(), ""
		switch {
		case errors.Is(aerr, ErrNotFound):
			k = "not_found"
		case errors.Is(aerr, ErrState):
			k = "state"
		}
		msg, kind = &m, &k
	} else {
		b, _ = json.Marshal(sum)
	}
	if _, err := s.pool.Exec(ctx, `UPDATE rollout_actions SET done = true, summary = $2, err = $3, err_kind = $4 WHERE n = $1`,
		n, b, msg, kind); err != nil {
		return fmt.Errorf("rollout: actions: %w", err)
	}
	return nil
}

// actionResult reads an action's outcome; done is false while it waits.
func (s *Postgres) actionResult(ctx context.Context, n int64) (sum Summary, done bool, err error) {
	var b []byte
	var msg, kind *string
	if err := s.pool.QueryRow(ctx, `SELECT done, summary, err, err_kind FROM rollout_actions WHERE n = $1`, n).Scan(&done, &b, &msg, &kind); err != nil {
		return Summary{}, false, fmt.Errorf("rollout: actions: %w", err)
	}
	switch {
	case !done:
		return Summary{}, false, nil
	case msg != nil:
		return Summary{}, true, remoteError{msg: *msg, kind: *kind}
	}
	if err := json.Unmarshal(b, &sum); err != nil {
		return Summary{}, true, fmt.Errorf("rollout: actions: %w", err)
	}
	return sum, true, nil
}

// remoteError is an action's error as the lease holder returned it.
type remoteError struct{ msg, kind string }

func (e remoteError) Error() string { return e.msg }

func (e remoteError) Unwrap() error {
	switch e.kind {
	case "not_found":
		return ErrNotFound
	case "state":
		return ErrState
	}
	return nil
}
