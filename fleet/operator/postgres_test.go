package operator_test

import (
	"edgefleet/fleet/database/dbtest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"edgefleet/fleet/operator"
	"edgefleet/fleet/operator/operatortest"
)

// openDB returns the pool of a fresh, migrated database for this test.
func openDB(t *testing.T) *pgxpool.Pool { return dbtest.Open(t).Pool }

func TestPostgres(t *testing.T) {
	operatortest.Run(t, func(t *testing.T, o operator.Options) operator.Store {
		s, err := operator.OpenPostgres(ctx, openDB(t), o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestPostgresTickets(t *testing.T) {
	operatortest.RunTickets(t, func(t *testing.T, ttl time.Duration, o operator.Options) operator.TicketOffice {
		tk, err := operator.OpenPostgresTickets(ctx, openDB(t), ttl, o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tk.Close() })
		return tk
	})
}

// TestPostgresReplicas: two stores on one database are one store, and a
// ticket issued through one is redeemed once through either.
func TestPostgresReplicas(t *testing.T) {
	pool := openDB(t)
	a, _ := operator.OpenPostgres(ctx, pool, operator.Options{})
	b, _ := operator.OpenPostgres(ctx, pool, operator.Options{})
	tok, _, err := a.Create(ctx, "alice", operator.Operator)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := b.Authenticate(ctx, tok); err != nil || id.Name != "alice" {
		t.Fatalf("other replica: %+v, %v", id, err)
	}
	if err := b.Revoke(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate(ctx, tok); err == nil {
		t.Fatal("token revoked on the other replica still works")
	}
	ta, _ := operator.OpenPostgresTickets(ctx, pool, 0, operator.Options{})
	tb, _ := operator.OpenPostgresTickets(ctx, pool, 0, operator.Options{})
	tk, _, err := ta.Issue(ctx, operator.Identity{Name: "alice", Role: operator.Viewer})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tb.Redeem(ctx, tk); err != nil {
		t.Fatalf("ticket on the other replica: %v", err)
	}
	if _, err := ta.Redeem(ctx, tk); err == nil {
		t.Fatal("ticket redeemed twice")
	}
	a.Close()
	if _, err := a.List(ctx); err == nil {
		t.Fatal("list after close")
	}
}

// TestPostgresNoPlaintext: the tables hold hashes, never a token or a ticket.
func TestPostgresNoPlaintext(t *testing.T) {
	pool := openDB(t)
	s, _ := operator.OpenPostgres(ctx, pool, operator.Options{})
	tk, _ := operator.OpenPostgresTickets(ctx, pool, 0, operator.Options{})
	tok, _, _ := s.Create(ctx, "alice", operator.Admin)
	ticket, _, _ := tk.Issue(ctx, operator.Identity{Name: "alice", Role: operator.Admin})
	var dump string
	err := pool.QueryRow(ctx, `SELECT (SELECT string_agg(t::text, ' ') FROM operator_tokens t) || (SELECT string_agg(l::text, ' ') FROM live_tickets l)`).Scan(&dump)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{strings.TrimPrefix(tok, operator.Prefix)[:16], strings.TrimPrefix(ticket, operator.TicketPrefix)[:16]} {
		if strings.Contains(dump, secret) {
			t.Errorf("tables hold a secret in clear: %s", dump)
		}
	}
}
