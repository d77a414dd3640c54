package database_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"edgefleet/fleet/database"
	"edgefleet/fleet/database/dbtest"
)

// TestOpenConcurrent: replicas starting together on an empty database all
// come up at the latest version, the migrations applied once.
func TestOpenConcurrent(t *testing.T) {
	dsn := dbtest.DSN(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			db, err := database.Open(ctx, dsn, database.Options{})
			if err != nil {
				errs <- err
				return
			}
			defer db.Close()
			if db.Version != database.Latest() {
				errs <- errors.New("version not latest")
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	db, err := database.Open(ctx, dsn, database.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var applied int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM goose_db_version WHERE version_id > 0`).Scan(&applied); err != nil {
		t.Fatal(err)
	}
	if int64(applied) != database.Latest() {
		t.Errorf("%d migrations recorded, want %d", applied, database.Latest())
	}
	if err := db.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestOpenNewerRefused: a database migrated by a newer fleetd is refused with a clear message.
func TestOpenNewerRefused(t *testing.T) {
	db := dbtest.Open(t)
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, `INSERT INTO goose_db_version (version_id, is_applied) VALUES ($1, true)`, database.Latest()+1); err != nil {
		t.Fatal(err)
	}
	var dsn = db.Pool.Config().ConnString()
	_, err := database.Open(ctx, dsn, database.Options{})
	if !errors.Is(err, database.ErrTooNew) || !strings.Contains(err.Error(), "upgrade fleetd") {
		t.Fatalf("Open of a newer schema: %v", err)
	}
}

func TestOpenBadURL(t *testing.T) {
	if _, err := database.Open(context.Background(), "postgres://127.0.0.1:1/x?connect_timeout=1", database.Options{}); err == nil {
		t.Fatal("Open of an unreachable server succeeded")
	}
	if database.Latest() < 1 {
		t.Fatal("no embedded migrations")
	}
}
