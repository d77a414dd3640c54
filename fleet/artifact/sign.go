package artifact

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"

	"edgefleet/models/manifest"
)

// Signer returns a Sealer that builds each artifact's manifest — for a
// model, its input/output tensors read from the .tflite file — and signs it
// with priv under keyID.
func Signer(priv ed25519.PrivateKey, keyID string) Sealer {
	return func(ctx context.Context, blob io.ReaderAt, m *Meta) error {
		var man *manifest.Manifest
		switch m.Kind {
		case manifest.KindModel:
			data := make([]byte, m.Size)
			if _, err := blob.ReadAt(data, 0); err != nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("sign: read: %w", err)
			}
			var err error
			if man, err = manifest.ForModel(data, m.Name, m.Version, m.Labels, m.CreatedAt); err != nil {
				return fmt.Errorf("sign: %w", err)
			}
		case manifest.KindFirmware:
			man = &manifest.Manifest{Kind: m.Kind, Name: m.Name, Version: m.Version, SHA256: m.SHA256, Size: m.Size,
				CreatedAt: m.CreatedAt, OS: m.OS, Arch: m.Arch}
		default:
			return fmt.Errorf("sign: kind %q", m.Kind)
		}
		payload, sig, err := manifest.Sign(priv, keyID, man)
		if err != nil {
			return fmt.Errorf("sign: %w", err)
		}
		m.Manifest, m.Sig, m.KeyID = payload, sig, keyID
		return nil
	}
}
