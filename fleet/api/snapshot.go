package api

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
)

// Snapshots: fleetd asks a device for the newest frame of one camera with a
// Command of kind CommandSnapshot on the device's commands topic (JobID is
// the request id, a fresh random id per request); the device answers on
// SnapshotTopic(device, request id) with one SnapshotReply.
//
// A reply is binary, so a JPEG near the cap is not inflated by base64:
//
//	"EFSNAP1\n"            8 bytes, SnapshotMagic
//	header length n        2 bytes, big endian, at most MaxSnapshotHeader
//	header                 n bytes of JSON: SnapshotHeader
//	JPEG                   the rest; empty when the header carries an error
//
// The whole payload is at most MaxPayload, below the broker's packet limit.

// KindSnapshot is the topic kind of snapshot replies:
// edgefleet/v1/<device>/snapshot/<request id>.
const KindSnapshot = "snapshot"

// CommandSnapshot asks a device for a snapshot (Command.Snapshot).
const CommandSnapshot = "snapshot"

// SnapshotTopic carries the reply to one snapshot request, from the device.
func SnapshotTopic(device, request string) string {
	return DeviceTopic(device, KindSnapshot) + "/" + request
}

// Limits of a snapshot reply.
const (
	// SnapshotMagic starts every reply.
	SnapshotMagic = "EFSNAP1\n"
	// MaxSnapshotHeader is the most bytes of JSON header.
	MaxSnapshotHeader = 4 << 10
	// MaxSnapshotBytes is the largest JPEG a reply may carry, and what a
	// request with MaxBytes 0 gets.
	MaxSnapshotBytes = MaxPayload - len(SnapshotMagic) - 2 - MaxSnapshotHeader
)

// Snapshot error codes a device replies with.
const (
	SnapshotUnknownCamera = "unknown_camera" // no camera of that id
	SnapshotNoFrame       = "no_frame"       // the camera has delivered no frame yet
	SnapshotRateLimited   = "rate_limited"   // asked too often; try again shortly
	SnapshotFailed        = "failed"         // anything else (encoding, size)
)

// SnapshotRequest is what a CommandSnapshot asks for.
type SnapshotRequest struct {
	Camera string `json:"camera"`
	// MaxBytes caps the JPEG (1..MaxSnapshotBytes; 0 means MaxSnapshotBytes):
	// the device lowers quality, then size, to fit.
	MaxBytes int `json:"max_bytes,omitempty"`
}

// Validate checks the camera id and the size cap.
func (s *SnapshotRequest) Validate() error {
	if err := ValidateID(s.Camera); err != nil {
		return fmt.Errorf("camera: %w", err)
	}
	if s.MaxBytes < 0 || s.MaxBytes > MaxSnapshotBytes {
		return fmt.Errorf("max_bytes %d outside 0..%d", s.MaxBytes, MaxSnapshotBytes)
	}
	return nil
}

// Limit is the JPEG size cap the request asks for.
func (s *SnapshotRequest) Limit() int {
	if s.MaxBytes <= 0 {
		return MaxSnapshotBytes
	}
	return s.MaxBytes
}

// SnapshotHeader describes a reply: the JPEG's frame, or an error.
type SnapshotHeader struct {
	DeviceID  string `json:"device_id"`
	RequestID string `json:"request_id"`
	Camera    string `json:"camera"`
	// Error is one of the Snapshot* codes; empty on success.
	Error string `json:"error,omitempty"`
	// Reason says more about Error, for the operator.
	Reason string `json:"reason,omitempty"`
	// Width and Height are the JPEG's size; it may be scaled down from
	// the camera's to fit the cap.
	Width  int `json:"width,omitempty"`
	Height int `json:"height,omitempty"`
	// Time is when the frame was captured, unix milliseconds.
	Time int64 `json:"time_ms,omitempty"`
}

