// Package dbtest gives tests a fresh, migrated PostgreSQL database each, on
// the server named by $EDGEFLEET_POSTGRES (through internal/testutil.Postgres:
// skipped without the variable, failed under CI).
package dbtest

import (
	"context"
	"log/slog"
	"testing"

	"edgefleet/fleet/database"
	"edgefleet/internal/testutil"
)

// DSN returns the URL of a new, empty database, dropped at the end of the test.
func DSN(t testing.TB) string {
	t.Helper()
	return testutil.Postgres(t)
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
