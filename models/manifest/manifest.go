// Package manifest describes a signed artifact — a detection model or an
// agent bundle — and signs and verifies it with ed25519.
//
// A Manifest travels as its canonical JSON encoding (Encode) together with an
// ed25519 signature over exactly those bytes and the id of the signing key.
// Verify accepts a manifest only if the key id is pinned in the KeySet, the
// signature checks, and the payload is the canonical encoding of a valid
// manifest (so two parsers cannot read one payload two ways, e.g. through
// duplicate keys).
//
// It is a leaf package shared by the agent (which verifies) and fleetd (which
// signs); it imports nothing of fleet/ or agent/.
package manifest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"edgefleet/models/tfmodel"
)

// Artifact kinds.
const (
	KindModel    = "model"
	KindFirmware = "firmware"
)

// MaxPayload is the largest manifest payload Verify and Parse accept.
const MaxPayload = 256 << 10

// Errors returned (wrapped) by Verify and Parse. Test with errors.Is.
var (
	// ErrUnsigned means the payload, signature or key id is missing.
	ErrUnsigned = errors.New("manifest: unsigned")
	// ErrUnknownKey means the key id is not among the pinned keys.
	ErrUnknownKey = errors.New("manifest: signed by an unknown key")
	// ErrBadSignature means the signature does not match payload and key.
	ErrBadSignature = errors.New("manifest: bad signature")
	// ErrMalformed means the payload is not the canonical encoding of a valid manifest.
	ErrMalformed = errors.New("manifest: malformed")
	// ErrMismatch means an artifact's bytes do not match its manifest.
	ErrMismatch = errors.New("manifest: artifact does not match")
)

// Tensor is the signature of one model input or output.
type Tensor struct {
	Name  string `json:"name"`
	Type  string `json:"type"` // e.g. "int8", "float32"
	Shape []int  `json:"shape"`
	// Scale and ZeroPoint are the per-tensor quantization, when quantized.
	Scale     float32 `json:"scale,omitempty"`
	ZeroPoint int64   `json:"zero_point,omitempty"`
}

// Manifest describes one artifact. Fields after Labels apply to firmware only.
type Manifest struct {
	Kind      string    `json:"kind"` // KindModel or KindFirmware
	Name      string    `json:"name"`
	Version   string    `json:"version"`
	SHA256    string    `json:"sha256"` // lowercase hex of the artifact bytes
	Size      int64     `json:"size"`
	CreatedAt time.Time `json:"created_at"` // UTC, whole seconds
	// Inputs and Outputs are the model's tensors (models only).
	Inputs  []Tensor `json:"inputs,omitempty"`
	Outputs []Tensor `json:"outputs,omitempty"`
	// Labels are the class names, index = class id.
	Labels []string `json:"labels,omitempty"`
	// OS and Arch are the target platform of a firmware bundle (GOOS/GOARCH).
	OS   string `json:"os,omitempty"`
	Arch string `json:"arch,omitempty"`
	// MinConfigSchema is the oldest agent config schema the bundle reads.
	MinConfigSchema int `json:"min_config_schema,omitempty"`
}

// Validate checks the fields; the error names the first bad one.
func (m *Manifest) Validate() error {
	switch m.Kind {
	case KindModel, KindFirmware:
	default:
		return fmt.Errorf("kind %q is neither %q nor %q", m.Kind, KindModel, KindFirmware)
	}
	if err := checkName(m.Name); err != nil {
		return fmt.Errorf("name: %w", err)
	}
	if err := checkName(m.Version); err != nil {
		return fmt.Errorf("version: %w", err)
	}
	if err := CheckSHA256(m.SHA256); err != nil {
		return fmt.Errorf("sha256: %w", err)
	}
	if m.Size <= 0 {
		return fmt.Errorf("size %d is not positive", m.Size)
	}
	if m.CreatedAt.IsZero() {
		return errors.New("created_at is missing")
	}
	switch m.Kind {
	case KindModel:
		if len(m.Inputs) == 0 || len(m.Outputs) == 0 {
			return fmt.Errorf("a model needs inputs and outputs (has %d and %d)", len(m.Inputs), len(m.Outputs))
		}
		for i, t := range append(append([]Tensor(nil), m.Inputs...), m.Outputs...) {
			if t.Type == "" {
				return fmt.Errorf("tensor %d (%q): type is missing", i, t.Name)
			}
			for _, d := range t.Shape {
				if d < 0 {
					return fmt.Errorf("tensor %d (%q): negative dimension in %v", i, t.Name, t.Shape)
				}
			}
		}
		if m.OS != "" || m.Arch != "" || m.MinConfigSchema != 0 {
			return errors.New("os, arch and min_config_schema are for firmware only")
		}
	case KindFirmware:
		if m.OS == "" || m.Arch == "" {
			return errors.New("firmware needs os and arch")
		}
		if len(m.Inputs) != 0 || len(m.Outputs) != 0 {
			return errors.New("inputs and outputs are for models only")
		}
		if m.MinConfigSchema < 0 {
			return fmt.Errorf("min_config_schema %d is negative", m.MinConfigSchema)
		}
	}
	return nil
}

// checkName accepts 1..64 characters of [A-Za-z0-9._+-].
func checkName(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	if len(s) > 64 {
		return fmt.Errorf("%.16q... longer than 64 characters", s)
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' || c == '+') {
			return fmt.Errorf("%q has character %q (allowed: letters, digits, . _ - +)", s, c)
		}
	}
	return nil
}

