package artifact

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"edgefleet/models/manifest"
)

// PostgresRing is the Ring in PostgreSQL (table ota_signing_key, fleet/database
// migrations 00004 and 00005), shared by fleetd replicas: each reads the
// signing key at every push, so a rotation through one replica applies to
// the next push on any. The signing key's private half is stored in clear:
// whoever reads the table can sign artifacts agents accept.
type PostgresRing struct {
	pool *pgxpool.Pool
}

var _ Ring = (*PostgresRing)(nil)

// ringLock serializes Init and Rotate among replicas (a transaction-scoped
// advisory lock; "ota-keys" in ASCII).
const ringLock = 0x6f74612d6b657973

// OpenPostgresRing opens the ring in pool's database (migrated by
// database.Open). A key stored before migration 00005 gets its id here.
func OpenPostgresRing(ctx context.Context, pool *pgxpool.Pool) (*PostgresRing, error) {
	rows, err := pool.Query(ctx, `SELECT private_pem FROM ota_signing_key WHERE key_id IS NULL`)
	if err != nil {
		return nil, fmt.Errorf("artifact: key ring: %w", err)
	}
	pems, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("artifact: key ring: %w", err)
	}
	for _, s := range pems {
		priv, err := manifest.ParsePrivateKey([]byte(s))
		if err != nil {
			return nil, fmt.Errorf("artifact: key ring: %w", err)
		}
		pub, id := publicOf(priv)
		pubPEM, err := manifest.EncodePublicKey(pub)
		if err != nil {
			return nil, fmt.Errorf("artifact: key ring: %w", err)
		}
		if _, err := pool.Exec(ctx, `UPDATE ota_signing_key SET key_id = $1, public_pem = $2 WHERE key_id IS NULL AND private_pem = $3`,
			id, string(pubPEM), s); err != nil {
			return nil, fmt.Errorf("artifact: key ring: %w", err)
		}
	}
	return &PostgresRing{pool: pool}, nil
}

// Close implements Ring; the pool is the caller's.
func (p *PostgresRing) Close() error { return nil }

// locked runs f in a transaction holding the ring's advisory lock.
func (p *PostgresRing) locked(ctx context.Context, f func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(ringLock)); err != nil {
			return err
		}
		return f(tx)
	})
}

func insertKey(ctx context.Context, tx pgx.Tx, priv ed25519.PrivateKey, now time.Time) (Key, error) {
	pub, id := publicOf(priv)
	pubPEM, err := manifest.EncodePublicKey(pub)
	if err != nil {
		return Key{}, err
	}
	privPEM, err := EncodePrivateKey(priv)
	if err != nil {
		return Key{}, err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO ota_signing_key (signing, key_id, public_pem, private_pem, created_at) VALUES (true, $1, $2, $3, $4)`,
		id, string(pubPEM), string(privPEM), now); err != nil {
		return Key{}, err
	}
	return Key{ID: id, Public: pub, Signing: true, Source: SourceRing, Created: now}, nil
}

const keyColumns = `key_id, public_pem, signing, created_at, retired_at`

func scanKey(row pgx.Row) (Key, error) {
	var k Key
	var pubPEM string
	var retired *time.Time
	if err := row.Scan(&k.ID, &pubPEM, &k.Signing, &k.Created, &retired); err != nil {
		return Key{}, err
	}
	pub, err := manifest.ParsePublicKey([]byte(pubPEM))
	if err != nil {
		return Key{}, fmt.Errorf("key %s: %w", k.ID, err)
	}
	k.Public, k.Source, k.Created = pub, SourceRing, k.Created.UTC()
	if retired != nil {
		k.Retired = retired.UTC()
	}
	return k, nil
}

// Init implements Ring.
func (p *PostgresRing) Init(ctx context.Context, seed ed25519.PrivateKey) (Key, bool, error) {
	return p.init(ctx, seed, time.Time{})
}

// init is Init, a key it stores dated created (zero: now).
func (p *PostgresRing) init(ctx context.Context, seed ed25519.PrivateKey, created time.Time) (Key, bool, error) {
	if created.IsZero() {
		created = time.Now()
	}
	created = created.UTC().Truncate(time.Microsecond)
	var k Key
	var made bool
	err := p.locked(ctx, func(tx pgx.Tx) error {
		var err error
		k, err = scanKey(tx.QueryRow(ctx, `SELECT `+keyColumns+` FROM ota_signing_key WHERE signing`))
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			priv := seed
			if priv == nil {
				if priv, err = newKey(); err != nil {
					return err
				}
			}
			made = true
			k, err = insertKey(ctx, tx, priv, created)
			return err
		case err != nil:
			return err
		case seed == nil:
			return nil
		}
		_, id := publicOf(seed)
		var known bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM ota_signing_key WHERE key_id = $1)`, id).Scan(&known); err != nil {
			return err
		}
		if !known {
			return fmt.Errorf("%w: %s (the ring signs with %s)", ErrForeignKey, id, k.ID)
		}
		return nil
	})
	if err != nil {
		return Key{}, false, fmt.Errorf("artifact: key ring: init: %w", err)
	}
	return k, made, nil
}

