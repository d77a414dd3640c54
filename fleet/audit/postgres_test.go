package audit_test

import (
	"context"
	"edgefleet/fleet/database/dbtest"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"edgefleet/fleet/audit"
	"edgefleet/fleet/audit/audittest"
)

func openDB(t *testing.T) *pgxpool.Pool { return dbtest.Open(t).Pool }

func TestPostgres(t *testing.T) {
	audittest.Run(t, func(t *testing.T, o audit.Options) audit.Log {
		l, err := audit.OpenPostgres(context.Background(), openDB(t), o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	})
}

// TestPostgresReplicas: two logs on one database are one log; a closed
// one refuses.
func TestPostgresReplicas(t *testing.T) {
	ctx := context.Background()
	pool := openDB(t)
	a, _ := audit.OpenPostgres(ctx, pool, audit.Options{})
	b, _ := audit.OpenPostgres(ctx, pool, audit.Options{})
	e, err := a.Record(ctx, audit.Entry{Operator: "alice", Action: "token.create", Target: "bob", Outcome: audit.OK, Status: 201})
	if err != nil {
		t.Fatal(err)
	}
	if es, err := b.List(ctx, audit.Query{}); err != nil || len(es) != 1 || es[0] != e {
		t.Fatalf("other replica: %+v, %v; want %+v", es, err, e)
	}
	a.Close()
	a.Close()
	if _, err := a.Record(ctx, e); !errors.Is(err, audit.ErrClosed) {
		t.Fatalf("record after close: %v", err)
	}
	if _, err := a.List(ctx, audit.Query{}); !errors.Is(err, audit.ErrClosed) {
		t.Fatalf("list after close: %v", err)
	}
}
