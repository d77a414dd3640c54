package operatortest

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"edgefleet/fleet/operator"
)

// OpenTickets opens a fresh ticket office with tickets living ttl and the
// clock of o, for one test; it should close it at the test's cleanup.
type OpenTickets func(t *testing.T, ttl time.Duration, o operator.Options) operator.TicketOffice

// RunTickets runs the behaviour suite of ticket offices against those
// open makes.
func RunTickets(t *testing.T, open OpenTickets) {
	tests := []struct {
		name string
		fn   func(t *testing.T, tk operator.TicketOffice, clk *Clock)
	}{
		{"IssueRedeem", testTicketsIssueRedeem},
		{"Limit", testTicketsLimit},
		{"ConcurrentRedeem", testTicketsConcurrentRedeem},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := &Clock{now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
			tc.fn(t, open(t, 30*time.Second, operator.Options{Now: clk.Now}), clk)
		})
	}
}

var alice = operator.Identity{Name: "alice", Role: operator.Viewer}

func testTicketsIssueRedeem(t *testing.T, tk operator.TicketOffice, clk *Clock) {
	a, exp, err := tk.Issue(ctx, alice)
	if err != nil || !strings.HasPrefix(a, operator.TicketPrefix) || !exp.Equal(clk.Now().Add(30*time.Second)) {
		t.Fatalf("issue: %q %v %v", a, exp, err)
	}
	b, _, _ := tk.Issue(ctx, operator.Identity{Name: "bob", Role: operator.Admin})
	if a == b {
		t.Fatal("two tickets alike")
	}
	if id, err := tk.Redeem(ctx, a); err != nil || id != alice {
		t.Fatalf("redeem: %+v, %v", id, err)
	}
	for _, c := range []struct{ name, ticket string }{
		{"second redeem", a},
		{"unknown", operator.TicketPrefix + "nothing"},
		{"empty", ""},
		{"cut", b[:len(b)-1]},
	} {
		if _, err := tk.Redeem(ctx, c.ticket); !errors.Is(err, operator.ErrBadTicket) {
			t.Errorf("%s: %v, want ErrBadTicket", c.name, err)
		}
	}
	clk.Advance(30 * time.Second)
	if _, err := tk.Redeem(ctx, b); !errors.Is(err, operator.ErrBadTicket) {
		t.Fatalf("expired ticket: %v", err)
	}
	c, _, _ := tk.Issue(ctx, alice)
	clk.Advance(29 * time.Second)
	if id, err := tk.Redeem(ctx, c); err != nil || id != alice {
		t.Fatalf("ticket within its ttl: %+v, %v", id, err)
	}
}

func testTicketsLimit(t *testing.T, tk operator.TicketOffice, clk *Clock) {
	var wg sync.WaitGroup
	var failed atomic.Int32
	for range 4 {
		wg.Go(func() {
			for range operator.MaxTickets / 4 {
				if _, _, err := tk.Issue(ctx, alice); err != nil {
					failed.Add(1)
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.FailNow()
	}
	if _, _, err := tk.Issue(ctx, alice); !errors.Is(err, operator.ErrTooManyTickets) {
		t.Fatalf("past MaxTickets: %v", err)
	}
	clk.Advance(31 * time.Second) // all expired: issuing purges them
	for range 2 {
		if _, _, err := tk.Issue(ctx, alice); err != nil {
			t.Fatalf("after expiry: %v", err)
		}
	}
}

func testTicketsConcurrentRedeem(t *testing.T, tk operator.TicketOffice, _ *Clock) {
	a, _, err := tk.Issue(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	var ok atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := tk.Redeem(ctx, a); err == nil {
				ok.Add(1)
			} else if !errors.Is(err, operator.ErrBadTicket) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 1 {
		t.Fatalf("%d redeems of one ticket succeeded, want 1", ok.Load())
	}
}
