package server

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"edgefleet/fleet/artifact"
	"edgefleet/fleet/broker"
	"edgefleet/fleet/registry"
	"edgefleet/fleet/rollout"
	"edgefleet/models/manifest"
)

// OTAConfig is what fleetd's configuration gives OpenOTA.
type OTAConfig struct {
	// Dir holds artifacts/ and rollouts.db.
	Dir string
	// SigningKey is the private key file (mode 0600). Empty means Dir/keys/fleet.key,
	// generated on first start.
	SigningKey string
	// PublicKeys are more pinned public key files or folders of *.pub (old
	// keys during a rotation); the signing key's own is always pinned.
	PublicKeys []string
	// ArtifactBase prefixes artifact paths in commands; see OTA.ArtifactBase.
	ArtifactBase string
	MaxUpload    int64
	// HealthWindow and JobTimeout are the defaults of rollouts created without them.
	HealthWindow, JobTimeout time.Duration
}

// OpenOTA opens the artifact store and the rollout engine for fleetd: the
// engine picks devices from reg and publishes commands through pub, and
// artifact downloads are checked against auth (device role only). The
// caller runs ota.Rollouts.Run(ctx), passes every api.JobStatus from ingest
// to ota.Rollouts.HandleJobStatus (ignoring rollout.ErrNotFound: jobs not
// from a rollout), and calls closeFn at exit.
func OpenOTA(cfg OTAConfig, reg *registry.Registry, pub rollout.Publisher, auth broker.Authenticator,
	prom prometheus.Registerer, log *slog.Logger) (ota *OTA, closeFn func() error, err error) {
	if log == nil {
		log = slog.Default()
	}
	if cfg.SigningKey == "" {
		keyDir := filepath.Join(cfg.Dir, "keys")
		cfg.SigningKey = filepath.Join(keyDir, "fleet.key")
		if _, err := os.Stat(cfg.SigningKey); errors.Is(err, os.ErrNotExist) {
			if err := os.MkdirAll(keyDir, 0o700); err != nil {
				return nil, nil, fmt.Errorf("ota: %w", err)
			}
			id, err := manifest.GenerateKey(keyDir, "fleet")
			if err != nil {
				return nil, nil, fmt.Errorf("ota: %w", err)
			}
			log.Warn("generated a signing key: pin its public half on the agents", "key_id", id, "public_key", filepath.Join(keyDir, "fleet.pub"))
		}
	}
	priv, keyID, err := manifest.LoadPrivateKey(cfg.SigningKey)
	if err != nil {
		return nil, nil, fmt.Errorf("ota: %w", err)
	}
	keys := manifest.KeySet{}
	if len(cfg.PublicKeys) > 0 {
		if keys, err = manifest.LoadKeySet(cfg.PublicKeys...); err != nil {
			return nil, nil, fmt.Errorf("ota: %w", err)
		}
	}
	keys.Add(priv.Public().(ed25519.PublicKey))

	arts, err := artifact.Open(filepath.Join(cfg.Dir, "artifacts"), artifact.Options{Seal: artifact.Signer(priv, keyID), MaxSize: cfg.MaxUpload})
	if err != nil {
		return nil, nil, fmt.Errorf("ota: %w", err)
	}
	eng, err := rollout.Open(filepath.Join(cfg.Dir, "rollouts.db"), rollout.Options{Devices: rollout.Registry{R: reg},
		Dispatcher: rollout.MQTT{Conn: pub}, Logger: log, Registerer: prom})
	if err != nil {
		arts.Close()
		return nil, nil, fmt.Errorf("ota: %w", err)
	}
	arts.SetInUse(eng)
	devAuth := artifact.AuthFunc(func(ctx context.Context, id string, token []byte) error {
		who, err := auth.Authenticate(ctx, id, token)
		if err != nil {
			return err
		}
		if who.Role != broker.RoleDevice || who.DeviceID != id {
			return fmt.Errorf("%s is not a device", id)
		}
		return nil
	})
	ota = &OTA{Artifacts: arts, Rollouts: eng, Keys: keys, DeviceAuth: devAuth, ArtifactBase: cfg.ArtifactBase, MaxUpload: cfg.MaxUpload,
		HealthWindow: cfg.HealthWindow, JobTimeout: cfg.JobTimeout}
	log.Info("ota ready", "key_id", keyID, "pinned_keys", keys.IDs())
	return ota, func() error { return errors.Join(eng.Close(), arts.Close()) }, nil
}
