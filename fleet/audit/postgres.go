package audit

import (
	"context"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Postgres is a Log in PostgreSQL (table audit_entries, migration 00006),
// one log for every fleetd replica on the database; Record returns once
// the entry is committed. IDs come from an identity column: replicas
// recording at once may commit a smaller ID after a larger one, so a page
// read at that moment can miss an entry that a later read shows. It is
// safe for concurrent use; the pool stays the caller's.
type Postgres struct {
	pool   *pgxpool.Pool
	opts   Options
	closed atomic.Bool
}

var _ Log = (*Postgres)(nil)

// OpenPostgres returns the log in the database of pool, whose schema
// database.Open has migrated.
func OpenPostgres(ctx context.Context, pool *pgxpool.Pool, o Options) (*Postgres, error) {
	if _, err := pool.Exec(ctx, `SELECT 1 FROM audit_entries LIMIT 0`); err != nil {
		return nil, fmt.Errorf("audit: open postgres: %w", err)
	}
	return &Postgres{pool: pool, opts: o.withDefaults()}, nil
}

// Record implements Log.
func (p *Postgres) Record(ctx context.Context, e Entry) (Entry, error) {
	e, err := prepare(e, p.opts.Now)
	if err != nil {
		return e, err
	}
	if p.closed.Load() {
		return e, ErrClosed
	}
	e.Time = e.Time.Truncate(time.Microsecond) // what timestamptz keeps
	err = p.pool.QueryRow(ctx, `INSERT INTO audit_entries (time, operator, role, action, target, detail, outcome, status, error)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id`,
		e.Time, e.Operator, e.Role, e.Action, e.Target, e.Detail, e.Outcome, e.Status, e.Error).Scan(&e.ID)
	if err != nil {
		return e, fmt.Errorf("audit: record: %w", err)
	}
	return e, nil
}

// List implements Log.
func (p *Postgres) List(ctx context.Context, q Query) ([]Entry, error) {
	n, err := q.limit()
	if err != nil {
		return nil, err
	}
	if p.closed.Load() {
		return nil, ErrClosed
	}
	before := int64(math.MaxInt64)
	if q.Before > 0 && q.Before <= math.MaxInt64 {
		before = int64(q.Before)
	}
	rows, err := p.pool.Query(ctx, `SELECT id, time, operator, role, action, target, detail, outcome, status, error
		FROM audit_entries WHERE id < $1 ORDER BY id DESC LIMIT $2`, before, n)
	if err != nil {
		return nil, fmt.Errorf("audit: list: %w", err)
	}
	defer rows.Close()
	out := []Entry{}
	for rows.Next() {
		var e Entry
		if err := rows.Scan(&e.ID, &e.Time, &e.Operator, &e.Role, &e.Action, &e.Target, &e.Detail, &e.Outcome, &e.Status, &e.Error); err != nil {
			return nil, fmt.Errorf("audit: list: %w", err)
		}
		e.Time = e.Time.UTC()
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit: list: %w", err)
	}
	return out, nil
}

// Close makes later calls return ErrClosed; the pool stays open. It is
// safe to call twice.
func (p *Postgres) Close() error {
	p.closed.Store(true)
	return nil
}
