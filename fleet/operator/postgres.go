package operator

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Postgres is a Store in PostgreSQL (table operator_tokens, migration
// 00006), shared by every fleetd replica on the database: a token made
// through one authenticates on all. It keeps the token's SHA-256 only and
// writes LastUsed at most once a minute per token. It is safe for
// concurrent use; the pool stays the caller's.
type Postgres struct {
	pool   *pgxpool.Pool
	opts   Options
	closed atomic.Bool
}

var _ Store = (*Postgres)(nil)

// OpenPostgres returns the store in the database of pool, whose schema
// database.Open has migrated.
func OpenPostgres(ctx context.Context, pool *pgxpool.Pool, o Options) (*Postgres, error) {
	if _, err := pool.Exec(ctx, `SELECT 1 FROM operator_tokens LIMIT 0`); err != nil {
		return nil, fmt.Errorf("operator: open postgres: %w", err)
	}
	return &Postgres{pool: pool, opts: o.withDefaults()}, nil
}

// pgTime is t as PostgreSQL keeps it: UTC, to the microsecond.
func pgTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// Create implements Store.
func (p *Postgres) Create(ctx context.Context, name string, role Role) (string, Token, error) {
	if err := checkCreate(name, role); err != nil {
		return "", Token{}, err
	}
	if p.closed.Load() {
		return "", Token{}, ErrClosed
	}
	tok, h := newToken()
	t := Token{Name: name, Role: role, Created: pgTime(p.opts.Now())}
	tag, err := p.pool.Exec(ctx, `INSERT INTO operator_tokens (hash, name, role, created_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (name) DO NOTHING`, h[:], name, string(role), t.Created)
	switch {
	case err != nil:
		return "", Token{}, wrap("create", err)
	case tag.RowsAffected() == 0:
		return "", Token{}, fmt.Errorf("%w: %s", ErrExists, name)
	}
	return tok, t, nil
}

// Authenticate implements Store. It writes the token's LastUsed when
// that is a minute old or more.
func (p *Postgres) Authenticate(ctx context.Context, tok string) (Identity, error) {
	if p.closed.Load() {
		return Identity{}, ErrClosed
	}
	if !plausible(tok) {
		return Identity{}, ErrUnknownToken
	}
	h := hashToken(tok)
	var id Identity
	var used *time.Time
	err := p.pool.QueryRow(ctx, `SELECT name, role, last_used FROM operator_tokens WHERE hash = $1`, h[:]).Scan(&id.Name, &id.Role, &used)
	if errors.Is(err, pgx.ErrNoRows) {
		return Identity{}, ErrUnknownToken
	}
	if err != nil {
		return Identity{}, wrap("authenticate", err)
	}
	now := p.opts.Now()
	if used == nil || now.Sub(*used) >= usedEvery {
		// The condition keeps replicas racing on one token from moving it back.
		_, err := p.pool.Exec(ctx, `UPDATE operator_tokens SET last_used = $2
			WHERE hash = $1 AND (last_used IS NULL OR last_used < $2)`, h[:], now.UTC().Truncate(usedEvery))
		if err != nil {
			return Identity{}, wrap("authenticate", err)
		}
	}
	return id, nil
}

// List implements Store.
func (p *Postgres) List(ctx context.Context) ([]Token, error) {
	if p.closed.Load() {
		return nil, ErrClosed
	}
	rows, err := p.pool.Query(ctx, `SELECT name, role, created_at, last_used FROM operator_tokens ORDER BY name`)
	if err != nil {
		return nil, wrap("list", err)
	}
	out := []Token{}
	for rows.Next() {
		var t Token
		var used *time.Time
		if err := rows.Scan(&t.Name, &t.Role, &t.Created, &used); err != nil {
			rows.Close()
			return nil, wrap("list", err)
		}
		t.Created = t.Created.UTC()
		if used != nil {
			t.LastUsed = used.UTC()
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("list", err)
	}
	return out, nil
}

// Revoke implements Store.
func (p *Postgres) Revoke(ctx context.Context, name string) error {
	if p.closed.Load() {
		return ErrClosed
	}
	tag, err := p.pool.Exec(ctx, `DELETE FROM operator_tokens WHERE name = $1`, name)
	switch {
	case err != nil:
		return wrap("revoke", err)
	case tag.RowsAffected() == 0:
		return fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	return nil
}

// Close makes later calls return ErrClosed; the pool stays open. It is
// safe to call twice.
func (p *Postgres) Close() error {
	p.closed.Store(true)
	return nil
}