// Validate checks the ids and the error code.
func (h *SnapshotHeader) Validate() error {
	if err := ValidateID(h.DeviceID); err != nil {
		return fmt.Errorf("device_id: %w", err)
	}
	if err := ValidateID(h.RequestID); err != nil {
		return fmt.Errorf("request_id: %w", err)
	}
	if err := ValidateID(h.Camera); err != nil {
		return fmt.Errorf("camera: %w", err)
	}
	switch h.Error {
	case "", SnapshotUnknownCamera, SnapshotNoFrame, SnapshotRateLimited, SnapshotFailed:
	default:
		return fmt.Errorf("unknown error code %q", h.Error)
	}
	if h.Width < 0 || h.Height < 0 {
		return fmt.Errorf("negative size %dx%d", h.Width, h.Height)
	}
	return nil
}

// SnapshotReply is a device's answer to one snapshot request.
type SnapshotReply struct {
	Header SnapshotHeader
	// JPEG is the image; nil when Header.Error is set.
	JPEG []byte
}

// ErrBadSnapshot is returned by ParseSnapshotReply and EncodeSnapshotReply
// for a reply outside the contract.
var ErrBadSnapshot = errors.New("api: bad snapshot reply")

// EncodeSnapshotReply returns the wire form of r.
func EncodeSnapshotReply(r *SnapshotReply) ([]byte, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	h, err := json.Marshal(&r.Header)
	if err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrBadSnapshot, err)
	}
	if len(h) > MaxSnapshotHeader {
		return nil, fmt.Errorf("%w: header of %d bytes exceeds %d", ErrBadSnapshot, len(h), MaxSnapshotHeader)
	}
	out := make([]byte, 0, len(SnapshotMagic)+2+len(h)+len(r.JPEG))
	out = append(out, SnapshotMagic...)
	out = binary.BigEndian.AppendUint16(out, uint16(len(h)))
	out = append(out, h...)
	return append(out, r.JPEG...), nil
}

// ParseSnapshotReply parses a reply strictly: size-limited, a known magic,
// a header that decodes strictly and validates, and a JPEG (starting with
// the JPEG start-of-image marker) exactly when there is no error. The JPEG
// is a copy: payload is not kept.
func ParseSnapshotReply(payload []byte) (SnapshotReply, error) {
	if len(payload) > MaxPayload {
		return SnapshotReply{}, fmt.Errorf("%w: payload of %d bytes exceeds %d", ErrBadSnapshot, len(payload), MaxPayload)
	}
	rest, ok := bytes.CutPrefix(payload, []byte(SnapshotMagic))
	if !ok {
		return SnapshotReply{}, fmt.Errorf("%w: no %q magic", ErrBadSnapshot, SnapshotMagic[:7])
	}
	if len(rest) < 2 {
		return SnapshotReply{}, fmt.Errorf("%w: truncated header length", ErrBadSnapshot)
	}
	n := int(binary.BigEndian.Uint16(rest))
	rest = rest[2:]
	if n > MaxSnapshotHeader || n > len(rest) {
		return SnapshotReply{}, fmt.Errorf("%w: header length %d (have %d bytes, most %d)", ErrBadSnapshot, n, len(rest), MaxSnapshotHeader)
	}
	var r SnapshotReply
	if err := Decode(rest[:n], &r.Header); err != nil {
		return SnapshotReply{}, fmt.Errorf("%w: %v", ErrBadSnapshot, err)
	}
	if body := rest[n:]; len(body) > 0 {
		r.JPEG = bytes.Clone(body)
	}
	if err := r.check(); err != nil {
		return SnapshotReply{}, err
	}
	return r, nil
}

// check validates the header and that a JPEG comes exactly with success.
func (r *SnapshotReply) check() error {
	if err := r.Header.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrBadSnapshot, err)
	}
	switch {
	case r.Header.Error != "" && len(r.JPEG) > 0:
		return fmt.Errorf("%w: error %s with %d bytes of image", ErrBadSnapshot, r.Header.Error, len(r.JPEG))
	case r.Header.Error == "" && !bytes.HasPrefix(r.JPEG, []byte{0xFF, 0xD8}):
		return fmt.Errorf("%w: no JPEG image", ErrBadSnapshot)
	case len(r.JPEG) > MaxSnapshotBytes:
		return fmt.Errorf("%w: image of %d bytes exceeds %d", ErrBadSnapshot, len(r.JPEG), MaxSnapshotBytes)
	}
	return nil
}
