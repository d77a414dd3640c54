// Package database is fleetd's PostgreSQL plumbing: a pgx connection pool
// with bounded timeouts, the schema as versioned migrations embedded in the
// binary (goose), applied at Open under a PostgreSQL advisory lock so that
// replicas starting together do not race, and a Ping for /healthz.
//
// A database whose schema version is newer than this binary's migrations is
// refused: an older fleetd must not write into a schema it does not know.
package database

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed migrations/*.sql
var migrations embed.FS

// lockID is the advisory lock key migrations run under ("edgefleet" in ASCII, truncated).
const lockID int64 = 0x65646765666c6565

// ErrTooNew is returned by Open for a database migrated by a newer fleetd.
var ErrTooNew = errors.New("database: schema is newer than this binary")

// Options configures Open. Zero fields take the documented defaults.
type Options struct {
	// MaxConns caps the pool; default 16.
	MaxConns int32
	// ConnectTimeout bounds one connection attempt; default 5s.
	ConnectTimeout time.Duration
	// StatementTimeout is set on every session (statement_timeout); default 30s.
	StatementTimeout time.Duration
	// Logger receives migration progress; default slog.Default().
	Logger *slog.Logger
}

// DB is an open database with its schema up to date.
type DB struct {
	Pool    *pgxpool.Pool
	Version int64 // schema version after the migrations
}

// Open connects to url (postgres://...), applies pending migrations under
// the advisory lock and returns the pool. It refuses (ErrTooNew) a database
// whose schema is newer than the migrations embedded in this binary.
func Open(ctx context.Context, url string, opt Options) (*DB, error) {
	if opt.MaxConns <= 0 {
		opt.MaxConns = 16
	}
	if opt.ConnectTimeout <= 0 {
		opt.ConnectTimeout = 5 * time.Second
	}
	if opt.StatementTimeout <= 0 {
		opt.StatementTimeout = 30 * time.Second
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	cfg.MaxConns = opt.MaxConns
	cfg.ConnConfig.ConnectTimeout = opt.ConnectTimeout
	cfg.ConnConfig.RuntimeParams["statement_timeout"] = fmt.Sprint(opt.StatementTimeout.Milliseconds())
	cfg.ConnConfig.RuntimeParams["application_name"] = "fleetd"
	cfg.HealthCheckPeriod = 10 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	v, err := migrate(ctx, pool, opt.Logger)
	if err != nil {
		pool.Close()
		return nil, err
	}
	return &DB{Pool: pool, Version: v}, nil
}

// Latest is the schema version of the migrations embedded in this binary:
// the highest NNNNN prefix of migrations/NNNNN_name.sql.
func Latest() int64 {
	ents, _ := migrations.ReadDir("migrations")
	var v int64
	for _, e := range ents {
		n, _, ok := strings.Cut(e.Name(), "_")
		if x, err := strconv.ParseInt(n, 10, 64); ok && err == nil && x > v {
			v = x
		}
	}
	return v
}

func provider(pool *pgxpool.Pool, log *slog.Logger) (*goose.Provider, error) {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(lockID), lock.WithLockTimeout(1, 600))
	if err != nil {
		return nil, err
	}
	opts := []goose.ProviderOption{goose.WithSessionLocker(locker), goose.WithDisableGlobalRegistry(true)}
	if log != nil {
		opts = append(opts, goose.WithSlog(log))
	}
	return goose.NewProvider(goose.DialectPostgres, stdlibDB(pool), sub, opts...)
}

// migrate checks the version and applies pending migrations under the lock.
func migrate(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) (int64, error) {
	p, err := provider(pool, log)
	if err != nil {
		return 0, fmt.Errorf("database: migrations: %w", err)
	}
	defer p.Close()
	latest := Latest()
	check := func() (int64, error) {
		cur, err := p.GetDBVersion(ctx)
		if err != nil {
			return 0, fmt.Errorf("database: schema version: %w", err)
		}
		if cur > latest {
			return 0, fmt.Errorf("%w: the database is at schema version %d, this fleetd knows up to %d; upgrade fleetd (or restore a backup taken before the upgrade)", ErrTooNew, cur, latest)
		}
		return cur, nil
	}
	if _, err := check(); err != nil {
		return 0, err
	}
	res, err := p.Up(ctx)
	if err != nil {
		return 0, fmt.Errorf("database: migrate: %w", err)
	}
	for _, r := range res {
		log.Info("database: migration applied", "version", r.Source.Version, "file", r.Source.Path, "took", r.Duration)
	}
	return check()
}

// Ping checks that the database answers, for /healthz.
func (d *DB) Ping(ctx context.Context) error {
	if err := d.Pool.Ping(ctx); err != nil {
		return fmt.Errorf("database: ping: %w", err)
	}
	return nil
}

// Close closes the pool.
func (d *DB) Close() { d.Pool.Close() }
