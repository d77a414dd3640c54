package enroll_test

import (
	"context"
	"edgefleet/fleet/database/dbtest"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"edgefleet/fleet/enroll"
	"edgefleet/fleet/enroll/enrolltest"
)

func openDB(t *testing.T) *pgxpool.Pool { return dbtest.Open(t).Pool }

func TestPostgres(t *testing.T) {
	enrolltest.Run(t, func(t *testing.T, o enroll.Options) enroll.Store {
		s, err := enroll.OpenPostgres(context.Background(), openDB(t), o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestPostgresReplicas: a token made through one store is redeemed once
// through either; a revocation through one holds on both; the tables
// keep the token's hash only.
func TestPostgresReplicas(t *testing.T) {
	ctx := context.Background()
	pool := openDB(t)
	a, _ := enroll.OpenPostgres(ctx, pool, enroll.Options{})
	b, _ := enroll.OpenPostgres(ctx, pool, enroll.Options{})
	tok, err := a.Add(ctx, "box-1", map[string]string{"site": "a"})
	if err != nil {
		t.Fatal(err)
	}
	var dump string
	if err := pool.QueryRow(ctx, `SELECT (SELECT string_agg(d::text, ' ') FROM enroll_devices d) || (SELECT string_agg(k::text, ' ') FROM enroll_tokens k)`).Scan(&dump); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(dump, tok[:16]) {
		t.Errorf("tables hold the token in clear: %s", dump)
	}
	if d, err := b.Redeem(ctx, tok, nil); err != nil || d.ID != "box-1" || d.Labels["site"] != "a" {
		t.Fatalf("redeem on the other replica: %+v, %v", d, err)
	}
	if _, err := a.Redeem(ctx, tok, nil); err == nil {
		t.Fatal("token redeemed twice")
	}
	if err := a.Revoke(ctx, "box-1"); err != nil {
		t.Fatal(err)
	}
	if r, err := b.IsRevoked(ctx, "box-1"); !r || err != nil {
		t.Fatalf("revocation on the other replica: %v, %v", r, err)
	}
}
