package broker

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"sync"

	"edgefleet/fleet/api"
)

// ErrBadCredentials is returned by an Authenticator for an unknown user or a
// wrong password. The broker answers it with CONNACK "bad username or password".
var ErrBadCredentials = errors.New("broker: bad credentials")

// Role says what an authenticated client may do.
type Role int

const (
	// RoleDevice may publish only to edgefleet/v1/<id>/{state,telemetry,detections,jobs/<job>}
	// and subscribe only to edgefleet/v1/<id>/{acks,commands}; its MQTT client id must be
	// its device id.
	RoleDevice Role = iota + 1
	// RoleService (fleetd's own ingest, tools) may publish and subscribe anywhere.
	RoleService
)

func (r Role) String() string {
	switch r {
	case RoleDevice:
		return "device"
	case RoleService:
		return "service"
	}
	return fmt.Sprintf("role(%d)", int(r))
}

// Identity is who a client turned out to be.
type Identity struct {
	Role Role
	// DeviceID is the device a RoleDevice client speaks for; empty for services.
	DeviceID string
}

// Authenticator checks the username and password of a connecting client. A
// device authenticates with username = its device id and its password or
// token. The device registry implements it in fleetd; StaticAuth is the
// in-memory implementation. Implementations must be safe for concurrent use.
type Authenticator interface {
	// Authenticate returns the client's Identity, or an error wrapping
	// ErrBadCredentials when the credentials do not match.
	Authenticate(ctx context.Context, username string, password []byte) (Identity, error)
}

// StaticAuth is an in-memory Authenticator: a table of devices and service
// users with their passwords. Only SHA-256 digests of the passwords are kept,
// compared in constant time. It is safe for concurrent use.
type StaticAuth struct {
	mu       sync.RWMutex
	devices  map[string][sha256.Size]byte
	services map[string][sha256.Size]byte
}

var _ Authenticator = (*StaticAuth)(nil)

// NewStaticAuth returns an empty table: every login fails until devices or
// services are added.
func NewStaticAuth() *StaticAuth {
	return &StaticAuth{
		devices:  make(map[string][sha256.Size]byte),
		services: make(map[string][sha256.Size]byte),
	}
}

// SetDevice adds or replaces device id with its password or token.
func (a *StaticAuth) SetDevice(id, password string) error {
	if err := api.ValidateID(id); err != nil {
		return fmt.Errorf("broker: set device: %w", err)
	}
	if password == "" {
		return fmt.Errorf("broker: set device %s: empty password", id)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.services[id]; ok {
		return fmt.Errorf("broker: set device %s: name already used by a service", id)
	}
	a.devices[id] = sha256.Sum256([]byte(password))
	return nil
}

// RemoveDevice forgets a device; its next login fails (a connected session
// stays until it disconnects).
func (a *StaticAuth) RemoveDevice(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.devices, id)
}

// SetService adds or replaces a service user, which has access to every topic.
func (a *StaticAuth) SetService(user, password string) error {
	if user == "" || password == "" {
		return errors.New("broker: set service: empty user or password")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.devices[user]; ok {
		return fmt.Errorf("broker: set service %s: name already used by a device", user)
	}
	a.services[user] = sha256.Sum256([]byte(password))
	return nil
}

// Authenticate implements Authenticator.
func (a *StaticAuth) Authenticate(_ context.Context, username string, password []byte) (Identity, error) {
	sum := sha256.Sum256(password)
	a.mu.RLock()
	dev, isDev := a.devices[username]
	svc, isSvc := a.services[username]
	a.mu.RUnlock()
	switch {
	case isDev && subtle.ConstantTimeCompare(sum[:], dev[:]) == 1:
		return Identity{Role: RoleDevice, DeviceID: username}, nil
	case isSvc && subtle.ConstantTimeCompare(sum[:], svc[:]) == 1:
		return Identity{Role: RoleService}, nil
	}
	return Identity{}, fmt.Errorf("%w: user %q", ErrBadCredentials, username)
}
