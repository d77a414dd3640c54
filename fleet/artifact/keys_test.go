package artifact

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"edgefleet/fleet/database/dbtest"
	"edgefleet/models/manifest"
	"edgefleet/models/modeltest"
)

// ringSuite is the behaviour every Ring with keys shows; open opens the
// same ring again (another replica, or after a restart).
func ringSuite(t *testing.T, open func(t *testing.T) Ring) {
	ctx := context.Background()
	r := open(t)
	if _, _, err := r.Signer(ctx); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("Signer of an empty ring: %v", err)
	}
	_, seed, _ := ed25519.GenerateKey(nil)
	first, created, err := r.Init(ctx, seed)
	if err != nil || !created || first.ID != manifest.KeyID(seed.Public().(ed25519.PublicKey)) || !first.Signing {
		t.Fatalf("Init(seed) = %+v, %v, %v", first, created, err)
	}
	if k, created, err := r.Init(ctx, nil); err != nil || created || k.ID != first.ID {
		t.Fatalf("Init again = %+v, %v, %v", k, created, err)
	}
	_, other, _ := ed25519.GenerateKey(nil)
	if _, _, err := r.Init(ctx, other); !errors.Is(err, ErrForeignKey) {
		t.Fatalf("Init(another key) = %v", err)
	}

	// Rotation: a manifest signed before verifies with the old key only.
	model, err := os.ReadFile(modeltest.Path(t, "models", "yolov5n-int8.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	seal := RingSigner(r)
	before := Meta{Kind: manifest.KindModel, Name: "m", Version: "1", Size: int64(len(model)), CreatedAt: time.Now()}
	if err := seal(ctx, bytes.NewReader(model), &before); err != nil || before.KeyID != first.ID {
		t.Fatalf("seal before: key %s, %v", before.KeyID, err)
	}
	signing, retired, err := r.Rotate(ctx)
	if err != nil || retired.ID != first.ID || retired.Signing || retired.Retired.IsZero() || !signing.Signing || signing.ID == first.ID {
		t.Fatalf("Rotate = %+v, %+v, %v", signing, retired, err)
	}
	after := Meta{Kind: manifest.KindModel, Name: "m", Version: "2", Size: int64(len(model)), CreatedAt: time.Now()}
	if err := seal(ctx, bytes.NewReader(model), &after); err != nil || after.KeyID != signing.ID {
		t.Fatalf("seal after: key %s, %v", after.KeyID, err)
	}
	r2 := open(t)
	ks, err := r2.Keys(ctx)
	if err != nil || len(ks) != 2 || ks[0].ID != signing.ID || !ks[0].Signing || ks[1].ID != first.ID || ks[1].Signing ||
		!ks[1].Retired.Equal(retired.Retired) || !ks[0].Created.Equal(signing.Created) || ks[0].Source != SourceRing {
		t.Fatalf("Keys after rotation (reopened) = %+v, %v", ks, err)
	}
	if _, id, err := r2.Signer(ctx); err != nil || id != signing.ID {
		t.Fatalf("Signer after rotation (reopened) = %s, %v", id, err)
	}
	onlyOld, onlyNew, both := manifest.KeySet{}, manifest.KeySet{}, KeySet(ks)
	onlyOld.Add(retired.Public)
	onlyNew.Add(signing.Public)
	for _, c := range []struct {
		name string
		keys manifest.KeySet
		m    Meta
		ok   bool
	}{
		{"old manifest, old key", onlyOld, before, true},
		{"old manifest, both keys", both, before, true},
		{"old manifest, new key", onlyNew, before, false},
		{"new manifest, old key", onlyOld, after, false},
		{"new manifest, new key", onlyNew, after, true},
		{"new manifest, both keys", both, after, true},
	} {
		if _, err := manifest.Verify(c.keys, c.m.Manifest, c.m.Sig, c.m.KeyID); (err == nil) != c.ok {
			t.Errorf("%s: verify = %v", c.name, err)
		}
	}
	// The retired key may still be named as a seed (a replica's old key file).
	if _, _, err := r2.Init(ctx, seed); err != nil {
		t.Fatalf("Init(retired key) = %v", err)
	}
}

func TestBoltRing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.db")
	var last Ring
	ringSuite(t, func(t *testing.T) Ring {
		if last != nil {
			last.Close() // one process at a time on a bbolt file: a restart
		}
		r, err := OpenBoltRing(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		last = r
		return r
	})
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("keys.db: %v %v", fi, err)
	}
}

