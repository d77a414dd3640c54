// Package operator is who may call fleetd's REST API: roles, operator
// tokens and the short-lived tickets of the live feed.
//
// Roles are ordered: a viewer reads; an operator also pushes artifacts
// and runs rollouts; an admin also manages devices, keys and tokens.
//
// A token is "efo_" and 32 random bytes in base64url. It is shown once,
// when Store.Create makes it; stores keep only its SHA-256, and look a
// token up by that hash, so authenticating compares no names. Three Store
// implementations share one behaviour (operatortest.Run): Bolt (bbolt) for
// one fleetd, Postgres for replicas on one database, and Mem for tests;
// WithFixed puts the fixed tokens of fleetd's configuration in front of
// any. Live-feed tickets (TicketOffice) are kept in memory (Tickets) or,
// with replicas, in PostgreSQL (PostgresTickets).
package operator

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Role is an operator's level of access.
type Role string

// The roles, each allowed what the one before it is.
const (
	Viewer   Role = "viewer"
	Operator Role = "operator"
	Admin    Role = "admin"
)

// Roles lists the roles from least to most allowed.
var Roles = []Role{Viewer, Operator, Admin}

func (r Role) rank() int {
	switch r {
	case Viewer:
		return 1
	case Operator:
		return 2
	case Admin:
		return 3
	}
	return 0
}

// Valid reports whether r is one of Roles.
func (r Role) Valid() bool { return r.rank() > 0 }

// Allows reports whether r may do what needs the role min.
func (r Role) Allows(min Role) bool { return r.Valid() && r.rank() >= min.rank() }

// ParseRole returns the role named s.
func ParseRole(s string) (Role, error) {
	if r := Role(s); r.Valid() {
		return r, nil
	}
	return "", fmt.Errorf("%w: %q (viewer, operator or admin)", ErrBadRole, s)
}

// Identity is who a token belongs to.
type Identity struct {
	Name string
	Role Role
}

// Token describes a token; the token itself is never stored.
type Token struct {
	Name    string
	Role    Role
	Created time.Time
	// LastUsed is when the token last authenticated (to the minute); zero if never.
	LastUsed time.Time
	// Fixed marks a token from fleetd's configuration (WithFixed).
	Fixed bool
}

// Errors of the stores.
var (
	// ErrUnknownToken: no such token, or it was revoked.
	ErrUnknownToken = errors.New("operator: unknown token")
	// ErrExists: a token with that name exists.
	ErrExists = errors.New("operator: name already has a token")
	// ErrNotFound: no token with that name.
	ErrNotFound = errors.New("operator: no token with that name")
	// ErrBadName: the name is empty, too long or has other characters than letters, digits, . _ - @.
	ErrBadName = errors.New("operator: bad name")
	// ErrBadRole: the role is not viewer, operator or admin.
	ErrBadRole = errors.New("operator: bad role")
	// ErrFixed: the token is in fleetd's configuration; change it there.
	ErrFixed = errors.New("operator: token is fixed in fleetd's configuration")
	// ErrClosed is returned by every method after Close.
	ErrClosed = errors.New("operator: store closed")
)

// Store keeps operator tokens. Implementations are safe for concurrent use.
type Store interface {
	// Create makes a token for a new name and returns it, the only time
	// it is seen.
	Create(ctx context.Context, name string, role Role) (string, Token, error)
	// Authenticate returns the identity a token belongs to, or ErrUnknownToken.
	Authenticate(ctx context.Context, token string) (Identity, error)
	// List returns every token's description, sorted by name.
	List(ctx context.Context) ([]Token, error)
	// Revoke deletes a name's token; it stops working at once.
	Revoke(ctx context.Context, name string) error
}

// Options configure the stores; the zero value is usable.
type Options struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Prefix starts every token a Store makes.
const Prefix = "efo_"

// usedEvery is how stale a stored LastUsed may get before Authenticate
// writes it again: a write per request would cost an fsync each.
const usedEvery = time.Minute

// MaxName is the longest operator name.
const MaxName = 64

// CheckName returns an error wrapping ErrBadName unless name is 1..MaxName
// letters, digits, '.', '_', '-' or '@'.
func CheckName(name string) error {
	if name == "" || len(name) > MaxName {
		return fmt.Errorf("%w: %.70q must be 1 to %d characters", ErrBadName, name, MaxName)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._-@", c)) {
			return fmt.Errorf("%w: %q has character %q (allowed: letters, digits, . _ - @)", ErrBadName, name, c)
		}
	}
	return nil
}

func checkCreate(name string, role Role) error {
	if err := CheckName(name); err != nil {
		return err
	}
	if !role.Valid() {
		return fmt.Errorf("%w: %q (viewer, operator or admin)", ErrBadRole, role)
	}
	return nil
}

func newToken() (string, [sha256.Size]byte) {
	b := make([]byte, 32)
	rand.Read(b)
	tok := Prefix + base64.RawURLEncoding.EncodeToString(b)
	return tok, hashToken(tok)
}

func hashToken(tok string) [sha256.Size]byte { return sha256.Sum256([]byte(tok)) }

// plausible reports whether tok can be one a Store made, to skip the
// lookup of anything else.
func plausible(tok string) bool {
	return len(tok) == len(Prefix)+43 && strings.HasPrefix(tok, Prefix)
}

// wrap prefixes errors that are not already the package's own.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	for _, e := range []error{ErrUnknownToken, ErrExists, ErrNotFound, ErrBadName, ErrBadRole, ErrFixed, ErrClosed} {
		if errors.Is(err, e) {
			return err
		}
	}
	return fmt.Errorf("operator: %s: %w", op, err)
}
