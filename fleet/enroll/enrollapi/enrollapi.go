// Package enrollapi is the wire contract of device enrollment, shared by
// fleetd's handlers (fleet/enroll) and the agent (agent/enroll): paths,
// request and response bodies, error codes. It imports nothing of either
// side.
//
// A device enrolls with POST PathEnroll {token, csr} over HTTPS and gets its
// certificate and the fleet CA bundle back; it renews with POST PathRenew
// {csr} over mutual TLS, proving who it is with its current certificate.
// Errors come back as a JSON Error with the HTTP status given by each code.
package enrollapi

// Paths of the enrollment endpoints on fleetd's HTTPS listener.
const (
	PathEnroll = "/api/v1/enroll"
	PathRenew  = "/api/v1/enroll/renew"
)

// MaxRequestSize caps a request body in bytes; larger ones get 413.
const MaxRequestSize = 64 << 10

// Request is the body of both endpoints. Token is required by PathEnroll
// and must be empty for PathRenew.
type Request struct {
	// Token is the one-time enrollment token fleetctl printed.
	Token string `json:"token,omitempty"`
	// CSR is a PEM certificate request whose common name is the device id
	// (or empty, for a first enrollment that does not know it yet).
	CSR string `json:"csr"`
}

// Response is the body of a successful enrollment or renewal.
type Response struct {
	// DeviceID is the certificate's subject: the device's identity.
	DeviceID string `json:"device_id"`
	// Certificate is the device certificate, PEM.
	Certificate string `json:"certificate"`
	// CA is the fleet CA bundle, PEM: what the device trusts for fleetd's
	// HTTPS and the broker's TLS listener.
	CA string `json:"ca"`
}

// Error is the body of every refusal.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"error"`
}

// Error codes, with the HTTP status each comes with.
const (
	CodeBadRequest    = "bad_request"    // 400: not JSON, unknown fields, missing fields
	CodeBadCSR        = "bad_csr"        // 400: malformed CSR, bad signature, key type
	CodeTooLarge      = "too_large"      // 413: body over MaxRequestSize
	CodeTokenUnknown  = "token_unknown"  // 401: no such token (or replaced by a newer one)
	CodeTokenExpired  = "token_expired"  // 401
	CodeTokenUsed     = "token_used"     // 401: tokens are single use
	CodeNoCertificate = "no_certificate" // 401: renewal without a client certificate
	CodeUntrusted     = "untrusted"      // 401: client certificate not from the fleet CA, or expired
	CodeRevoked       = "revoked"        // 403: the device is revoked
	CodeIdentity      = "identity"       // 403: the CSR names another device, or extra names
	CodeInternal      = "internal"       // 500
)
