package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"edgefleet/fleet/artifact"
	"edgefleet/fleet/broker"
	"edgefleet/fleet/rollout"
	"edgefleet/fleet/server"
)

// otaConfig is what openOTA needs of the config.
type otaConfig struct {
	// Dir holds artifacts/, rollouts.db and keys.db (the key ring), and
	// keys/fleet.key of a fleetd from before the key ring (see openRing).
	Dir string
	// SigningKey is a fixed private key file (mode 0600); empty means the
	// key ring.
	SigningKey string
	// PublicKeys are more public key files or folders of *.pub that agents
	// may pin, listed after the ring's.
	PublicKeys []string
	// ArtifactBase prefixes artifact paths in commands.
	ArtifactBase string
	MaxUpload    int64
	// HealthWindow and JobTimeout are the defaults of rollouts created without them.
	HealthWindow, JobTimeout time.Duration
	// Pool, with a database, keeps the artifacts, the rollouts (one
	// engine at a time among replicas) and, when SigningKey is empty, the
	// key ring; Dir then only holds a legacy key file.
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
	ring   artifact.Ring
	arts   artifactStore
	engine rolloutEngine
	view   *server.OTA
}

func (o *ota) Close() error { return errors.Join(o.engine.Close(), o.arts.Close(), o.ring.Close()) }

// openOTA opens the artifact store and the rollout engine: the engine
// picks devices from devs and publishes commands through pub, and artifact
// downloads are checked against auth (device role only).
func openOTA(cfg otaConfig, devs rollout.Devices, pub rollout.Publisher, auth broker.Authenticator,
	prom prometheus.Registerer, log *slog.Logger) (_ *ota, err error) {
	ring, err := openRing(cfg, log)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			ring.Close()
		}
	}()
	keys, err := ring.Keys(context.Background())
	if err != nil {
		return nil, fmt.Errorf("controller: ota: %w", err)
	}

	aopt := artifact.Options{Seal: artifact.RingSigner(ring), MaxSize: cfg.MaxUpload}
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
	o := &ota{ring: ring, arts: arts, engine: eng, view: &server.OTA{Artifacts: arts, Rollouts: eng, Keys: ring, DeviceAuth: deviceAuth(auth),
		ArtifactBase: cfg.ArtifactBase, MaxUpload: cfg.MaxUpload, HealthWindow: cfg.HealthWindow, JobTimeout: cfg.JobTimeout}}
	log.Info("ota ready", "key_id", keys[0].ID, "keys", len(keys))
	return o, nil
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
