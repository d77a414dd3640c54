package enroll

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Postgres is a Store in PostgreSQL (tables enroll_devices and
// enroll_tokens, migration 00007), shared by every fleetd replica on the
// database: a token made through one is redeemed through any, once, and
// a revocation holds on all. Each change is one transaction that locks
// the device's row first. It is safe for concurrent use; the pool stays
// the caller's.
type Postgres struct {
	pool   *pgxpool.Pool
	opts   Options
	closed atomic.Bool
}

var _ Store = (*Postgres)(nil)

// OpenPostgres returns the store in the database of pool, whose schema
// database.Open has migrated.
func OpenPostgres(ctx context.Context, pool *pgxpool.Pool, o Options) (*Postgres, error) {
	if _, err := pool.Exec(ctx, `SELECT 1 FROM enroll_devices, enroll_tokens LIMIT 0`); err != nil {
		return nil, fmt.Errorf("enroll: open postgres: %w", err)
	}
	return &Postgres{pool: pool, opts: o.withDefaults()}, nil
}

// now is the clock as PostgreSQL keeps it: UTC, to the microsecond.
func (p *Postgres) now() time.Time { return p.opts.Now().UTC().Truncate(time.Microsecond) }

// tx runs fn in a transaction unless the store is closed.
func (p *Postgres) tx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	if p.closed.Load() {
		return ErrClosed
	}
	return pgx.BeginFunc(ctx, p.pool, fn)
}

// pgDevice is a row of enroll_devices.
type pgDevice struct {
	labels                   map[string]string
	added, enrolled, revoked *time.Time
	token                    []byte
}

// lockDevice reads id's row FOR UPDATE; ok is false if there is none.
func lockDevice(ctx context.Context, tx pgx.Tx, id string) (d pgDevice, ok bool, err error) {
	err = tx.QueryRow(ctx, `SELECT labels, added_at, enrolled_at, revoked_at, token FROM enroll_devices WHERE id = $1 FOR UPDATE`, id).
		Scan(&d.labels, &d.added, &d.enrolled, &d.revoked, &d.token)
	if errors.Is(err, pgx.ErrNoRows) {
		return d, false, nil
	}
	return d, err == nil, err
}

func (d pgDevice) device(id string) Device {
	out := Device{ID: id, Labels: d.labels}
	for _, f := range []struct {
		dst *time.Time
		src *time.Time
	}{{&out.Added, d.added}, {&out.Enrolled, d.enrolled}, {&out.Revoked, d.revoked}} {
		if f.src != nil {
			*f.dst = f.src.UTC()
		}
	}
	return out
}

// Add implements Store.
func (p *Postgres) Add(ctx context.Context, id string, labels map[string]string) (string, error) {
	if err := checkAdd(id, labels); err != nil {
		return "", err
	}
	tok, h := newToken()
	err := p.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO enroll_devices (id) VALUES ($1) ON CONFLICT DO NOTHING`, id); err != nil {
			return err
		}
		d, _, err := lockDevice(ctx, tx, id)
		if err != nil {
			return err
		}
		if d.revoked != nil {
			return fmt.Errorf("%w: %s", ErrRevoked, id)
		}
		now := p.now()
		if _, err := tx.Exec(ctx, `DELETE FROM enroll_tokens WHERE device = $1`, id); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE enroll_devices SET labels = $2, added_at = $3, token = $4 WHERE id = $1`,
			id, maps.Clone(labels), now, h[:]); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO enroll_tokens (hash, device, expires_at) VALUES ($1, $2, $3)`, h[:], id, now.Add(p.opts.TTL))
		return err
	})
	if err != nil {
		return "", wrap("add", err)
	}
	return tok, nil
}

// Redeem implements Store. check runs inside the transaction, with the
// device's row locked: a concurrent Redeem of the token waits for it.
func (p *Postgres) Redeem(ctx context.Context, token string, check func(Device) error) (Device, error) {
	h := hashToken(token)
	var out Device
	var checkErr error
	err := p.tx(ctx, func(tx pgx.Tx) error {
		// Lock the device before the token, in the order Add takes them.
		var id string
		err := tx.QueryRow(ctx, `SELECT device FROM enroll_tokens WHERE hash = $1`, h[:]).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrUnknownToken
		} else if err != nil {
			return err
		}
		d, ok, err := lockDevice(ctx, tx, id)
		if err != nil || !ok {
			return cmpErr(err, ErrUnknownToken)
		}
		var expires time.Time
		var used bool
		err = tx.QueryRow(ctx, `SELECT expires_at, used FROM enroll_tokens WHERE hash = $1`, h[:]).Scan(&expires, &used)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrUnknownToken // replaced by Add meanwhile
		} else if err != nil {
			return err
		}
		now := p.now()
		switch {
		case used:
			return fmt.Errorf("%w (device %s)", ErrTokenUsed, id)
		case !now.Before(expires):
			return fmt.Errorf("%w (device %s, at %s)", ErrTokenExpired, id, expires.UTC().Format(time.RFC3339))
		case d.revoked != nil:
			return fmt.Errorf("%w: %s", ErrRevoked, id)
		}
		out = d.device(id)
		if check != nil {
			if checkErr = check(cloneDevice(out)); checkErr != nil {
				return checkErr
			}
		}
		out.Enrolled = now
		if _, err := tx.Exec(ctx, `UPDATE enroll_tokens SET used = true WHERE hash = $1`, h[:]); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE enroll_devices SET enrolled_at = $2 WHERE id = $1`, id, now)
		return err
	})
	if checkErr != nil {
		return Device{}, checkErr
	}
	if err != nil {
		return Device{}, wrap("redeem", err)
	}
	return out, nil
}

// Revoke implements Store.
func (p *Postgres) Revoke(ctx context.Context, id string) error {
	if p.closed.Load() {
		return ErrClosed
	}
	_, err := p.pool.Exec(ctx, `INSERT INTO enroll_devices (id, revoked_at) VALUES ($1, $2)
		ON CONFLICT (id) DO UPDATE SET revoked_at = COALESCE(enroll_devices.revoked_at, EXCLUDED.revoked_at)`, id, p.now())
	return wrap("revoke", err)
}

// IsRevoked implements Store.
func (p *Postgres) IsRevoked(ctx context.Context, id string) (bool, error) {
	d, err := p.Device(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil && !d.Revoked.IsZero(), err
}

// Device implements Store.
func (p *Postgres) Device(ctx context.Context, id string) (Device, error) {
	if p.closed.Load() {
		return Device{}, ErrClosed
	}
	var d pgDevice
	err := p.pool.QueryRow(ctx, `SELECT labels, added_at, enrolled_at, revoked_at, token FROM enroll_devices WHERE id = $1`, id).
		Scan(&d.labels, &d.added, &d.enrolled, &d.revoked, &d.token)
	if errors.Is(err, pgx.ErrNoRows) {
		return Device{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return Device{}, wrap("device", err)
	}
	return d.device(id), nil
}

// Close makes later calls return ErrClosed; the pool stays open. It is
// safe to call twice.
func (p *Postgres) Close() error {
	p.closed.Store(true)
	return nil
}
