package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

const dayUs = 86400 * 1000 * 1000

// partLock is the advisory lock key under which partitions are created and dropped.
const partLock int64 = 0x65667061727473 // "efparts"

func dayOf(us int64) int64 {
	if us < 0 {
		return (us - dayUs + 1) / dayUs
	}
	return us / dayUs
}

func partName(day int64) string {
	return "detections_" + time.UnixMicro(day*dayUs).UTC().Format("20060102")
}

// aheadDays are the partitions kept ready: yesterday to the day after tomorrow.
func aheadDays(now time.Time) []int64 {
	d := dayOf(now.UnixMicro())
	return []int64{d - 1, d, d + 1, d + 2}
}

// backfillDays is how far back a late event still gets its own partition;
// older ones go to detections_default.
const backfillDays = 7

// partitions tracks which day partitions exist (or cannot be created).
type partitions struct {
	mu    sync.Mutex
	known map[int64]bool
	today int64
}

func (p *partitions) load(ctx context.Context, pool *pgxpool.Pool) error {
	rows, err := pool.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'detections'::regclass`)
	if err != nil {
		return fmt.Errorf("store: partitions: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("store: partitions: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	clear(p.known)
	for _, n := range names {
		if t, err := time.Parse("20060102", strings.TrimPrefix(n, "detections_")); err == nil {
			p.known[dayOf(t.UnixMicro())] = true
		}
	}
	return nil
}

// wanted returns the days of a batch, and those ahead of now once a day,
// that need a partition not known yet.
func (p *partitions) wanted(days map[int64]bool, now time.Time) []int64 {
	today := dayOf(now.UnixMicro())
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []int64
	if today != p.today {
		out = aheadDays(now)
	}
	for d := range days {
		if !p.known[d] && d >= today-backfillDays && d <= today+2 {
			out = append(out, d)
		}
	}
	return out
}

// ensure creates the partitions of days that do not exist. A day whose rows
// already sit in detections_default (it arrived when it was out of range)
// keeps them there: that is logged, and the day is not tried again.
func (p *partitions) ensure(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger, days []int64, now time.Time) error {
	if len(days) == 0 {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, d := range days {
		if p.known[d] {
			continue
		}
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, partLock); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s PARTITION OF detections FOR VALUES FROM (%d) TO (%d)`,
				partName(d), d*dayUs, (d+1)*dayUs))
			return err
		})
		switch {
		case isCode(err, "23514"): // check_violation: rows of that day are in the default partition
			log.Warn("store: day stays in detections_default", "day", partName(d), "err", err)
		case err != nil:
			return fmt.Errorf("store: create partition %s: %w", partName(d), err)
		}
		p.known[d] = true
	}
	p.today = dayOf(now.UnixMicro())
	return nil
}

// Retain implements Store; see there. Age retention drops the day
// partitions wholly before the cutoff and deletes older rows from the rest;
// count and size retention drop the oldest days while whole days must go,
// then delete the oldest rows of the next one. Each step is one transaction.
func (s *Postgres) Retain(ctx context.Context, now time.Time) (int, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	if err := s.parts.ensure(ctx, s.pool, s.log, aheadDays(now), now); err != nil {
		return 0, err
	}
	if err := s.retainEvents(ctx, now); err != nil {
		return 0, fmt.Errorf("store: retain analytics: %w", err)
	}
	rt := s.opt.Retention
	total := 0
	if rt.MaxAge > 0 {
		n, err := s.retainAge(ctx, int64(timeKey(now.Add(-rt.MaxAge).UnixMicro())))
		total += n
		if err != nil {
			return total, fmt.Errorf("store: retain: %w", err)
		}
	}
	for rt.MaxEvents > 0 || rt.MaxBytes > 0 {
		n, err := s.retainSize(ctx)
		total += n
		if err != nil {
			return total, fmt.Errorf("store: retain: %w", err)
		}
		if n == 0 {
			break
		}
	}
	if err := s.parts.load(ctx, s.pool); err != nil {
		return total, err
	}
	return total, s.loadTotals(ctx)
}

// retainAge drops what was captured before cutoff (unix µs).
func (s *Postgres) retainAge(ctx context.Context, cutoff int64) (int, error) {
	total := 0
	s.parts.mu.Lock()
	var old []int64
	for d := range s.parts.known {
		if (d+1)*dayUs <= cutoff {
			old = append(old, d)
		}
	}
	s.parts.mu.Unlock()
	for _, d := range old {
		n, err := s.dropDay(ctx, d)
		total += n
		if err != nil {
			return total, err
		}
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		n, err := deleteRows(ctx, tx, `time_us < $1`, cutoff)
		total += n
		if err != nil {
			return err
		}
		return raiseWatermark(ctx, tx, cutoff, "", 0)
	})
	return total, err
}

