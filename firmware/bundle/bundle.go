// Package bundle is the signed agent bundle: an edge-agent binary and the
// signed manifest (kind firmware) that names its target OS and architecture,
// version, minimum config schema, sha256 and size.
//
// A bundle travels two ways. Over the fleet it is an api.Artifact: the
// manifest, signature and key id in the command, the binary downloaded from
// the artifact URL. As a file (fleetctl firmware bundle, edge-launcher
// install) it is one stream:
//
//	"EFBNDL01"                       8 bytes, magic and format version
//	u32 big-endian  n | manifest     canonical manifest JSON (manifest.Encode)
//	u16 big-endian  n | key id
//	u16 big-endian  n | signature    ed25519 over the manifest, 64 bytes
//	payload                          the binary, exactly manifest.Size bytes
//
// Everything about a bundle that can be checked before its payload is
// written anywhere is checked first ([Check]: signature, kind, platform,
// config schema); [Copy] then checks the ELF header of the payload before
// the first byte leaves it, and its length and sha256 by the end. Errors
// wrap the sentinels below or manifest's (ErrUnsigned, ErrUnknownKey,
// ErrBadSignature, ErrMalformed, ErrMismatch).
package bundle

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"runtime"
	"time"

	"edgefleet/models/manifest"
)

// Magic starts every bundle file.
const Magic = "EFBNDL01"

// MaxKeyID bounds the key id in a bundle header.
const MaxKeyID = 128

// Errors returned (wrapped) by this package. Test with errors.Is.
var (
	// ErrFormat means the stream is not a bundle (bad magic or header).
	ErrFormat = errors.New("bundle: not an agent bundle")
	// ErrKind means the manifest is not a firmware manifest.
	ErrKind = errors.New("bundle: not a firmware manifest")
	// ErrPlatform means the bundle, or the binary in it, is for another OS
	// or architecture than the target.
	ErrPlatform = errors.New("bundle: wrong platform")
	// ErrConfigSchema means the bundle needs a newer config schema than the
	// device has.
	ErrConfigSchema = errors.New("bundle: config schema too old")
	// ErrTruncated means the payload ended before manifest.Size bytes.
	ErrTruncated = errors.New("bundle: truncated payload")
	// ErrTooLong means the payload goes on past manifest.Size bytes.
	ErrTooLong = errors.New("bundle: payload longer than its manifest says")
)

// Header is the signed part of a bundle.
type Header struct {
	Manifest []byte // canonical manifest JSON
	Sig      []byte // ed25519 signature over Manifest
	KeyID    string // id of the signing key
}

// Target is the device a bundle is checked against. The zero value means
// this process's runtime.GOOS and runtime.GOARCH, with any config schema.
type Target struct {
	OS, Arch string
	// ConfigSchema is the device's config schema; 0 skips the check.
	ConfigSchema int
}

func (t Target) withDefaults() Target {
	if t.OS == "" {
		t.OS = runtime.GOOS
	}
	if t.Arch == "" {
		t.Arch = runtime.GOARCH
	}
	return t
}

// Check verifies h's signature against the pinned keys and that its manifest
// is a firmware manifest for the target. It reads nothing but h.
func Check(keys manifest.KeySet, h Header, t Target) (*manifest.Manifest, error) {
	m, err := manifest.Verify(keys, h.Manifest, h.Sig, h.KeyID)
	if err != nil {
		return nil, fmt.Errorf("bundle: check: %w", err)
	}
	t = t.withDefaults()
	if m.Kind != manifest.KindFirmware {
		return nil, fmt.Errorf("bundle: check: %w: kind is %q", ErrKind, m.Kind)
	}
	if m.OS != t.OS || m.Arch != t.Arch {
		return nil, fmt.Errorf("bundle: check: %w: bundle is for %s/%s, this device is %s/%s", ErrPlatform, m.OS, m.Arch, t.OS, t.Arch)
	}
	if t.ConfigSchema > 0 && m.MinConfigSchema > t.ConfigSchema {
		return nil, fmt.Errorf("bundle: check: %w: bundle needs config schema %d, device has %d", ErrConfigSchema, m.MinConfigSchema, t.ConfigSchema)
	}
	return m, nil
}

