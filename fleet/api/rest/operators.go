package rest

import (
	"fmt"
	"strings"
	"time"
)

// Operator roles, from least to most allowed: a viewer reads; an operator
// also pushes models and firmware and runs rollouts; an admin also
// manages devices, keys and tokens.
const (
	RoleViewer   = "viewer"
	RoleOperator = "operator"
	RoleAdmin    = "admin"
)

// Whoami is the body of GET /api/v1/whoami: who the request's token belongs to.
type Whoami struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

// CreateToken is the body of POST /api/v1/tokens.
type CreateToken struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

// Check validates the request without a server; the error names the field.
func (c CreateToken) Check() error {
	if c.Name == "" || len(c.Name) > 64 || strings.Trim(c.Name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-@") != "" {
		return fmt.Errorf("rest: name: %.70q is not 1 to 64 letters, digits, . _ - @", c.Name)
	}
	switch c.Role {
	case RoleViewer, RoleOperator, RoleAdmin:
		return nil
	}
	return fmt.Errorf("rest: role: %q is not viewer, operator or admin", c.Role)
}

// TokenCreated is the body of a 201 answer to POST /api/v1/tokens. Token
// is shown this once: fleetd keeps only its hash.
type TokenCreated struct {
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	Token     string    `json:"token"`
	CreatedAt time.Time `json:"created_at"`
}

// TokenInfo describes a token, without the token.
type TokenInfo struct {
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"created_at,omitzero"`
	// LastUsed is to the minute; zero if never used (since fleetd started, for a fixed token).
	LastUsed time.Time `json:"last_used,omitzero"`
	// Fixed marks a token from fleetd.yaml's operators: section; it is
	// revoked by removing it there.
	Fixed bool `json:"fixed,omitempty"`
}

// TokenList is the body of GET /api/v1/tokens.
type TokenList struct {
	Tokens []TokenInfo `json:"tokens"`
}

// TokenRevoked is the body of DELETE /api/v1/tokens/{name}.
type TokenRevoked struct {
	Revoked string `json:"revoked"`
}

// LiveTicket is the body of POST /api/v1/live/ticket: a single-use ticket
// for GET /api/v1/detections/stream?ticket=..., valid until ExpiresAt
// (30 s). It is not a token and works nowhere else.
type LiveTicket struct {
	Ticket    string    `json:"ticket"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Audit outcomes.
const (
	OutcomeOK      = "ok"
	OutcomeRefused = "refused"
	OutcomeFailed  = "failed"
)

// AuditEntry is one recorded operator action.
type AuditEntry struct {
	ID       uint64    `json:"id"`
	Time     time.Time `json:"time"`
	Operator string    `json:"operator"`
	Role     string    `json:"role"`
	// Action is e.g. "rollout.create", "rollout.abort", "model.push", "token.revoke".
	Action  string `json:"action"`
	Target  string `json:"target,omitempty"`
	Detail  string `json:"detail,omitempty"`
	Outcome string `json:"outcome"`
	Status  int    `json:"status"`
	Error   string `json:"error,omitempty"`
}

// AuditQuery is the query of GET /api/v1/audit: entries older than
// Before (an entry id; 0: the newest), at most Limit (0: 100; max 1000).
type AuditQuery struct {
	Before uint64
	Limit  int
}

// AuditList is the body of GET /api/v1/audit, newest first. Next is the
// Before of the following page; 0 on the last page.
type AuditList struct {
	Entries []AuditEntry `json:"entries"`
	Next    uint64       `json:"next,omitempty"`
}
