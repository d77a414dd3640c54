package audit_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"edgefleet/fleet/audit"
	"edgefleet/fleet/audit/audittest"
)

func TestMem(t *testing.T) {
	audittest.Run(t, func(t *testing.T, o audit.Options) audit.Log {
		l := audit.NewMem(o)
		t.Cleanup(func() { l.Close() })
		return l
	})
}

func TestBolt(t *testing.T) {
	audittest.Run(t, func(t *testing.T, o audit.Options) audit.Log {
		l, err := audit.OpenBolt(filepath.Join(t.TempDir(), "audit.db"), o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	})
}

func TestBoltReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "audit.db")
	l, err := audit.OpenBolt(path, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	first, _ := l.Record(ctx, audit.Entry{Operator: "alice", Action: "token.create", Target: "bob", Outcome: audit.OK})
	l.Close()
	if _, err := l.Record(ctx, audit.Entry{Operator: "alice", Action: "x", Outcome: audit.OK}); !errors.Is(err, audit.ErrClosed) {
		t.Fatalf("after close: %v", err)
	}
	if l, err = audit.OpenBolt(path, audit.Options{}); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	second, err := l.Record(ctx, audit.Entry{Operator: "alice", Action: "token.revoke", Target: "bob", Outcome: audit.OK})
	if err != nil || second.ID <= first.ID {
		t.Fatalf("id after reopen %d (first %d), %v", second.ID, first.ID, err)
	}
	es, _ := l.List(ctx, audit.Query{})
	if len(es) != 2 || es[1].Target != "bob" || es[1].Action != "token.create" {
		t.Fatalf("entries after reopen: %+v", es)
	}
}