// Signer implements Ring.
func (p *PostgresRing) Signer(ctx context.Context) (ed25519.PrivateKey, string, error) {
	var s string
	err := p.pool.QueryRow(ctx, `SELECT private_pem FROM ota_signing_key WHERE signing`).Scan(&s)
	if errors.Is(err, pgx.ErrNoRows) {
		err = fmt.Errorf("%w: the ring is empty", ErrKeyNotFound)
	}
	if err != nil {
		return nil, "", fmt.Errorf("artifact: key ring: signer: %w", err)
	}
	priv, err := manifest.ParsePrivateKey([]byte(s))
	if err != nil {
		return nil, "", fmt.Errorf("artifact: key ring: signer: %w", err)
	}
	_, id := publicOf(priv)
	return priv, id, nil
}

// Keys implements Ring.
func (p *PostgresRing) Keys(ctx context.Context) ([]Key, error) {
	rows, err := p.pool.Query(ctx, `SELECT `+keyColumns+` FROM ota_signing_key WHERE key_id IS NOT NULL`)
	if err != nil {
		return nil, fmt.Errorf("artifact: key ring: %w", err)
	}
	ks, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Key, error) { return scanKey(r) })
	if err != nil {
		return nil, fmt.Errorf("artifact: key ring: %w", err)
	}
	sortKeys(ks)
	return ks, nil
}

// Rotate implements Ring.
func (p *PostgresRing) Rotate(ctx context.Context) (Key, Key, error) {
	priv, err := newKey()
	if err != nil {
		return Key{}, Key{}, err
	}
	var signing, retired Key
	err = p.locked(ctx, func(tx pgx.Tx) error {
		now := time.Now().UTC().Truncate(time.Microsecond)
		var err error
		retired, err = scanKey(tx.QueryRow(ctx, `UPDATE ota_signing_key SET signing = false, retired_at = $1, private_pem = NULL
			WHERE signing RETURNING `+keyColumns, now))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: the ring is empty", ErrKeyNotFound)
		}
		if err != nil {
			return err
		}
		signing, err = insertKey(ctx, tx, priv, now)
		return err
	})
	if err != nil {
		return Key{}, Key{}, fmt.Errorf("artifact: key ring: rotate: %w", err)
	}
	return signing, retired, nil
}

// CopyRing copies the keys of src (a one-box fleet's BoltRing, or the
// FixedRing of its old key file) into dst, for fleetd migrate: src's
// signing key becomes dst's when dst is empty, and retired keys dst lacks
// are added as retired, so agents keep accepting what either signed. A dst
// that signs with a key src does not have is ErrForeignKey. Copying twice
// changes nothing; copied counts the keys added.
func CopyRing(ctx context.Context, dst *PostgresRing, src Ring) (signing Key, copied int, err error) {
	priv, _, err := src.Signer(ctx)
	if err != nil {
		return Key{}, 0, fmt.Errorf("artifact: copy key ring: %w", err)
	}
	ks, err := src.Keys(ctx)
	if err != nil {
		return Key{}, 0, fmt.Errorf("artifact: copy key ring: %w", err)
	}
	var srcSigning Key
	for _, k := range ks {
		if k.Signing {
			srcSigning = k
		}
	}
	signing, created, err := dst.init(ctx, priv, srcSigning.Created)
	if err != nil {
		return Key{}, 0, fmt.Errorf("artifact: copy key ring: %w", err)
	}
	if created {
		copied++
	}
	for _, k := range ks {
		if k.Signing || k.Source != SourceRing {
			continue
		}
		pubPEM, err := manifest.EncodePublicKey(k.Public)
		if err != nil {
			return Key{}, 0, fmt.Errorf("artifact: copy key ring: %w", err)
		}
		created, retired := k.Created, k.Retired
		if created.IsZero() {
			created = time.Now().UTC()
		}
		if retired.IsZero() {
			retired = time.Now().UTC()
		}
		tag, err := dst.pool.Exec(ctx, `INSERT INTO ota_signing_key (signing, key_id, public_pem, created_at, retired_at)
			VALUES (false, $1, $2, $3, $4) ON CONFLICT (key_id) DO NOTHING`, k.ID, string(pubPEM), created, retired)
		if err != nil {
			return Key{}, 0, fmt.Errorf("artifact: copy key ring: key %s: %w", k.ID, err)
		}
		copied += int(tag.RowsAffected())
	}
	return signing, copied, nil
}
