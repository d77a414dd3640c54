package operator

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"sync"
	"time"
)

// Errors of Tickets.
var (
	// ErrBadTicket: no such ticket, or it was used or has expired.
	ErrBadTicket = errors.New("operator: unknown, used or expired ticket")
	// ErrTooManyTickets: MaxTickets are outstanding.
	ErrTooManyTickets = errors.New("operator: too many outstanding tickets")
)

// TicketTTL is how long a ticket is valid by default.
const TicketTTL = 30 * time.Second

// MaxTickets bounds the tickets outstanding at once.
const MaxTickets = 10000

// TicketPrefix starts every ticket; tickets are not tokens.
const TicketPrefix = "eft_"

// TicketOffice hands out short-lived, single-use tickets that stand for
// an identity where a client cannot send a header (a browser's
// EventSource). A ticket is not a token: it is good for one request
// within its TTL, and only where the server accepts tickets. Two
// implementations share one behaviour (operatortest.RunTickets): Tickets
// in this process's memory (one fleetd) and PostgresTickets (replicas: a
// ticket issued by one is redeemed by any, once). Implementations are
// safe for concurrent use.
type TicketOffice interface {
	// Issue returns a new ticket for id and when it expires;
	// ErrTooManyTickets when MaxTickets are outstanding.
	Issue(ctx context.Context, id Identity) (string, time.Time, error)
	// Redeem returns the identity of a ticket and forgets the ticket;
	// ErrBadTicket if it is unknown, used or expired.
	Redeem(ctx context.Context, ticket string) (Identity, error)
}

// Tickets is a TicketOffice in this process's memory. It is safe for
// concurrent use.
type Tickets struct {
	ttl time.Duration
	now func() time.Time

	mu sync.Mutex
	m  map[[sha256.Size]byte]ticket
}

type ticket struct {
	id      Identity
	expires time.Time
}

// NewTickets returns a ticket office whose tickets live ttl (0: TicketTTL).
func NewTickets(ttl time.Duration, o Options) *Tickets {
	if ttl <= 0 {
		ttl = TicketTTL
	}
	return &Tickets{ttl: ttl, now: o.withDefaults().Now, m: map[[sha256.Size]byte]ticket{}}
}

var _ TicketOffice = (*Tickets)(nil)

func newTicket() (string, [sha256.Size]byte) {
	b := make([]byte, 32)
	rand.Read(b)
	tk := TicketPrefix + base64.RawURLEncoding.EncodeToString(b)
	return tk, sha256.Sum256([]byte(tk))
}

// Issue implements TicketOffice.
func (t *Tickets) Issue(_ context.Context, id Identity) (string, time.Time, error) {
	tk, h := newTicket()
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.m) >= MaxTickets {
		for h, v := range t.m {
			if !now.Before(v.expires) {
				delete(t.m, h)
			}
		}
		if len(t.m) >= MaxTickets {
			return "", time.Time{}, ErrTooManyTickets
		}
	}
	exp := now.Add(t.ttl)
	t.m[h] = ticket{id: id, expires: exp}
	return tk, exp, nil
}

// Redeem implements TicketOffice.
func (t *Tickets) Redeem(_ context.Context, tk string) (Identity, error) {
	h := sha256.Sum256([]byte(tk))
	t.mu.Lock()
	defer t.mu.Unlock()
	v, ok := t.m[h]
	delete(t.m, h)
	if !ok || !t.now().Before(v.expires) {
		return Identity{}, ErrBadTicket
	}
	return v.id, nil
}
