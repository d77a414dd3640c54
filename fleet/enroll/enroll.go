// Package enroll registers devices for enrollment and turns one-time
// enrollment tokens into device certificates.
//
// An operator adds a device (Store.Add) and gets a token: 32 random bytes,
// base64url, kept only as its SHA-256, valid for a TTL and usable once.
// The device redeems it with a certificate request at POST
// /api/v1/enroll and gets a certificate from the fleet CA (fleet/pki); it
// renews that certificate itself over mutual TLS at POST
// /api/v1/enroll/renew (Handler). A revoked device can neither enroll nor
// renew, and Store implements pki.Revocations so that every TLS listener
// refuses its certificate. Revoking is permanent for a device id.
//
// Two Store implementations share one behaviour (enrolltest.Run): Bolt
// (bbolt) for fleetd, and Mem for tests.
package enroll

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"time"

	"edgefleet/fleet/api"
	"edgefleet/fleet/pki"
)

// Errors returned by stores.
var (
	// ErrUnknownToken: no such token, or it was replaced by a newer one.
	ErrUnknownToken = errors.New("enroll: unknown token")
	// ErrTokenExpired: the token's TTL has passed.
	ErrTokenExpired = errors.New("enroll: token expired")
	// ErrTokenUsed: the token was redeemed before.
	ErrTokenUsed = errors.New("enroll: token already used")
	// ErrRevoked: the device is revoked.
	ErrRevoked = errors.New("enroll: device revoked")
	// ErrNotFound: no such device.
	ErrNotFound = errors.New("enroll: no such device")
	// ErrClosed is returned by every method after Close.
	ErrClosed = errors.New("enroll: store closed")
)

// DefaultTTL is how long a token is valid when Options.TTL is zero.
const DefaultTTL = 24 * time.Hour

// Device is a device registered for enrollment.
type Device struct {
	ID     string
	Labels map[string]string
	// Added is when the latest token was made.
	Added time.Time
	// Enrolled is when a token was last redeemed; zero if never.
	Enrolled time.Time
	// Revoked is when the device was revoked; zero if it is not.
	Revoked time.Time
}

// Store keeps devices and their enrollment tokens. Implementations are safe
// for concurrent use.
type Store interface {
	// Add registers id with labels (replacing earlier labels) and returns a
	// new token; an earlier token of id stops working. A revoked id gives
	// ErrRevoked.
	Add(ctx context.Context, id string, labels map[string]string) (token string, err error)
	// Redeem uses a token once and returns its device. check, if not nil,
	// runs first, with the device; if it fails, the token stays unused and
	// its error is returned (so that a refused certificate request does not
	// burn the token). Errors: ErrUnknownToken, ErrTokenExpired,
	// ErrTokenUsed, ErrRevoked.
	Redeem(ctx context.Context, token string, check func(Device) error) (Device, error)
	// Revoke revokes id, known or not, for good: its tokens stop working
	// and IsRevoked reports it.
	Revoke(ctx context.Context, id string) error
	// IsRevoked reports whether id is revoked (pki.Revocations).
	IsRevoked(ctx context.Context, id string) (bool, error)
	// Device returns a registered device, or ErrNotFound.
	Device(ctx context.Context, id string) (Device, error)
	// Close releases the store; it is safe to call twice.
	Close() error
}

var _ pki.Revocations = Store(nil)

// Options configures a store. The zero value is usable.
type Options struct {
	// TTL is how long a token is valid; 0 means DefaultTTL.
	TTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// newToken returns a new token and its hash.
func newToken() (string, [sha256.Size]byte) {
	b := make([]byte, 32)
	rand.Read(b)
	tok := base64.RawURLEncoding.EncodeToString(b)
	return tok, hashToken(tok)
}

func hashToken(tok string) [sha256.Size]byte { return sha256.Sum256([]byte(tok)) }

// Label limits: labels select devices in rollouts and queries, nothing more.
const (
	maxLabels   = 32
	maxLabelLen = 128
)

func checkAdd(id string, labels map[string]string) error {
	if err := api.ValidateID(id); err != nil {
		return fmt.Errorf("enroll: add: device id: %w", err)
	}
	if len(labels) > maxLabels {
		return fmt.Errorf("enroll: add %s: %d labels, at most %d", id, len(labels), maxLabels)
	}
	for k, v := range labels {
		if k == "" || len(k) > maxLabelLen || len(v) > maxLabelLen {
			return fmt.Errorf("enroll: add %s: label %.32q: empty key or longer than %d", id, k, maxLabelLen)
		}
	}
	return nil
}

func cloneDevice(d Device) Device {
	d.Labels = maps.Clone(d.Labels)
	return d
}
