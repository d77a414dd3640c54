// Package dbtest gives tests a fresh PostgreSQL database each: a database
// created on the server named by $EDGEFLEET_POSTGRES and dropped when the
// test ends. Without the variable the test is skipped, or fails under CI.
//
// (internal/testutil.Postgres will take this role; this package is the
// interim one the store and registry tests use.)
package dbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/url"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"

	"edgefleet/fleet/database"
	"edgefleet/internal/testutil"
)

// DSN returns the URL of a new, empty database, dropped at the end of the test.
func DSN(t testing.TB) string {
	t.Helper()
	base := os.Getenv("EDGEFLEET_POSTGRES")
	if base == "" {
		testutil.Need(t, "EDGEFLEET_POSTGRES not set (postgres://user@host:port/db?sslmode=disable of a PostgreSQL 15+ server where the user may create databases)")
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	defer conn.Close(ctx)
	b := make([]byte, 6)
	rand.Read(b)
	name := "edgefleet_test_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), base)
		if err != nil {
			t.Errorf("dbtest: drop %s: %v", name, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("dbtest: drop %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// Open returns a migrated database in a new database, closed at the end of the test.
func Open(t testing.TB) *database.DB {
	t.Helper()
	db, err := database.Open(context.Background(), DSN(t), database.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db
}
