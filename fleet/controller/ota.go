package controller

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
	"edgefleet/fleet/rollout"
	"edgefleet/fleet/server"
	"edgefleet/models/manifest"
)

// otaConfig is what openOTA needs of the config.
type otaConfig struct {
	// Dir holds artifacts/, rollouts.db and keys/.
	Dir string
	// SigningKey is the private key file (mode 0600). Empty means Dir/keys/fleet.key,
	// generated on first start.
	SigningKey string
	// PublicKeys are more pinned public key files or folders of *.pub (old
	// keys during a rotation); the signing key's own is always pinned.
	PublicKeys []string
	// ArtifactBase prefixes artifact paths in commands.
	ArtifactBase string
	MaxUpload    int64
	// HealthWindow and JobTimeout are the defaults of rollouts created without them.
	HealthWindow, JobTimeout time.Duration
}

// ota is the artifact store and the rollout engine, and the server's view of them.
type ota struct {
	arts   *artifact.Disk
	engine *rollout.Engine
	view   *server.OTA
}

func (o *ota) Close() error { return errors.Join(o.engine.Close(), o.arts.Close()) }

// openOTA opens the artifact store and the rollout engine: the engine
// picks devices from devs and publishes commands through pub, and artifact
// downloads are checked against auth (device role only).
func openOTA(cfg otaConfig, devs rollout.Devices, pub rollout.Publisher, auth broker.Authenticator,
	prom prometheus.Registerer, log *slog.Logger) (*ota, error) {
	priv, keyID, err := signingKey(cfg, log)
	if err != nil {
		return nil, err
	}
	keys := manifest.KeySet{}
	if len(cfg.PublicKeys) > 0 {
		if keys, err = manifest.LoadKeySet(cfg.PublicKeys...); err != nil {
			return nil, fmt.Errorf("controller: ota: %w", err)
		}
	}
	keys.Add(priv.Public().(ed25519.PublicKey))

	arts, err := artifact.Open(filepath.Join(cfg.Dir, "artifacts"), artifact.Options{Seal: artifact.Signer(priv, keyID), MaxSize: cfg.MaxUpload})
	if err != nil {
		return nil, fmt.Errorf("controller: ota: %w", err)
	}
	eng, err := rollout.Open(filepath.Join(cfg.Dir, "rollouts.db"), rollout.Options{Devices: devs,
		Dispatcher: rollout.MQTT{Conn: pub}, Logger: log, Registerer: prom})
	if err != nil {
		arts.Close()
		return nil, fmt.Errorf("controller: ota: %w", err)
	}
	arts.SetInUse(eng)
	o := &ota{arts: arts, engine: eng, view: &server.OTA{Artifacts: arts, Rollouts: eng, Keys: keys, DeviceAuth: deviceAuth(auth),
		ArtifactBase: cfg.ArtifactBase, MaxUpload: cfg.MaxUpload, HealthWindow: cfg.HealthWindow, JobTimeout: cfg.JobTimeout}}
	log.Info("ota ready", "key_id", keyID, "pinned_keys", keys.IDs())
	return o, nil
}

// signingKey loads the signing key, generating the default one on first start.
func signingKey(cfg otaConfig, log *slog.Logger) (ed25519.PrivateKey, string, error) {
	if cfg.SigningKey == "" {
		keyDir := filepath.Join(cfg.Dir, "keys")
		cfg.SigningKey = filepath.Join(keyDir, "fleet.key")
		if _, err := os.Stat(cfg.SigningKey); errors.Is(err, os.ErrNotExist) {
			if err := os.MkdirAll(keyDir, 0o700); err != nil {
				return nil, "", fmt.Errorf("controller: ota: %w", err)
			}
			id, err := manifest.GenerateKey(keyDir, "fleet")
			if err != nil {
				return nil, "", fmt.Errorf("controller: ota: %w", err)
			}
			log.Warn("generated a signing key: pin its public half on the agents", "key_id", id, "public_key", filepath.Join(keyDir, "fleet.pub"))
		}
	}
	priv, keyID, err := manifest.LoadPrivateKey(cfg.SigningKey)
	if err != nil {
		return nil, "", fmt.Errorf("controller: ota: %w", err)
	}
	return priv, keyID, nil
}

// deviceAuth lets a device download artifacts with its MQTT credentials.
func deviceAuth(auth broker.Authenticator) artifact.DeviceAuth {
	return artifact.AuthFunc(func(ctx context.Context, id string, token []byte) error {
		who, err := auth.Authenticate(ctx, id, token)
		if err != nil {
			return err
		}
		if who.Role != broker.RoleDevice || who.DeviceID != id {
			return fmt.Errorf("controller: %s is not a device", id)
		}
		return nil
	})
}
