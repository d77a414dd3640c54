package testutil

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestTestDBName(t *testing.T) {
	valid := regexp.MustCompile(`^t_[a-z0-9_]+_[0-9a-f]{12}$`)
	for _, name := range []string{
		"TestX",
		"TestStore/Sub-test with spaces/é",
		strings.Repeat("TestVeryLong", 20),
	} {
		got := testDBName(name)
		if !valid.MatchString(got) || len(got) > 63 {
			t.Errorf("testDBName(%q) = %q: not a valid, short identifier", name, got)
		}
		if again := testDBName(name); again == got {
			t.Errorf("testDBName(%q) gave %q twice", name, got)
		}
	}
}

// TestPostgres creates a database in a subtest, checks it is usable and
// empty, and checks it is gone once the subtest has ended.
func TestPostgres(t *testing.T) {
	if os.Getenv("EDGEFLEET_POSTGRES") == "" {
		Need(t, "EDGEFLEET_POSTGRES not set")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var name string
	t.Run("create", func(t *testing.T) {
		dsn := Postgres(t)
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatalf("connect to the test database: %v", err)
		}
		defer conn.Close(ctx)
		if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&name); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(name, "t_testpostgres_create_") {
			t.Errorf("database %q is not named for the test", name)
		}
		var tables int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&tables); err != nil {
			t.Fatal(err)
		}
		if tables != 0 {
			t.Errorf("fresh database has %d tables", tables)
		}
		if _, err := conn.Exec(ctx, "CREATE TABLE x (id int)"); err != nil {
			t.Fatal(err)
		}
	})
	conn, err := pgx.Connect(ctx, os.Getenv("EDGEFLEET_POSTGRES"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if name == "" || n != 0 {
		t.Errorf("database %q still exists after its test (%d)", name, n)
	}
}
