// Package operatortest is the behaviour every operator.Store must have, as
// one suite that runs against any implementation (Run): the bbolt,
// in-memory and PostgreSQL stores and the fixed tokens in front of them;
// and that of every operator.TicketOffice (RunTickets): in memory and in
// PostgreSQL.
package operatortest

import (
	"context"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"edgefleet/fleet/operator"
)

// Clock is a settable clock for Options.Now. It is safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Open opens a fresh, empty store with o for one test; it should close
// the store at the test's cleanup.
type Open func(t *testing.T, o operator.Options) operator.Store

// Run runs the behaviour suite against the stores open makes.
func Run(t *testing.T, open Open) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s operator.Store, clk *Clock)
	}{
		{"CreateAuthenticate", testCreateAuthenticate},
		{"Refusals", testRefusals},
		{"ListLastUsed", testListLastUsed},
		{"Revoke", testRevoke},
		{"Concurrent", testConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := &Clock{now: time.Date(2026, 12, 1, 12, 0, 30, 0, time.UTC)}
			tc.fn(t, open(t, operator.Options{Now: clk.Now}), clk)
		})
	}
}

var ctx = context.Background()

// Create makes a token or fails the test.
func Create(t *testing.T, s operator.Store, name string, role operator.Role) string {
	t.Helper()
	tok, info, err := s.Create(ctx, name, role)
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	if info.Name != name || info.Role != role || info.Created.IsZero() {
		t.Fatalf("create %s: %+v", name, info)
	}
	return tok
}

func testCreateAuthenticate(t *testing.T, s operator.Store, clk *Clock) {
	tok := Create(t, s, "alice", operator.Viewer)
	raw, ok := strings.CutPrefix(tok, operator.Prefix)
	if b, err := base64.RawURLEncoding.DecodeString(raw); !ok || err != nil || len(b) != 32 {
		t.Fatalf("token %q: want %s and 32 bytes base64url (%v)", tok, operator.Prefix, err)
	}
	bob := Create(t, s, "bob@plant-a", operator.Admin)
	if bob == tok {
		t.Fatal("two tokens alike")
	}
	for _, c := range []struct {
		tok  string
		want operator.Identity
	}{{tok, operator.Identity{Name: "alice", Role: operator.Viewer}}, {bob, operator.Identity{Name: "bob@plant-a", Role: operator.Admin}}} {
		if id, err := s.Authenticate(ctx, c.tok); err != nil || id != c.want {
			t.Errorf("authenticate: %+v, %v; want %+v", id, err, c.want)
		}
	}
	ts, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range ts {
		if strings.Contains(tk.Name, operator.Prefix) {
			t.Errorf("list shows a token: %+v", tk)
		}
	}
}

func testRefusals(t *testing.T, s operator.Store, _ *Clock) {
	tok := Create(t, s, "alice", operator.Operator)
	for _, c := range []struct{ name, tok string }{
		{"empty", ""},
		{"unknown", operator.Prefix + base64.RawURLEncoding.EncodeToString(make([]byte, 32))},
		{"cut", tok[:len(tok)-1]},
		{"longer", tok + "A"},
		{"no prefix", strings.TrimPrefix(tok, operator.Prefix)},
		{"name", "alice"},
	} {
		if id, err := s.Authenticate(ctx, c.tok); !errors.Is(err, operator.ErrUnknownToken) {
			t.Errorf("%s token: %+v, %v; want ErrUnknownToken", c.name, id, err)
		}
	}
	for _, c := range []struct {
		name string
		role operator.Role
		want error
	}{
		{"alice", operator.Viewer, operator.ErrExists},
		{"", operator.Viewer, operator.ErrBadName},
		{"a b", operator.Viewer, operator.ErrBadName},
		{strings.Repeat("x", operator.MaxName+1), operator.Viewer, operator.ErrBadName},
		{"carol", "root", operator.ErrBadRole},
		{"carol", "", operator.ErrBadRole},
	} {
		if _, _, err := s.Create(ctx, c.name, c.role); !errors.Is(err, c.want) {
			t.Errorf("create %.20q %q: %v, want %v", c.name, c.role, err, c.want)
		}
	}
	if err := s.Revoke(ctx, "nobody"); !errors.Is(err, operator.ErrNotFound) {
		t.Errorf("revoke unknown: %v", err)
	}
}

func testListLastUsed(t *testing.T, s operator.Store, clk *Clock) {
	created := clk.Now()
	Create(t, s, "zed", operator.Viewer)
	tok := Create(t, s, "amy", operator.Admin)
	clk.Advance(90 * time.Second)
	if _, err := s.Authenticate(ctx, tok); err != nil {
		t.Fatal(err)
	}
	ts, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []operator.Token
	for _, tk := range ts {
		if !tk.Fixed {
			got = append(got, tk)
		}
	}
	if len(got) != 2 || got[0].Name != "amy" || got[1].Name != "zed" {
		t.Fatalf("list %+v: want amy, zed", got)
	}
	if !got[0].Created.Equal(created) || got[0].Role != operator.Admin {
		t.Errorf("amy %+v: created %v", got[0], created)
	}
	if want := clk.Now().Truncate(time.Minute); !got[0].LastUsed.Equal(want) || !got[1].LastUsed.IsZero() {
		t.Errorf("last used: amy %v (want %v), zed %v (want never)", got[0].LastUsed, want, got[1].LastUsed)
	}
}

func testRevoke(t *testing.T, s operator.Store, _ *Clock) {
	tok := Create(t, s, "alice", operator.Admin)
	keep := Create(t, s, "bob", operator.Viewer)
	if err := s.Revoke(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, tok); !errors.Is(err, operator.ErrUnknownToken) {
		t.Fatalf("revoked token: %v", err)
	}
	if id, err := s.Authenticate(ctx, keep); err != nil || id.Name != "bob" {
		t.Fatalf("other token: %+v, %v", id, err)
	}
	if err := s.Revoke(ctx, "alice"); !errors.Is(err, operator.ErrNotFound) {
		t.Fatalf("second revoke: %v", err)
	}
	// The name is free again, with a new token; the old one stays dead.
	tok2 := Create(t, s, "alice", operator.Viewer)
	if id, err := s.Authenticate(ctx, tok2); err != nil || id.Role != operator.Viewer {
		t.Fatalf("new token: %+v, %v", id, err)
	}
	if _, err := s.Authenticate(ctx, tok); !errors.Is(err, operator.ErrUnknownToken) {
		t.Fatalf("old token after the name was reused: %v", err)
	}
}

func testConcurrent(t *testing.T, s operator.Store, clk *Clock) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	made := 0
	for g := range 8 {
		wg.Go(func() {
			if _, _, err := s.Create(ctx, "same", operator.Viewer); err == nil {
				mu.Lock()
				made++
				mu.Unlock()
			} else if !errors.Is(err, operator.ErrExists) {
				t.Errorf("create: %v", err)
			}
			name := "op-" + strconv.Itoa(g)
			tok, _, err := s.Create(ctx, name, operator.Operator)
			if err != nil {
				t.Errorf("create %s: %v", name, err)
				return
			}
			for range 10 {
				clk.Advance(time.Minute)
				if id, err := s.Authenticate(ctx, tok); err != nil || id.Name != name {
					t.Errorf("authenticate %s: %+v, %v", name, id, err)
				}
			}
		})
	}
	wg.Wait()
	if made != 1 {
		t.Fatalf("%d creates of one name succeeded", made)
	}
	if ts, err := s.List(ctx); err != nil || len(ts) < 9 {
		t.Fatalf("list after concurrent creates: %d tokens, %v", len(ts), err)
	}
}
