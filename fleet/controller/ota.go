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

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"edgefleet/fleet/artifact"
	"edgefleet/fleet/broker"
	"edgefleet/fleet/rollout"
	"edgefleet/fleet/server"
	"edgefleet/internal/atomicfile"
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
	// Pool, with a database, keeps the artifacts, the rollouts (one
	// engine at a time among replicas) and, when SigningKey is empty, the
	// generated signing key; Dir is then unused.
	Pool *pgxpool.Pool
}

// rolloutEngine is *rollout.Engine (bbolt, one fleetd) or *rollout.Cluster
// (PostgreSQL, replicas).
type rolloutEngine interface {
	server.Rollouts
	JobHandler
	Run(ctx context.Context) error
	Close() error
}

// artifactStore is *artifact.Disk or *artifact.Postgres.
type artifactStore interface {
	artifact.Store
	SetInUse(artifact.InUse)
	Close() error
}

// ota is the artifact store and the rollout engine, and the server's view of them.
type ota struct {
	arts   artifactStore
	engine rolloutEngine
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

	aopt := artifact.Options{Seal: artifact.Signer(priv, keyID), MaxSize: cfg.MaxUpload}
	ropt := rollout.Options{Devices: devs, Dispatcher: rollout.MQTT{Conn: pub}, Logger: log, Registerer: prom}
	var arts artifactStore
	var eng rolloutEngine
	if cfg.Pool != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if arts, err = artifact.OpenPostgres(ctx, cfg.Pool, aopt); err != nil {
			return nil, fmt.Errorf("controller: ota: %w", err)
		}
		if eng, err = rollout.NewCluster(ctx, cfg.Pool, ropt, rollout.ClusterOptions{}); err != nil {
			return nil, fmt.Errorf("controller: ota: %w", err)
		}
	} else {
		if arts, err = artifact.Open(filepath.Join(cfg.Dir, "artifacts"), aopt); err != nil {
			return nil, fmt.Errorf("controller: ota: %w", err)
		}
		if eng, err = rollout.Open(filepath.Join(cfg.Dir, "rollouts.db"), ropt); err != nil {
			arts.Close()
			return nil, fmt.Errorf("controller: ota: %w", err)
		}
	}
	arts.SetInUse(eng)
	o := &ota{arts: arts, engine: eng, view: &server.OTA{Artifacts: arts, Rollouts: eng, Keys: keys, DeviceAuth: deviceAuth(auth),
		ArtifactBase: cfg.ArtifactBase, MaxUpload: cfg.MaxUpload, HealthWindow: cfg.HealthWindow, JobTimeout: cfg.JobTimeout}}
	log.Info("ota ready", "key_id", keyID, "pinned_keys", keys.IDs())
	return o, nil
}

// signingKey loads the signing key, generating the default one on first
// start. With a database and no ota.signing_key, the key is the one kept in
// the database, so that every replica signs with it: the first replica
// stores its data_dir key (or a new one) there, and each writes it to its
// data_dir/ota/keys (fleet.key, fleet.pub) when missing there.
func signingKey(cfg otaConfig, log *slog.Logger) (ed25519.PrivateKey, string, error) {
	if cfg.SigningKey != "" {
		return loadKey(cfg.SigningKey)
	}
	keyDir := filepath.Join(cfg.Dir, "keys")
	path := filepath.Join(keyDir, "fleet.key")
	_, statErr := os.Stat(path)
	if statErr != nil && !errors.Is(statErr, os.ErrNotExist) {
		return nil, "", fmt.Errorf("controller: ota: %w", statErr)
	}
	if cfg.Pool == nil {
		if statErr != nil {
			if err := os.MkdirAll(keyDir, 0o700); err != nil {
				return nil, "", fmt.Errorf("controller: ota: %w", err)
			}
			id, err := manifest.GenerateKey(keyDir, "fleet")
			if err != nil {
				return nil, "", fmt.Errorf("controller: ota: %w", err)
			}
			log.Warn("generated a signing key: pin its public half on the agents", "key_id", id, "public_key", filepath.Join(keyDir, "fleet.pub"))
		}
		return loadKey(path)
	}
	var seed ed25519.PrivateKey
	if statErr == nil {
		var err error
		if seed, _, err = loadKey(path); err != nil {
			return nil, "", err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	priv, id, created, err := artifact.SigningKeyPostgres(ctx, cfg.Pool, seed)
	if err != nil {
		return nil, "", fmt.Errorf("controller: ota: %w", err)
	}
	if seed != nil && !seed.Equal(priv) {
		return nil, "", fmt.Errorf("controller: ota: %s is not the signing key in the database (%s): remove it, or set ota.signing_key on every replica", path, id)
	}
	if created {
		log.Warn("signing key stored in the database for every replica: pin its public half on the agents", "key_id", id, "public_key", filepath.Join(keyDir, "fleet.pub"))
	}
	if statErr != nil {
		if err := writeKey(keyDir, priv); err != nil {
			return nil, "", err
		}
	}
	return priv, id, nil
}

func loadKey(path string) (ed25519.PrivateKey, string, error) {
	priv, keyID, err := manifest.LoadPrivateKey(path)
	if err != nil {
		return nil, "", fmt.Errorf("controller: ota: %w", err)
	}
	return priv, keyID, nil
}

// writeKey writes priv as dir/fleet.key (0600) and dir/fleet.pub (0644).
func writeKey(dir string, priv ed25519.PrivateKey) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("controller: ota: %w", err)
	}
	pemKey, err := artifact.EncodePrivateKey(priv)
	if err != nil {
		return fmt.Errorf("controller: ota: %w", err)
	}
	pub, err := manifest.EncodePublicKey(priv.Public().(ed25519.PublicKey))
	if err != nil {
		return fmt.Errorf("controller: ota: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "fleet.pub"), pub, 0o644); err != nil {
		return fmt.Errorf("controller: ota: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "fleet.key"), pemKey, 0o600); err != nil {
		return fmt.Errorf("controller: ota: %w", err)
	}
	return nil
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