// dropDay drops the partition of day d, keeping detection_days and the watermark in step.
func (s *Postgres) dropDay(ctx context.Context, d int64) (int, error) {
	var n int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, partLock); err != nil {
			return err
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, partName(d)).Scan(&exists); err != nil || !exists {
			return err
		}
		// Lock out inserts into the day before counting what goes.
		if _, err := tx.Exec(ctx, `LOCK TABLE `+partName(d)+` IN ACCESS EXCLUSIVE MODE`); err != nil {
			return err
		}
		var size int64
		if err := tx.QueryRow(ctx, fmt.Sprintf(`SELECT count(*), coalesce(sum(size), 0) FROM %s`, partName(d))).Scan(&n, &size); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DROP TABLE `+partName(d)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE detection_days SET records = records - $2, bytes = bytes - $3 WHERE day = $1`, d, n, size); err != nil {
			return err
		}
		return raiseWatermark(ctx, tx, (d+1)*dayUs, "", 0)
	})
	s.parts.mu.Lock()
	delete(s.parts.known, d)
	s.parts.mu.Unlock()
	return int(n), err
}

// deleteRows deletes the rows matching cond, keeps detection_days in step
// and returns how many went.
func deleteRows(ctx context.Context, tx pgx.Tx, cond string, args ...any) (int, error) {
	var n int
	err := tx.QueryRow(ctx, `WITH d AS (DELETE FROM detections WHERE `+cond+` RETURNING time_us, size),
		per AS (SELECT time_us / 86400000000 AS day, count(*) AS n, sum(size) AS b FROM d GROUP BY 1),
		u AS (UPDATE detection_days SET records = records - per.n, bytes = bytes - per.b FROM per WHERE detection_days.day = per.day)
		SELECT count(*) FROM d`, args...).Scan(&n)
	return n, err
}

// raiseWatermark moves the retention watermark forward to (t, device, seq).
func raiseWatermark(ctx context.Context, tx pgx.Tx, t int64, device string, seq int64) error {
	_, err := tx.Exec(ctx, `UPDATE detection_watermark SET time_us = $1, device = $2, seq = $3
		WHERE (time_us, device, seq) < ($1, $2, $3)`, t, device, seq)
	return err
}

// retainSize removes the oldest records while there are more records or
// bytes than the retention allows: a whole day when all of it must go,
// else the oldest rows of that day. It returns how many went (0: none over).
func (s *Postgres) retainSize(ctx context.Context) (int, error) {
	rt := s.opt.Retention
	var records, bytes, day, dayRecords, dayBytes int64
	err := s.pool.QueryRow(ctx, `SELECT coalesce(sum(records), 0), coalesce(sum(bytes), 0),
		coalesce((SELECT day FROM detection_days WHERE records > 0 ORDER BY day LIMIT 1), 0) FROM detection_days`).Scan(&records, &bytes, &day)
	if err != nil {
		return 0, err
	}
	overN, overB := int64(0), int64(0)
	if rt.MaxEvents > 0 {
		overN = max(records-rt.MaxEvents, 0)
	}
	if rt.MaxBytes > 0 {
		overB = max(bytes-rt.MaxBytes, 0)
	}
	if overN == 0 && overB == 0 {
		return 0, nil
	}
	if err := s.pool.QueryRow(ctx, `SELECT records, bytes FROM detection_days WHERE day = $1`, day).Scan(&dayRecords, &dayBytes); err != nil {
		return 0, err
	}
	s.parts.mu.Lock()
	own := s.parts.known[day]
	s.parts.mu.Unlock()
	if own && (dayRecords <= overN || dayBytes <= overB) {
		if n, err := s.dropDay(ctx, day); n > 0 || err != nil {
			return n, err
		}
	}
	var n int
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var last struct {
			t, seq int64
			device string
		}
		err := tx.QueryRow(ctx, `WITH v AS (
				SELECT time_us, device, seq, size,
					row_number() OVER w AS n, sum(size) OVER w AS cum
				FROM detections WHERE time_us >= $1 AND time_us < $2
				WINDOW w AS (ORDER BY time_us, device, seq))
			SELECT time_us, device, seq FROM v WHERE n <= $3 OR cum - size < $4
			ORDER BY time_us DESC, device DESC, seq DESC LIMIT 1`,
			day*dayUs, (day+1)*dayUs, overN, overB).Scan(&last.t, &last.device, &last.seq)
		if errors.Is(err, pgx.ErrNoRows) { // the day's counts are stale: nothing is left of it
			_, err = tx.Exec(ctx, `UPDATE detection_days SET records = 0, bytes = 0 WHERE day = $1`, day)
			return err
		}
		if err != nil {
			return err
		}
		n, err = deleteRows(ctx, tx, `(time_us, device, seq) <= ($1, $2, $3) AND time_us >= $4`, last.t, last.device, last.seq, day*dayUs)
		if err != nil {
			return err
		}
		return raiseWatermark(ctx, tx, last.t, last.device, last.seq)
	})
	return n, err
}