func TestPostgresRing(t *testing.T) {
	pool := dbtest.Open(t).Pool
	ringSuite(t, func(t *testing.T) Ring {
		r, err := OpenPostgresRing(context.Background(), pool)
		if err != nil {
			t.Fatal(err)
		}
		return r
	})
}

// TestPostgresRingUpgrade: the one key a fleetd stored before migration
// 00005 is the ring's signing key after it, and migrating down keeps it.
func TestPostgresRingUpgrade(t *testing.T) {
	ctx := context.Background()
	pool := dbtest.Open(t).Pool
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, os.DirFS("../database/migrations"), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, 4); err != nil {
		t.Fatal(err)
	}
	_, old, _ := ed25519.GenerateKey(nil)
	pemKey, _ := EncodePrivateKey(old)
	if _, err := pool.Exec(ctx, `INSERT INTO ota_signing_key (private_pem) VALUES ($1)`, string(pemKey)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 5); err != nil {
		t.Fatal(err)
	}
	r, err := OpenPostgresRing(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	oldID := manifest.KeyID(old.Public().(ed25519.PublicKey))
	if k, created, err := r.Init(ctx, old); err != nil || created || k.ID != oldID || !k.Signing {
		t.Fatalf("Init(the old key) = %+v, %v, %v", k, created, err)
	}
	if priv, id, err := r.Signer(ctx); err != nil || id != oldID || !priv.Equal(old) {
		t.Fatalf("Signer = %s, %v", id, err)
	}
	if _, _, err := r.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, 4); err != nil {
		t.Fatalf("down to 4 with a rotated ring: %v", err)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM ota_signing_key WHERE id`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("after down: %d signing keys, %v", n, err)
	}
}

func TestFixedRing(t *testing.T) {
	ctx := context.Background()
	pub, priv, _ := ed25519.GenerateKey(nil)
	_, extra, _ := ed25519.GenerateKey(nil)
	pinned := manifest.KeySet{}
	extraID := pinned.Add(extra.Public().(ed25519.PublicKey))
	r := Pinned{Ring: NewFixedRing(priv, "from the file"), Extra: pinned}
	if _, _, err := r.Rotate(ctx); !errors.Is(err, ErrKeyFixed) || !bytes.Contains([]byte(err.Error()), []byte("from the file")) {
		t.Fatalf("Rotate = %v", err)
	}
	ks, err := r.Keys(ctx)
	if err != nil || len(ks) != 2 || ks[0].ID != manifest.KeyID(pub) || !ks[0].Signing || ks[1].ID != extraID || ks[1].Signing || ks[1].Source != SourceConfig {
		t.Fatalf("Keys = %+v, %v", ks, err)
	}
	if _, id, err := r.Signer(ctx); err != nil || id != ks[0].ID {
		t.Fatalf("Signer = %s, %v", id, err)
	}
}

// TestCopyRing: a rotated bbolt ring copied into PostgreSQL signs with
// the same key and lists the same retired one; a second copy adds nothing,
// and a database signing with another key refuses the copy.
func TestCopyRing(t *testing.T) {
	ctx := context.Background()
	src, err := OpenBoltRing(filepath.Join(t.TempDir(), "keys.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if _, _, err := src.Init(ctx, nil); err != nil {
		t.Fatal(err)
	}
	signing, retired, err := src.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := OpenPostgresRing(ctx, dbtest.Open(t).Pool)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []int{2, 0} {
		k, n, err := CopyRing(ctx, dst, src)
		if err != nil || k.ID != signing.ID || n != want {
			t.Fatalf("copy %d: signing %s, %d copied, %v; want %s, %d", i+1, k.ID, n, err, signing.ID, want)
		}
	}
	ks, err := dst.Keys(ctx)
	if err != nil || len(ks) != 2 || ks[0].ID != signing.ID || !ks[0].Signing || !ks[0].Created.Equal(signing.Created.Truncate(time.Microsecond)) ||
		ks[1].ID != retired.ID || !ks[1].Retired.Equal(retired.Retired.Truncate(time.Microsecond)) {
		t.Fatalf("copied ring: %+v %v", ks, err)
	}
	_, other, _ := ed25519.GenerateKey(nil)
	if _, _, err := CopyRing(ctx, dst, NewFixedRing(other, "file")); !errors.Is(err, ErrForeignKey) {
		t.Fatalf("copy another key: %v", err)
	}
}
