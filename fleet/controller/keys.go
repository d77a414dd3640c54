package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"edgefleet/fleet/artifact"
	"edgefleet/models/manifest"
)

// openRing opens fleetd's signing keys, in one place:
//
//   - ota.signing_key set: that file's key, fixed (rotation through the API
//     is refused: the file is the operator's);
//   - else the key ring: bbolt in Dir/keys.db, or the database's
//     ota_signing_key table with a database (every replica signs with the
//     same key, read at each push). An empty ring takes over the key of
//     Dir/keys/fleet.key (what fleetd generated before the ring existed:
//     agents pin it) and that file and fleet.pub are removed, so that no
//     key file lies around that fleetd does not use; without one the ring
//     makes a key.
//
// ota.public_keys are listed after the ring's keys.
func openRing(cfg otaConfig, log *slog.Logger) (artifact.Ring, error) {
	var extra manifest.KeySet
	if len(cfg.PublicKeys) > 0 {
		var err error
		if extra, err = manifest.LoadKeySet(cfg.PublicKeys...); err != nil {
			return nil, fmt.Errorf("controller: ota: %w", err)
		}
	}
	if cfg.SigningKey != "" {
		priv, _, err := manifest.LoadPrivateKey(cfg.SigningKey)
		if err != nil {
			return nil, fmt.Errorf("controller: ota: %w", err)
		}
		why := fmt.Sprintf("it comes from the config file (ota.signing_key: %s): replace that file and restart fleetd, "+
			"or remove ota.signing_key to let fleetd keep and rotate its keys", cfg.SigningKey)
		return artifact.Pinned{Ring: artifact.NewFixedRing(priv, why), Extra: extra}, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var ring artifact.Ring
	var err error
	if cfg.Pool != nil {
		ring, err = artifact.OpenPostgresRing(ctx, cfg.Pool)
	} else {
		if err = os.MkdirAll(cfg.Dir, 0o700); err == nil {
			ring, err = artifact.OpenBoltRing(filepath.Join(cfg.Dir, "keys.db"))
		}
	}
	if err != nil {
		return nil, fmt.Errorf("controller: ota: %w", err)
	}
	if err := initRing(ctx, ring, cfg.Dir, log); err != nil {
		ring.Close()
		return nil, err
	}
	return artifact.Pinned{Ring: ring, Extra: extra}, nil
}

// initRing gives an empty ring its first key: the legacy key file's, else
// a new one; then removes the legacy files.
func initRing(ctx context.Context, ring artifact.Ring, dir string, log *slog.Logger) error {
	keyDir := filepath.Join(dir, "keys")
	legacy := filepath.Join(keyDir, "fleet.key")
	seed, _, err := manifest.LoadPrivateKey(legacy)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("controller: ota: %w", err)
	}
	k, created, err := ring.Init(ctx, seed)
	if errors.Is(err, artifact.ErrForeignKey) {
		return fmt.Errorf("controller: ota: %s is not a key of fleetd's key ring (%w): remove it, or set ota.signing_key to it", legacy, err)
	}
	if err != nil {
		return fmt.Errorf("controller: ota: %w", err)
	}
	switch {
	case created && seed != nil:
		log.Warn("signing key taken over from its file into the key ring", "key_id", k.ID, "file", legacy)
	case created:
		log.Warn("generated a signing key: export its public half for the agents with fleetctl keys export -o fleet.pub", "key_id", k.ID)
	}
	if seed == nil {
		return nil
	}
	// The ring holds the key now (committed): the files would only go stale.
	for _, f := range []string{legacy, filepath.Join(keyDir, "fleet.pub")} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("controller: ota: %w", err)
		}
	}
	os.Remove(keyDir) // only if empty
	log.Info("removed the signing key files: the key ring holds the key; fleetctl keys export writes the public key", "dir", keyDir)
	return nil
}
