package operator

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PostgresTickets is a TicketOffice in PostgreSQL (table live_tickets,
// migration 00006), for replicas behind one load balancer: a ticket
// issued by one replica is redeemed by any, and by one only (DELETE ...
// RETURNING). Expiry uses the issuing replica's clock (Options.Now), so
// replicas' clocks should agree to well within the TTL. MaxTickets bounds
// the tickets outstanding across replicas, give or take the issues racing
// at that moment. It is safe for concurrent use; the pool stays the
// caller's.
type PostgresTickets struct {
	pool   *pgxpool.Pool
	ttl    time.Duration
	now    func() time.Time
	closed atomic.Bool
}

var _ TicketOffice = (*PostgresTickets)(nil)

// OpenPostgresTickets returns the ticket office in the database of pool,
// whose schema database.Open has migrated; tickets live ttl (0: TicketTTL).
func OpenPostgresTickets(ctx context.Context, pool *pgxpool.Pool, ttl time.Duration, o Options) (*PostgresTickets, error) {
	if _, err := pool.Exec(ctx, `SELECT 1 FROM live_tickets LIMIT 0`); err != nil {
		return nil, fmt.Errorf("operator: open postgres tickets: %w", err)
	}
	if ttl <= 0 {
		ttl = TicketTTL
	}
	return &PostgresTickets{pool: pool, ttl: ttl, now: o.withDefaults().Now}, nil
}

// Issue implements TicketOffice. It purges expired tickets first.
func (p *PostgresTickets) Issue(ctx context.Context, id Identity) (string, time.Time, error) {
	if p.closed.Load() {
		return "", time.Time{}, ErrClosed
	}
	tk, h := newTicket()
	now := pgTime(p.now())
	exp := now.Add(p.ttl)
	// One statement: the purge and the count see the same snapshot, and
	// the count leaves the expired rows out either way.
	tag, err := p.pool.Exec(ctx, `WITH purged AS (DELETE FROM live_tickets WHERE expires_at <= $5)
		INSERT INTO live_tickets (hash, name, role, expires_at)
		SELECT $1, $2, $3, $4 WHERE (SELECT count(*) FROM live_tickets WHERE expires_at > $5) < $6`,
		h[:], id.Name, string(id.Role), exp, now, MaxTickets)
	switch {
	case err != nil:
		return "", time.Time{}, fmt.Errorf("operator: issue ticket: %w", err)
	case tag.RowsAffected() == 0:
		return "", time.Time{}, ErrTooManyTickets
	}
	return tk, exp, nil
}

// Redeem implements TicketOffice.
func (p *PostgresTickets) Redeem(ctx context.Context, tk string) (Identity, error) {
	if p.closed.Load() {
		return Identity{}, ErrClosed
	}
	h := sha256.Sum256([]byte(tk))
	var id Identity
	var exp time.Time
	err := p.pool.QueryRow(ctx, `DELETE FROM live_tickets WHERE hash = $1 RETURNING name, role, expires_at`, h[:]).Scan(&id.Name, &id.Role, &exp)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return Identity{}, ErrBadTicket
	case err != nil:
		return Identity{}, fmt.Errorf("operator: redeem ticket: %w", err)
	case !p.now().Before(exp):
		return Identity{}, ErrBadTicket
	}
	return id, nil
}

// Close makes later calls fail; the pool stays open. It is safe to call twice.
func (p *PostgresTickets) Close() error {
	p.closed.Store(true)
	return nil
}
