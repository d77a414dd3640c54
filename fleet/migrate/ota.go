package migrate

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"edgefleet/fleet/artifact"
	"edgefleet/fleet/rollout"
	"edgefleet/models/manifest"
)

// otaInto copies data_dir/ota: the generated signing key, the artifacts
// and the rollouts.
func otaInto(ctx context.Context, dir string, pool *pgxpool.Pool, rep *Report) error {
	if err := keyInto(ctx, filepath.Join(dir, "keys", "fleet.key"), pool, rep); err != nil {
		return err
	}
	if err := artifactsInto(ctx, filepath.Join(dir, "artifacts"), pool, rep); err != nil {
		return err
	}
	return rolloutsInto(ctx, filepath.Join(dir, "rollouts.db"), pool, rep)
}

// keyInto makes the generated signing key of the data dir the database's,
// so that agents keep accepting what the fleet signs. A database that has
// a key already keeps it (KeyKept says whether it is the same).
func keyInto(ctx context.Context, path string, pool *pgxpool.Pool, rep *Report) error {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	priv, id, err := manifest.LoadPrivateKey(path)
	if err != nil {
		return fmt.Errorf("migrate: signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return fmt.Errorf("migrate: signing key: %w", err)
	}
	tag, err := pool.Exec(ctx, `INSERT INTO ota_signing_key (private_pem) VALUES ($1) ON CONFLICT DO NOTHING`,
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))
	if err != nil {
		return fmt.Errorf("migrate: signing key: %w", err)
	}
	rep.KeyID = id
	if tag.RowsAffected() == 1 {
		rep.KeyCopied = true
		return nil
	}
	var s string
	if err := pool.QueryRow(ctx, `SELECT private_pem FROM ota_signing_key`).Scan(&s); err != nil {
		return fmt.Errorf("migrate: signing key: %w", err)
	}
	have, err := manifest.ParsePrivateKey([]byte(s))
	if err != nil {
		return fmt.Errorf("migrate: signing key in the database: %w", err)
	}
	if dbID := manifest.KeyID(have.Public().(ed25519.PublicKey)); dbID != id {
		return fmt.Errorf("migrate: the database signs with key %s, the data dir with %s: agents pin one of them; "+
			"set ota.signing_key on every replica to the data dir's key file, or pin %s on the agents", dbID, id, dbID)
	}
	return nil
}

// artifactsInto copies every artifact with its signed manifest, streamed.
func artifactsInto(ctx context.Context, dir string, pool *pgxpool.Pool, rep *Report) error {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	src, err := artifact.Open(dir, artifact.Options{})
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer src.Close()
	dst, err := artifact.OpenPostgres(ctx, pool, artifact.Options{MaxSize: 1 << 40}) // no Seal: the manifests come signed
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer dst.Close()
	metas, err := src.List(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, m := range metas {
		if _, err := dst.Get(ctx, m.SHA256); err == nil {
			rep.ArtifactsSkipped++
			continue
		}
		blob, _, err := src.Open(ctx, m.SHA256)
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		_, err = dst.Put(ctx, blob, m)
		blob.Close()
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		rep.Artifacts++
	}
	return nil
}

// rolloutsInto copies the rollouts, with their jobs and history. The
// database takes the data dir's epoch (job ids carry it) unless it has
// one, and its rollout ids continue after the copied ones.
func rolloutsInto(ctx context.Context, path string, pool *pgxpool.Pool, rep *Report) error {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	src, err := rollout.OpenBolt(path)
	if err != nil {
		return fmt.Errorf("migrate: %w (is a fleetd running on it? stop it first)", err)
	}
	defer src.Close()
	rs, err := src.Load(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO rollout_meta (epoch) VALUES ($1) ON CONFLICT DO NOTHING`, src.Epoch()); err != nil {
			return err
		}
		var epoch string
		if err := tx.QueryRow(ctx, `SELECT epoch FROM rollout_meta`).Scan(&epoch); err != nil {
			return err
		}
		var top int64
		for _, r := range rs {
			if epoch != src.Epoch() && !r.State.Final() {
				return fmt.Errorf("rollout %s is not finished and the database has another epoch (%s, not %s): its devices' reports would not reach it; finish or abort it first", r.ID, epoch, src.Epoch())
			}
			doc, err := json.Marshal(r)
			if err != nil {
				return err
			}
			sum, err := json.Marshal(r.Summarize())
			if err != nil {
				return err
			}
			tag, err := tx.Exec(ctx, `INSERT INTO rollouts (id, doc, summary, sha256, final, created_at) VALUES ($1, $2, $3, $4, $5, $6)
				ON CONFLICT (id) DO NOTHING`, r.ID, doc, sum, r.Spec.Artifact.SHA256, r.State.Final(), r.CreatedAt)
			if err != nil {
				return fmt.Errorf("rollout %s: %w", r.ID, err)
			}
			if tag.RowsAffected() == 0 {
				rep.RolloutsSkipped++
			} else {
				rep.Rollouts++
			}
			if n, err := strconv.ParseInt(strings.TrimPrefix(r.ID, "r"), 10, 64); err == nil {
				top = max(top, n)
			}
		}
		if top == 0 {
			return nil
		}
		// The next id the database gives is above every copied one.
		_, err := tx.Exec(ctx, `SELECT setval('rollout_ids', greatest($1, (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM rollout_ids)))`, top)
		return err
	})
	if err != nil {
		return fmt.Errorf("migrate: rollouts: %w", err)
	}
	return nil
}
