// Package enrolltest is the behaviour every enroll.Store must have, as one
// test suite that runs against any implementation (Run), so that the bbolt,
// in-memory and a future PostgreSQL store are held to the same contract.
package enrolltest

import (
	"context"
	"encoding/base64"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"edgefleet/fleet/enroll"
)

// Clock is a settable clock for Options.Now. It is safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock standing at t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

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
type Open func(t *testing.T, o enroll.Options) enroll.Store

const ttl = time.Hour

// Run runs the behaviour suite against the stores open makes.
func Run(t *testing.T, open Open) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s enroll.Store, clk *Clock)
	}{
		{"AddRedeem", testAddRedeem},
		{"TokenRefusals", testTokenRefusals},
		{"AddReplacesToken", testAddReplacesToken},
		{"CheckFailureKeepsToken", testCheckFailureKeepsToken},
		{"Revoke", testRevoke},
		{"ConcurrentRedeem", testConcurrentRedeem},
		{"BadInput", testBadInput},
		{"Close", testClose},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := NewClock(time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC))
			tc.fn(t, open(t, enroll.Options{TTL: ttl, Now: clk.Now}), clk)
		})
	}
}

var ctx = context.Background()

func add(t *testing.T, s enroll.Store, id string, labels map[string]string) string {
	t.Helper()
	tok, err := s.Add(ctx, id, labels)
	if err != nil {
		t.Fatalf("add %s: %v", id, err)
	}
	return tok
}

