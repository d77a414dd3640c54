package operator_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"edgefleet/fleet/operator"
	"edgefleet/fleet/operator/operatortest"
)

var ctx = context.Background()

func TestMem(t *testing.T) {
	operatortest.Run(t, func(t *testing.T, o operator.Options) operator.Store {
		s := operator.NewMem(o)
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestBolt(t *testing.T) {
	operatortest.Run(t, func(t *testing.T, o operator.Options) operator.Store {
		s, err := operator.OpenBolt(filepath.Join(t.TempDir(), "operators.db"), o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestLayered runs the suite through fixed tokens in front of a store:
// they must not change how the store's own tokens behave.
func TestLayered(t *testing.T) {
	operatortest.Run(t, func(t *testing.T, o operator.Options) operator.Store {
		m := operator.NewMem(o)
		t.Cleanup(func() { m.Close() })
		l, err := operator.WithFixed(m, o, operator.Fixed{Name: "root", Role: operator.Admin, Token: "fixed-token-0123456789"})
		if err != nil {
			t.Fatal(err)
		}
		return l
	})
}

func TestFixed(t *testing.T) {
	m := operator.NewMem(operator.Options{})
	l, err := operator.WithFixed(m, operator.Options{},
		operator.Fixed{Name: "root", Role: operator.Admin, Token: "fixed-token-0123456789"},
		operator.Fixed{Name: "wall", Role: operator.Viewer, Token: "wall-token-0123456789"})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := l.HasAdmin(ctx); err != nil || !ok {
		t.Fatalf("HasAdmin: %v, %v", ok, err)
	}
	if id, err := l.Authenticate(ctx, "wall-token-0123456789"); err != nil || id != (operator.Identity{Name: "wall", Role: operator.Viewer}) {
		t.Fatalf("fixed token: %+v, %v", id, err)
	}
	for _, tok := range []string{"", "wall-token-012345678", "wall-token-0123456789 "} {
		if _, err := l.Authenticate(ctx, tok); !errors.Is(err, operator.ErrUnknownToken) {
			t.Errorf("token %q: %v", tok, err)
		}
	}
	if _, _, err := l.Create(ctx, "root", operator.Viewer); !errors.Is(err, operator.ErrExists) {
		t.Errorf("create a fixed name: %v", err)
	}
	if err := l.Revoke(ctx, "wall"); !errors.Is(err, operator.ErrFixed) {
		t.Errorf("revoke a fixed token: %v", err)
	}
	ts, _ := l.List(ctx)
	if len(ts) != 2 || !ts[0].Fixed || ts[0].Name != "root" || !ts[0].LastUsed.IsZero() || ts[1].LastUsed.IsZero() {
		t.Errorf("list %+v", ts)
	}
	for _, bad := range [][]operator.Fixed{
		{{Name: "a", Role: operator.Admin, Token: "short"}},
		{{Name: "a b", Role: operator.Admin, Token: "fixed-token-0123456789"}},
		{{Name: "a", Role: "boss", Token: "fixed-token-0123456789"}},
		{{Name: "a", Role: operator.Admin, Token: "fixed-token-0123456789"}, {Name: "a", Role: operator.Viewer, Token: "fixed-token-abcdefghij"}},
	} {
		if _, err := operator.WithFixed(m, operator.Options{}, bad...); err == nil {
			t.Errorf("WithFixed(%+v) accepted", bad)
		}
	}
}

func TestRoles(t *testing.T) {
	tests := []struct {
		r, min operator.Role
		want   bool
	}{
		{operator.Viewer, operator.Viewer, true},
		{operator.Viewer, operator.Operator, false},
		{operator.Operator, operator.Viewer, true},
		{operator.Operator, operator.Admin, false},
		{operator.Admin, operator.Operator, true},
		{"", operator.Viewer, false},
		{"root", operator.Viewer, false},
	}
	for _, tt := range tests {
		if got := tt.r.Allows(tt.min); got != tt.want {
			t.Errorf("%q.Allows(%q) = %v", tt.r, tt.min, got)
		}
	}
	if _, err := operator.ParseRole("Admin"); !errors.Is(err, operator.ErrBadRole) {
		t.Errorf("ParseRole(Admin): %v", err)
	}
	if r, err := operator.ParseRole("operator"); err != nil || r != operator.Operator {
		t.Errorf("ParseRole(operator): %v, %v", r, err)
	}
}

func TestBoltReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "operators.db")
	s, err := operator.OpenBolt(path, operator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tok, _, _ := s.Create(ctx, "alice", operator.Operator)
	gone, _, _ := s.Create(ctx, "bob", operator.Admin)
	s.Revoke(ctx, "bob")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := s.Authenticate(ctx, tok); !errors.Is(err, operator.ErrClosed) {
		t.Fatalf("after close: %v", err)
	}
	s, err = operator.OpenBolt(path, operator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if id, err := s.Authenticate(ctx, tok); err != nil || id.Name != "alice" || id.Role != operator.Operator {
		t.Fatalf("after reopen: %+v, %v", id, err)
	}
	if _, err := s.Authenticate(ctx, gone); !errors.Is(err, operator.ErrUnknownToken) {
		t.Fatalf("revoked before reopen: %v", err)
	}
	raw, _ := bolt.Open(path+".x", 0o600, nil) // a file of a future schema
	raw.Update(func(tx *bolt.Tx) error {
		b, _ := tx.CreateBucket([]byte("meta"))
		return b.Put([]byte("version"), []byte("9"))
	})
	raw.Close()
	if _, err := operator.OpenBolt(path+".x", operator.Options{}); err == nil || !strings.Contains(err.Error(), `schema version "9"`) {
		t.Fatalf("newer schema: %v", err)
	}
}

// TestBoltNoPlaintext checks that the file holds the token's hash, never the token.
func TestBoltNoPlaintext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "operators.db")
	s, err := operator.OpenBolt(path, operator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tok, _, _ := s.Create(ctx, "alice", operator.Admin)
	s.Close()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				if strings.Contains(string(k)+string(v), strings.TrimPrefix(tok, operator.Prefix)[:16]) {
					t.Errorf("bucket %s holds the token: %q", name, k)
				}
				return nil
			})
		})
	})
}

func TestTickets(t *testing.T) {
	operatortest.RunTickets(t, func(t *testing.T, ttl time.Duration, o operator.Options) operator.TicketOffice {
		return operator.NewTickets(ttl, o)
	})
}
