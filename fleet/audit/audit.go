// Package audit is fleetd's record of operator actions: every call that
// changes something (a push, a rollout created, paused or aborted, a
// device added or revoked, a token made or revoked, a key changed) with
// who made it, their role, what and on what, when, and how it ended.
//
// Three Log implementations share one behaviour (audittest.Run): Bolt
// (bbolt) for one fleetd, Postgres for replicas on one database, and Mem
// for tests. Entries are never changed or deleted through a Log.
package audit

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Outcomes of an entry.
const (
	OK      = "ok"      // the action was done
	Refused = "refused" // the caller's role does not allow it (403)
	Failed  = "failed"  // the server answered with an error
)

// Entry is one recorded action.
type Entry struct {
	// ID orders entries: a later entry has a larger ID. Record sets it.
	ID   uint64
	Time time.Time
	// Operator and Role are who called: the token's name and role.
	Operator string
	Role     string
	// Action names what was asked, e.g. "rollout.create", "token.revoke".
	Action string
	// Target is what it was done to, e.g. "r3", "yolov8n@2", "alice".
	Target string
	// Detail adds what else identifies the action, e.g. the model of a rollout.
	Detail  string
	Outcome string
	// Status is the HTTP status answered, Error the reason of a failure.
	Status int
	Error  string
}

// Query selects entries: newest first, IDs below Before (0: from the
// newest), at most Limit (0: DefaultLimit; at most MaxLimit).
type Query struct {
	Before uint64
	Limit  int
}

// Page limits.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// Field limits: longer strings are cut, so an entry stays small.
const (
	maxField = 256
	maxError = 1024
)

// Errors of the logs.
var (
	// ErrBadEntry: the entry has no operator, action or outcome.
	ErrBadEntry = errors.New("audit: entry needs an operator, an action and an outcome")
	// ErrBadQuery: the limit is out of range.
	ErrBadQuery = errors.New("audit: bad query")
	// ErrClosed is returned by every method after Close.
	ErrClosed = errors.New("audit: log closed")
)

// Log records and lists entries. Implementations are safe for concurrent use.
type Log interface {
	// Record appends e, setting its ID (and its Time, if zero), and returns it.
	Record(ctx context.Context, e Entry) (Entry, error)
	// List returns the entries q selects, newest first.
	List(ctx context.Context, q Query) ([]Entry, error)
}

// Options configure the logs; the zero value is usable.
type Options struct {
	// Now is the clock for entries without a time; nil means time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// prepare checks e, cuts long fields and sets its time.
func prepare(e Entry, now func() time.Time) (Entry, error) {
	if e.Operator == "" || e.Action == "" || e.Outcome == "" {
		return e, ErrBadEntry
	}
	if e.Time.IsZero() {
		e.Time = now()
	}
	e.Time = e.Time.UTC()
	for _, f := range []*string{&e.Operator, &e.Role, &e.Action, &e.Target, &e.Detail, &e.Outcome} {
		*f = cut(*f, maxField)
	}
	e.Error = cut(e.Error, maxError)
	return e, nil
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 { // not inside a UTF-8 sequence
		n--
	}
	return s[:n] + "…"
}

// limit checks q and returns its limit.
func (q Query) limit() (int, error) {
	switch {
	case q.Limit < 0 || q.Limit > MaxLimit:
		return 0, fmt.Errorf("%w: limit %d is not in 0..%d", ErrBadQuery, q.Limit, MaxLimit)
	case q.Limit == 0:
		return DefaultLimit, nil
	}
	return q.Limit, nil
}
