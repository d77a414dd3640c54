package migrate

import (
	"context"
	"encoding/json"
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
	if err := keyInto(ctx, dir, pool, rep); err != nil {
		return err
	}
	if err := artifactsInto(ctx, filepath.Join(dir, "artifacts"), pool, rep); err != nil {
		return err
	}
	return rolloutsInto(ctx, filepath.Join(dir, "rollouts.db"), pool, rep)
}

// keyInto copies fleetd's signing keys into the database's key ring, so
// that agents keep accepting what the fleet signs: the key ring of
// data_dir/ota/keys.db (the signing key and the retired ones), or the key
// file a fleetd from before the key ring generated (keys/fleet.key). A
// database that signs with another key refuses the copy.
func keyInto(ctx context.Context, dir string, pool *pgxpool.Pool, rep *Report) error {
	var src artifact.Ring
	ringPath, keyPath := filepath.Join(dir, "keys.db"), filepath.Join(dir, "keys", "fleet.key")
	if _, err := os.Stat(ringPath); err == nil {
		r, err := artifact.OpenBoltRing(ringPath)
		if err != nil {
			return fmt.Errorf("migrate: signing keys: %w", err)
		}
		defer r.Close()
		src = r
	} else if _, err := os.Stat(keyPath); err == nil {
		priv, _, err := manifest.LoadPrivateKey(keyPath)
		if err != nil {
			return fmt.Errorf("migrate: signing key: %w", err)
		}
		src = artifact.NewFixedRing(priv, keyPath)
	} else {
		return nil
	}
	dst, err := artifact.OpenPostgresRing(ctx, pool)
	if err != nil {
		return fmt.Errorf("migrate: signing keys: %w", err)
	}
	k, n, err := artifact.CopyRing(ctx, dst, src)
	if errors.Is(err, artifact.ErrForeignKey) {
		return fmt.Errorf("migrate: the database signs with another key than the data dir (%w): agents pin one of them; "+
			"set ota.signing_key on every replica to the data dir's key, or pin the database's on the agents", err)
	}
	if err != nil {
		return fmt.Errorf("migrate: signing keys: %w", err)
	}
	rep.KeyID, rep.KeyCopied = k.ID, n > 0
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

// rolloutsInto copies the rollouts, with their jobs, history and shadow reports. The
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
				if err := shadowInto(ctx, tx, src, r.ID); err != nil {
					return fmt.Errorf("rollout %s: %w", r.ID, err)
				}
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

// shadowInto copies a rollout's shadow reports (rollout.Bolt's shadow
// bucket) into rollout_shadow.
func shadowInto(ctx context.Context, tx pgx.Tx, src *rollout.Bolt, id string) error {
	recs, err := src.LoadShadow(ctx, id)
	if err != nil {
		return err
	}
	for _, rec := range recs {
		var latest, final []byte
		if rec.Latest != nil {
			latest, _ = json.Marshal(rec.Latest)
		}
		if rec.Final != nil {
			final, _ = json.Marshal(rec.Final)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO rollout_shadow (rollout_id, device_id, job_id, latest, final, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`, rec.RolloutID, rec.DeviceID, rec.JobID, latest, final, rec.UpdatedAt); err != nil {
			return fmt.Errorf("shadow reports of %s: %w", rec.DeviceID, err)
		}
	}
	return nil
}