// Copy copies exactly m.Size payload bytes from r to w. Before writing
// anything it checks that the payload starts with an ELF header for m's
// OS and Arch (ErrPlatform); it fails with ErrTruncated when r ends early,
// ErrTooLong when r has more, and manifest.ErrMismatch when the sha256
// differs. On error w may hold a prefix of the payload: write to a staging
// file, never straight to where the binary runs from.
func Copy(w io.Writer, r io.Reader, m *manifest.Manifest) error {
	h := sha256.New()
	head := make([]byte, min(elfHeaderLen, m.Size))
	n, err := io.ReadFull(r, head)
	if err != nil && int64(n) < m.Size {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return fmt.Errorf("bundle: copy: %w: %d of %d bytes", ErrTruncated, n, m.Size)
		}
		return fmt.Errorf("bundle: copy: %w", err)
	}
	if err := CheckELF(head, m.OS, m.Arch); err != nil {
		return fmt.Errorf("bundle: copy: %w", err)
	}
	h.Write(head)
	if _, err := w.Write(head); err != nil {
		return fmt.Errorf("bundle: copy: %w", err)
	}
	rest := m.Size - int64(n)
	c, err := io.Copy(io.MultiWriter(w, h), io.LimitReader(r, rest))
	if err != nil {
		return fmt.Errorf("bundle: copy: %w", err)
	}
	if c < rest {
		return fmt.Errorf("bundle: copy: %w: %d of %d bytes", ErrTruncated, int64(n)+c, m.Size)
	}
	var one [1]byte
	if k, _ := io.ReadFull(r, one[:]); k > 0 {
		return fmt.Errorf("bundle: copy: %w (%d bytes)", ErrTooLong, m.Size)
	}
	if err := m.Check(hex.EncodeToString(h.Sum(nil)), m.Size); err != nil {
		return fmt.Errorf("bundle: copy: %w", err)
	}
	return nil
}

// ForBinary builds the firmware manifest of the size-byte binary in r: OS
// and Arch from its ELF header and build info, its sha256 and size. version
// overrides the version stamped in the binary; one of them must be set.
func ForBinary(r io.ReaderAt, size int64, name, version string, minConfigSchema int, now time.Time) (*manifest.Manifest, error) {
	info, err := Inspect(r)
	if err != nil {
		return nil, err
	}
	if version == "" {
		version = info.Version
	}
	if version == "" {
		return nil, fmt.Errorf("bundle: manifest: the binary has no stamped %s; give a version", VersionVar)
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(r, 0, size)); err != nil {
		return nil, fmt.Errorf("bundle: manifest: %w", err)
	}
	m := &manifest.Manifest{Kind: manifest.KindFirmware, Name: name, Version: version,
		SHA256: hex.EncodeToString(h.Sum(nil)), Size: size, CreatedAt: now.UTC().Truncate(time.Second),
		OS: info.OS, Arch: info.Arch, MinConfigSchema: minConfigSchema}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("bundle: manifest: %w", err)
	}
	return m, nil
}

// Write writes a bundle: h's header followed by the payload from r.
// It does not check the signature; it checks only that the header fits the
// format.
func Write(w io.Writer, h Header, payload io.Reader) error {
	if len(h.Manifest) == 0 || len(h.Manifest) > manifest.MaxPayload {
		return fmt.Errorf("bundle: write: manifest of %d bytes", len(h.Manifest))
	}
	if h.KeyID == "" || len(h.KeyID) > MaxKeyID || len(h.Sig) == 0 || len(h.Sig) > 0xffff {
		return fmt.Errorf("bundle: write: key id %q and %d-byte signature do not fit", h.KeyID, len(h.Sig))
	}
	var buf bytes.Buffer
	buf.WriteString(Magic)
	buf.Write(binary.BigEndian.AppendUint32(nil, uint32(len(h.Manifest))))
	buf.Write(h.Manifest)
	buf.Write(binary.BigEndian.AppendUint16(nil, uint16(len(h.KeyID))))
	buf.WriteString(h.KeyID)
	buf.Write(binary.BigEndian.AppendUint16(nil, uint16(len(h.Sig))))
	buf.Write(h.Sig)
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("bundle: write: %w", err)
	}
	if _, err := io.Copy(w, payload); err != nil {
		return fmt.Errorf("bundle: write: %w", err)
	}
	return nil
}

// ReadHeader reads a bundle's header from r and leaves r at the payload.
// It checks the format only; pass the header to Check.
func ReadHeader(r io.Reader) (Header, error) {
	var magic [len(Magic)]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil {
		return Header{}, fmt.Errorf("bundle: read header: %w: %v", ErrFormat, err)
	}
	if string(magic[:]) != Magic {
		return Header{}, fmt.Errorf("bundle: read header: %w: magic %q", ErrFormat, magic[:])
	}
	field := func(name string, lenSize int, max int) ([]byte, error) {
		var lb [4]byte
		if _, err := io.ReadFull(r, lb[:lenSize]); err != nil {
			return nil, fmt.Errorf("bundle: read header: %w: %s length: %v", ErrFormat, name, err)
		}
		n := int(binary.BigEndian.Uint16(lb[:2]))
		if lenSize == 4 {
			n = int(binary.BigEndian.Uint32(lb[:4]))
		}
		if n == 0 || n > max {
			return nil, fmt.Errorf("bundle: read header: %w: %s of %d bytes (1..%d)", ErrFormat, name, n, max)
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, fmt.Errorf("bundle: read header: %w: %s: %v", ErrFormat, name, err)
		}
		return b, nil
	}
	var h Header
	var err error
	if h.Manifest, err = field("manifest", 4, manifest.MaxPayload); err != nil {
		return Header{}, err
	}
	kid, err := field("key id", 2, MaxKeyID)
	if err != nil {
		return Header{}, err
	}
	h.KeyID = string(kid)
	if h.Sig, err = field("signature", 2, 1024); err != nil {
		return Header{}, err
	}
	return h, nil
}