func testAddRedeem(t *testing.T, s enroll.Store, clk *Clock) {
	tok := add(t, s, "box-17", map[string]string{"site": "a", "line": "3"})
	if b, err := base64.RawURLEncoding.DecodeString(tok); err != nil || len(b) != 32 {
		t.Fatalf("token %q: %d bytes, %v; want 32 bytes base64url", tok, len(b), err)
	}
	if tok2 := add(t, s, "box-18", nil); tok2 == tok {
		t.Fatal("two devices got the same token")
	}
	d, err := s.Device(ctx, "box-17")
	if err != nil || !d.Enrolled.IsZero() || !d.Added.Equal(clk.Now()) {
		t.Fatalf("device before redeem: %+v, %v", d, err)
	}
	clk.Advance(time.Minute)
	d, err = s.Redeem(ctx, tok, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d.ID != "box-17" || d.Labels["site"] != "a" || d.Labels["line"] != "3" || !d.Enrolled.Equal(clk.Now()) {
		t.Fatalf("redeemed %+v", d)
	}
	if got, _ := s.Device(ctx, "box-17"); !got.Enrolled.Equal(clk.Now()) || got.Labels["line"] != "3" {
		t.Fatalf("device after redeem: %+v", got)
	}
	if _, err := s.Device(ctx, "box-99"); !errors.Is(err, enroll.ErrNotFound) {
		t.Fatalf("unknown device: %v", err)
	}
}

func testTokenRefusals(t *testing.T, s enroll.Store, clk *Clock) {
	used := add(t, s, "box-1", nil)
	if _, err := s.Redeem(ctx, used, nil); err != nil {
		t.Fatal(err)
	}
	expiring := add(t, s, "box-2", nil)
	clk.Advance(ttl)
	for _, tc := range []struct {
		name, token string
		want        error
	}{
		{"reused", used, enroll.ErrTokenUsed},
		{"expired", expiring, enroll.ErrTokenExpired},
		{"unknown", base64.RawURLEncoding.EncodeToString(make([]byte, 32)), enroll.ErrUnknownToken},
		{"empty", "", enroll.ErrUnknownToken},
	} {
		if _, err := s.Redeem(ctx, tc.token, nil); !errors.Is(err, tc.want) {
			t.Errorf("%s token: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func testAddReplacesToken(t *testing.T, s enroll.Store, _ *Clock) {
	old := add(t, s, "box-1", map[string]string{"site": "a"})
	tok := add(t, s, "box-1", map[string]string{"site": "b"})
	if _, err := s.Redeem(ctx, old, nil); !errors.Is(err, enroll.ErrUnknownToken) {
		t.Fatalf("replaced token: %v", err)
	}
	d, err := s.Redeem(ctx, tok, nil)
	if err != nil || d.Labels["site"] != "b" {
		t.Fatalf("new token: %+v, %v", d, err)
	}
	// Re-adding an enrolled device gives it a fresh token (a box that lost its key).
	again := add(t, s, "box-1", nil)
	if _, err := s.Redeem(ctx, again, nil); err != nil {
		t.Fatal(err)
	}
}

func testCheckFailureKeepsToken(t *testing.T, s enroll.Store, _ *Clock) {
	tok := add(t, s, "box-1", nil)
	refuse := errors.New("bad request")
	var saw string
	_, err := s.Redeem(ctx, tok, func(d enroll.Device) error { saw = d.ID; return refuse })
	if !errors.Is(err, refuse) || saw != "box-1" {
		t.Fatalf("check failure: %v (check saw %q)", err, saw)
	}
	if d, _ := s.Device(ctx, "box-1"); !d.Enrolled.IsZero() {
		t.Fatal("a failed check marked the device enrolled")
	}
	if _, err := s.Redeem(ctx, tok, func(enroll.Device) error { return nil }); err != nil {
		t.Fatalf("token after a failed check: %v", err)
	}
}

func testRevoke(t *testing.T, s enroll.Store, _ *Clock) {
	tok := add(t, s, "box-1", nil)
	if r, err := s.IsRevoked(ctx, "box-1"); r || err != nil {
		t.Fatalf("before revoke: %v, %v", r, err)
	}
	for range 2 { // idempotent
		if err := s.Revoke(ctx, "box-1"); err != nil {
			t.Fatal(err)
		}
	}
	if r, err := s.IsRevoked(ctx, "box-1"); !r || err != nil {
		t.Fatalf("after revoke: %v, %v", r, err)
	}
	if _, err := s.Redeem(ctx, tok, nil); !errors.Is(err, enroll.ErrRevoked) {
		t.Fatalf("token of a revoked device: %v", err)
	}
	if _, err := s.Add(ctx, "box-1", nil); !errors.Is(err, enroll.ErrRevoked) {
		t.Fatalf("re-adding a revoked device: %v", err)
	}
	if d, err := s.Device(ctx, "box-1"); err != nil || d.Revoked.IsZero() {
		t.Fatalf("revoked device: %+v, %v", d, err)
	}
	// A device never added (e.g. one that logged in with a password) can be revoked too.
	if err := s.Revoke(ctx, "box-9"); err != nil {
		t.Fatal(err)
	}
	if r, _ := s.IsRevoked(ctx, "box-9"); !r {
		t.Fatal("revoked unknown device not reported revoked")
	}
	if r, _ := s.IsRevoked(ctx, "box-10"); r {
		t.Fatal("unknown device reported revoked")
	}
}

func testConcurrentRedeem(t *testing.T, s enroll.Store, _ *Clock) {
	tok := add(t, s, "box-1", nil)
	var ok atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := s.Redeem(ctx, tok, nil); err == nil {
				ok.Add(1)
			} else if !errors.Is(err, enroll.ErrTokenUsed) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 1 {
		t.Fatalf("%d redeems succeeded, want exactly 1", ok.Load())
	}
}

func testBadInput(t *testing.T, s enroll.Store, _ *Clock) {
	for _, id := range []string{"", "a/b", "box 1", string(make([]byte, 65))} {
		if _, err := s.Add(ctx, id, nil); err == nil {
			t.Errorf("Add(%q) accepted", id)
		}
	}
	if _, err := s.Add(ctx, "box-1", map[string]string{"": "x"}); err == nil {
		t.Error("empty label key accepted")
	}
}

func testClose(t *testing.T, s enroll.Store, _ *Clock) {
	tok := add(t, s, "box-1", nil)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := s.Redeem(ctx, tok, nil); !errors.Is(err, enroll.ErrClosed) {
		t.Fatalf("redeem after close: %v", err)
	}
	if _, err := s.Add(ctx, "box-2", nil); !errors.Is(err, enroll.ErrClosed) {
		t.Fatalf("add after close: %v", err)
	}
	if _, err := s.IsRevoked(ctx, "box-1"); !errors.Is(err, enroll.ErrClosed) {
		t.Fatalf("is revoked after close: %v", err)
	}
}
