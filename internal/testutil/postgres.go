package testutil

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postgres returns the DSN of a fresh, empty PostgreSQL database created for
// this test on the server named by $EDGEFLEET_POSTGRES (a DSN whose user may
// create databases; .ci/run starts a throwaway cluster and sets it). The
// database is dropped when the test ends. Without EDGEFLEET_POSTGRES the test
// is skipped, or fails under CI.
func Postgres(t testing.TB) string {
	t.Helper()
	admin := os.Getenv("EDGEFLEET_POSTGRES")
	if admin == "" {
		Need(t, "EDGEFLEET_POSTGRES not set (postgres://user@host:port/db of a server where the user may create databases; .ci/run starts one)")
	}
	u, err := url.Parse(admin)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("testutil: EDGEFLEET_POSTGRES %q is not a postgres:// URL", admin)
	}
	name := testDBName(t.Name())
	exec := func(sql string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			return fmt.Errorf("testutil: connect to EDGEFLEET_POSTGRES: %w", err)
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("testutil: %s: %w", sql, err)
		}
		return nil
	}
	if err := exec("CREATE DATABASE " + pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := exec("DROP DATABASE IF EXISTS " + pgx.Identifier{name}.Sanitize() + " WITH (FORCE)"); err != nil {
			t.Errorf("testutil: dropping test database: %v", err)
		}
	})
	u.Path = "/" + name
	return u.String()
}

// testDBName makes a database name from the test's name and a random
// suffix: lower case, [a-z0-9_], at most 63 bytes (PostgreSQL's limit).
func testDBName(test string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(test) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	base := b.String()
	if len(base) > 40 {
		base = base[:40]
	}
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return "t_" + base + "_" + hex.EncodeToString(rnd[:])
}