// CheckSHA256 accepts 64 lowercase hex digits.
func CheckSHA256(s string) error {
	if len(s) != 64 {
		return fmt.Errorf("%q is not 64 hex digits", s)
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return fmt.Errorf("%q is not lowercase hex", s)
		}
	}
	return nil
}

// Encode returns the canonical JSON encoding of m: fields in declaration
// order, no insignificant space, no HTML escaping, CreatedAt in UTC whole
// seconds. It fails on an invalid manifest.
func Encode(m *Manifest) ([]byte, error) {
	c := *m
	c.CreatedAt = c.CreatedAt.UTC().Truncate(time.Second)
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("manifest: encode: %w", err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&c); err != nil {
		return nil, fmt.Errorf("manifest: encode: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Parse decodes a payload that must be the canonical encoding of a valid
// manifest. It does not check any signature: use Verify for outside input.
func Parse(payload []byte) (*Manifest, error) {
	if len(payload) > MaxPayload {
		return nil, fmt.Errorf("%w: %d bytes exceeds %d", ErrMalformed, len(payload), MaxPayload)
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: trailing data after the manifest", ErrMalformed)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	canon, err := Encode(&m)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if !bytes.Equal(canon, payload) {
		return nil, fmt.Errorf("%w: not in canonical form (re-encoded it is %d bytes, payload %d)", ErrMalformed, len(canon), len(payload))
	}
	return &m, nil
}

// Sign encodes m canonically and signs it with priv under keyID.
func Sign(priv ed25519.PrivateKey, keyID string, m *Manifest) (payload, sig []byte, err error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, nil, fmt.Errorf("manifest: sign: private key is %d bytes, want %d", len(priv), ed25519.PrivateKeySize)
	}
	if keyID == "" {
		return nil, nil, errors.New("manifest: sign: empty key id")
	}
	payload, err = Encode(m)
	if err != nil {
		return nil, nil, fmt.Errorf("manifest: sign: %w", err)
	}
	return payload, ed25519.Sign(priv, payload), nil
}

// Verify checks sig over payload with the pinned key keyID and returns the
// manifest. Errors wrap ErrUnsigned, ErrUnknownKey, ErrBadSignature or
// ErrMalformed, in that order of checking.
func Verify(keys KeySet, payload, sig []byte, keyID string) (*Manifest, error) {
	switch {
	case len(payload) == 0:
		return nil, fmt.Errorf("%w: no manifest", ErrUnsigned)
	case len(sig) == 0:
		return nil, fmt.Errorf("%w: no signature", ErrUnsigned)
	case keyID == "":
		return nil, fmt.Errorf("%w: no key id", ErrUnsigned)
	}
	pub, ok := keys[keyID]
	if !ok {
		return nil, fmt.Errorf("%w: key id %q is not pinned (pinned: %v)", ErrUnknownKey, keyID, keys.IDs())
	}
	if len(sig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: signature is %d bytes, want %d", ErrBadSignature, len(sig), ed25519.SignatureSize)
	}
	if len(payload) > MaxPayload {
		return nil, fmt.Errorf("%w: %d bytes exceeds %d", ErrMalformed, len(payload), MaxPayload)
	}
	if !ed25519.Verify(pub, payload, sig) {
		return nil, fmt.Errorf("%w: key %q does not sign this manifest", ErrBadSignature, keyID)
	}
	return Parse(payload)
}

// Check compares an artifact's sha256 (lowercase hex) and size with m.
func (m *Manifest) Check(sha256Hex string, size int64) error {
	if size != m.Size {
		return fmt.Errorf("%w: size %d, manifest says %d", ErrMismatch, size, m.Size)
	}
	if sha256Hex != m.SHA256 {
		return fmt.Errorf("%w: sha256 %s, manifest says %s", ErrMismatch, sha256Hex, m.SHA256)
	}
	return nil
}

// ForModel builds the manifest of a .tflite model: its sha256, size and the
// input/output tensors of its main subgraph.
func ForModel(data []byte, name, version string, labels []string, now time.Time) (*Manifest, error) {
	mod, err := tfmodel.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("manifest: model: %w", err)
	}
	if len(mod.Subgraphs) == 0 {
		return nil, errors.New("manifest: model: no subgraph")
	}
	sg := &mod.Subgraphs[0]
	tensors := func(idx []int) ([]Tensor, error) {
		out := make([]Tensor, 0, len(idx))
		for _, i := range idx {
			if i < 0 || i >= len(sg.Tensors) {
				return nil, fmt.Errorf("manifest: model: tensor index %d out of range", i)
			}
			t := &sg.Tensors[i]
			mt := Tensor{Name: t.Name, Type: t.Type.String(), Shape: append([]int{}, t.Shape...)}
			if q := t.Quant; q != nil && len(q.Scale) == 1 && len(q.ZeroPoint) == 1 {
				mt.Scale, mt.ZeroPoint = q.Scale[0], q.ZeroPoint[0]
			}
			out = append(out, mt)
		}
		return out, nil
	}
	sum := sha256.Sum256(data)
	m := &Manifest{Kind: KindModel, Name: name, Version: version, SHA256: hex.EncodeToString(sum[:]),
		Size: int64(len(data)), CreatedAt: now.UTC().Truncate(time.Second), Labels: labels}
	if m.Inputs, err = tensors(sg.Inputs); err != nil {
		return nil, err
	}
	if m.Outputs, err = tensors(sg.Outputs); err != nil {
		return nil, err
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("manifest: model: %w", err)
	}
	return m, nil
}
