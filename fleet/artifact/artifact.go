// Package artifact is fleetd's content-addressed store of signed artifacts
// (models and agent bundles) and the HTTP handler that serves them to devices.
//
// Two stores share one behaviour (the same tests run against each): Disk
// for one fleetd, below, and Postgres (postgres.go) for replicas.
//
// Disk's files live on disk named by their sha256; metadata (name, version, kind,
// the signed manifest) lives in bbolt. A Put streams the upload into a
// temporary file while hashing it, fsyncs it, renames it into place and only
// then records its metadata, so a crash leaves either the whole artifact or
// nothing (plus, at worst, a stray temporary file that the next Open removes).
//
// On-disk layout under the store's directory:
//
//	artifacts.db          bbolt, schema below
//	blobs/<sha256>        artifact bytes, read-only (0444)
//	tmp/                  uploads in progress
//
// bbolt schema (version 1):
//
//	meta/version          -> "1"
//	artifacts/<sha256>    -> JSON Meta
//	names/<kind>/<name>/<version> -> sha256
package artifact

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"edgefleet/internal/atomicfile"
	"edgefleet/models/manifest"
)

// Errors returned (wrapped) by Store methods. Test with errors.Is.
var (
	// ErrNotFound means no artifact has that sha256 or name and version.
	ErrNotFound = errors.New("artifact: not found")
	// ErrExists means another artifact already has that kind, name and version.
	ErrExists = errors.New("artifact: name and version already used")
	// ErrMismatch means the uploaded bytes do not match the expected sha256 or size.
	ErrMismatch = errors.New("artifact: content does not match")
	// ErrInUse means a rollout references the artifact, so it cannot be deleted.
	ErrInUse = errors.New("artifact: in use")
	// ErrTooLarge means an upload exceeded Options.MaxSize.
	ErrTooLarge = errors.New("artifact: too large")
	// ErrClosed means the store is closed.
	ErrClosed = errors.New("artifact: store closed")
)

// Meta describes one stored artifact.
type Meta struct {
	SHA256    string    `json:"sha256"`
	Size      int64     `json:"size"`
	Kind      string    `json:"kind"` // manifest.KindModel or manifest.KindFirmware
	Name      string    `json:"name"`
	Version   string    `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	// Labels are a model's class names; OS and Arch a firmware bundle's
	// platform. Both go into the manifest.
	Labels []string `json:"labels,omitempty"`
	OS     string   `json:"os,omitempty"`
	Arch   string   `json:"arch,omitempty"`
	// Manifest is the signed canonical manifest, Sig its ed25519 signature
	// and KeyID the signing key.
	Manifest []byte `json:"manifest,omitempty"`
	Sig      []byte `json:"signature,omitempty"`
	KeyID    string `json:"key_id,omitempty"`
}

// Store keeps artifacts. Implementations are safe for concurrent use.
type Store interface {
	// Put stores the bytes read from r under m's kind, name and version. When
	// m.SHA256 or m.Size are set the content must match them.
	Put(ctx context.Context, r io.Reader, m Meta) (Meta, error)
	// Get returns the metadata of an artifact by sha256.
	Get(ctx context.Context, sha256 string) (Meta, error)
	// Find returns the artifact of a kind with that name and version.
	Find(ctx context.Context, kind, name, version string) (Meta, error)
	// Open returns the artifact's bytes; the caller closes them.
	Open(ctx context.Context, sha256 string) (Blob, Meta, error)
	// List returns every artifact, newest first.
	List(ctx context.Context) ([]Meta, error)
	// Delete removes an artifact unless a rollout references it.
	Delete(ctx context.Context, sha256 string) error
}

// Blob is an open artifact: readable from any offset, as Range requests
// need. Disk returns its *os.File.
type Blob interface {
	io.ReadSeekCloser
}

// InUse reports which rollouts reference an artifact; the rollout engine
// implements it.
type InUse interface {
	ArtifactInUse(sha256 string) []string
}

// Sealer completes an artifact's metadata once its bytes are on disk and
// hashed, before it is recorded: fleetd reads the model's signature, builds
// the manifest and signs it. It may set Manifest, Sig and KeyID.
type Sealer func(ctx context.Context, blob io.ReaderAt, m *Meta) error

// Options configure Open. The zero value is usable.
type Options struct {
	// MaxSize caps one artifact; 0 means 2 GiB.
	MaxSize int64
	// Seal, if set, runs on every Put.
	Seal Sealer
	// InUse, if set, guards Delete. SetInUse sets it later.
	InUse InUse
}

// Disk is the Store on a local directory. It is safe for concurrent use.
type Disk struct {
	dir string
	db  *bolt.DB
	opt Options

	mu    sync.Mutex
	inUse InUse
}

var _ Store = (*Disk)(nil)

var (
	bucketMeta      = []byte("meta")
	bucketArtifacts = []byte("artifacts")
	bucketNames     = []byte("names")
)

const schemaVersion = "1"

// Open opens (creating if needed) the store in dir.
func Open(dir string, opt Options) (*Disk, error) {
	if opt.MaxSize <= 0 {
		opt.MaxSize = 2 << 30
	}
	for _, d := range []string{dir, filepath.Join(dir, "blobs"), filepath.Join(dir, "tmp")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("artifact: open: %w", err)
		}
	}
	// Uploads that were in flight when the process died are garbage.
	if tmps, err := filepath.Glob(filepath.Join(dir, "tmp", "*")); err == nil {
		for _, t := range tmps {
			os.Remove(t)
		}
	}
	db, err := bolt.Open(filepath.Join(dir, "artifacts.db"), 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("artifact: open: %w", err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketArtifacts, bucketNames} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		mb := tx.Bucket(bucketMeta)
		switch v := mb.Get([]byte("version")); {
		case v == nil:
			return mb.Put([]byte("version"), []byte(schemaVersion))
		case string(v) != schemaVersion:
			return fmt.Errorf("schema version %q, this build reads %q", v, schemaVersion)
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("artifact: open: %w", err)
	}
	return &Disk{dir: dir, db: db, opt: opt, inUse: opt.InUse}, nil
}

// SetInUse installs the guard Delete consults (the rollout engine, created after the store).
func (d *Disk) SetInUse(u InUse) {
	d.mu.Lock()
	d.inUse = u
	d.mu.Unlock()
}

// Close closes the database; safe to call twice.
func (d *Disk) Close() error {
	if err := d.db.Close(); err != nil {
		return fmt.Errorf("artifact: close: %w", err)
	}
	return nil
}

func nameKey(kind, name, version string) []byte { return []byte(kind + "/" + name + "/" + version) }

func (d *Disk) blobPath(sum string) string { return filepath.Join(d.dir, "blobs", sum) }

// Put implements Store.
func (d *Disk) Put(ctx context.Context, r io.Reader, m Meta) (Meta, error) {
	if err := checkPut(m); err != nil {
		return Meta{}, err
	}
	if _, err := d.Find(ctx, m.Kind, m.Name, m.Version); err == nil {
		return Meta{}, fmt.Errorf("%w: %s %s@%s", ErrExists, m.Kind, m.Name, m.Version)
	}
	tmp, err := os.CreateTemp(filepath.Join(d.dir, "tmp"), "put-*")
	if err != nil {
		return Meta{}, fmt.Errorf("artifact: put: %w", err)
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), &ctxReader{ctx: ctx, r: io.LimitReader(r, d.opt.MaxSize+1)})
	if err != nil {
		return Meta{}, fmt.Errorf("artifact: put %s@%s: read: %w", m.Name, m.Version, err)
	}
	if n > d.opt.MaxSize {
		return Meta{}, fmt.Errorf("%w: %s@%s: more than %d bytes", ErrTooLarge, m.Name, m.Version, d.opt.MaxSize)
	}
	if n == 0 {
		return Meta{}, fmt.Errorf("artifact: put %s@%s: empty upload", m.Name, m.Version)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	m, err = checkSum(m, sum, n)
	if err != nil {
		return Meta{}, err
	}
	if err := tmp.Sync(); err != nil {
		return Meta{}, fmt.Errorf("artifact: put: sync: %w", err)
	}
	if d.opt.Seal != nil {
		if err := d.opt.Seal(ctx, tmp, &m); err != nil {
			return Meta{}, fmt.Errorf("artifact: put %s@%s: %w", m.Name, m.Version, err)
		}
	}
	if err := tmp.Chmod(0o444); err != nil {
		return Meta{}, fmt.Errorf("artifact: put: %w", err)
	}
	// A blob already there is an orphan of a crash between rename and
	// commit; it has the same content, being named by it.
	if _, err := os.Stat(d.blobPath(sum)); err != nil {
		if err := os.Rename(tmp.Name(), d.blobPath(sum)); err != nil {
			return Meta{}, fmt.Errorf("artifact: put: %w", err)
		}
		if err := atomicfile.SyncDir(filepath.Join(d.dir, "blobs")); err != nil {
			return Meta{}, fmt.Errorf("artifact: put: %w", err)
		}
	}
	val, err := json.Marshal(m)
	if err != nil {
		return Meta{}, fmt.Errorf("artifact: put: %w", err)
	}
	err = d.db.Update(func(tx *bolt.Tx) error {
		names := tx.Bucket(bucketNames)
		key := nameKey(m.Kind, m.Name, m.Version)
		if names.Get(key) != nil {
			return fmt.Errorf("%w: %s %s@%s", ErrExists, m.Kind, m.Name, m.Version)
		}
		arts := tx.Bucket(bucketArtifacts)
		if old := arts.Get([]byte(sum)); old != nil {
			var o Meta
			if json.Unmarshal(old, &o) == nil {
				return fmt.Errorf("%w: the same content is already stored as %s %s@%s", ErrExists, o.Kind, o.Name, o.Version)
			}
		}
		if err := names.Put(key, []byte(sum)); err != nil {
			return err
		}
		return arts.Put([]byte(sum), val)
	})
	if err != nil {
		switch {
		case errors.Is(err, berrors.ErrDatabaseNotOpen):
			err = ErrClosed
		case !errors.Is(err, ErrExists):
			err = fmt.Errorf("artifact: put: %w", err)
		}
		return Meta{}, err
	}
	return m, nil
}

// checkPut checks the metadata a Put is given.
func checkPut(m Meta) error {
	switch m.Kind {
	case manifest.KindModel, manifest.KindFirmware:
	default:
		return fmt.Errorf("artifact: put: kind %q is neither model nor firmware", m.Kind)
	}
	if m.Name == "" || m.Version == "" || strings.Contains(m.Name, "/") || strings.Contains(m.Version, "/") {
		return fmt.Errorf("artifact: put: bad name %q or version %q", m.Name, m.Version)
	}
	return nil
}

// checkSum checks an upload's sha256 and size against what m expects,
// and fills them in with the creation time.
func checkSum(m Meta, sum string, n int64) (Meta, error) {
	if m.SHA256 != "" && m.SHA256 != sum {
		return Meta{}, fmt.Errorf("%w: %s@%s: sha256 %s, expected %s", ErrMismatch, m.Name, m.Version, sum, m.SHA256)
	}
	if m.Size != 0 && m.Size != n {
		return Meta{}, fmt.Errorf("%w: %s@%s: %d bytes, expected %d", ErrMismatch, m.Name, m.Version, n, m.Size)
	}
	m.SHA256, m.Size = sum, n
	if m.CreatedAt.IsZero() {
		m.CreatedAt = time.Now().UTC().Truncate(time.Second)
	}
	return m, nil
}

// ctxReader stops a long copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func (d *Disk) view(f func(tx *bolt.Tx) error) error {
	err := d.db.View(f)
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

// wrap prefixes err with the operation, unless it is one of the package's
// sentinel errors, whose text already says "artifact: ...".
func wrap(op string, err error) error {
	for _, s := range []error{ErrNotFound, ErrExists, ErrMismatch, ErrInUse, ErrTooLarge, ErrClosed} {
		if errors.Is(err, s) {
			return err
		}
	}
	return fmt.Errorf("artifact: %s: %w", op, err)
}

// Get implements Store.
func (d *Disk) Get(_ context.Context, sum string) (Meta, error) {
	var m Meta
	err := d.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketArtifacts).Get([]byte(sum))
		if v == nil {
			return fmt.Errorf("%w: sha256 %s", ErrNotFound, sum)
		}
		return json.Unmarshal(v, &m)
	})
	if err != nil {
		return Meta{}, wrap("get", err)
	}
	return m, nil
}

// Find implements Store.
func (d *Disk) Find(ctx context.Context, kind, name, version string) (Meta, error) {
	var sum string
	err := d.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketNames).Get(nameKey(kind, name, version))
		if v == nil {
			return fmt.Errorf("%w: %s %s@%s", ErrNotFound, kind, name, version)
		}
		sum = string(v)
		return nil
	})
	if err != nil {
		return Meta{}, wrap("find", err)
	}
	return d.Get(ctx, sum)
}

// Open implements Store.
func (d *Disk) Open(ctx context.Context, sum string) (Blob, Meta, error) {
	m, err := d.Get(ctx, sum)
	if err != nil {
		return nil, Meta{}, err
	}
	f, err := os.Open(d.blobPath(sum))
	if err != nil {
		return nil, Meta{}, fmt.Errorf("artifact: open %s: %w", sum, err)
	}
	return f, m, nil
}

// List implements Store.
func (d *Disk) List(_ context.Context) ([]Meta, error) {
	var out []Meta
	err := d.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketArtifacts).ForEach(func(_, v []byte) error {
			var m Meta
			if err := json.Unmarshal(v, &m); err != nil {
				return err
			}
			out = append(out, m)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("artifact: list: %w", err)
	}
	sortMetas(out)
	return out, nil
}

// sortMetas sorts newest first, then by name@version.
func sortMetas(out []Meta) {
	slices.SortFunc(out, func(a, b Meta) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.Name+"@"+a.Version, b.Name+"@"+b.Version)
	})
}

// Delete implements Store.
func (d *Disk) Delete(ctx context.Context, sum string) error {
	d.mu.Lock()
	u := d.inUse
	d.mu.Unlock()
	if u != nil {
		if ids := u.ArtifactInUse(sum); len(ids) > 0 {
			return fmt.Errorf("%w by rollouts %s: sha256 %s", ErrInUse, strings.Join(ids, ", "), sum)
		}
	}
	err := d.db.Update(func(tx *bolt.Tx) error {
		arts := tx.Bucket(bucketArtifacts)
		v := arts.Get([]byte(sum))
		if v == nil {
			return fmt.Errorf("%w: sha256 %s", ErrNotFound, sum)
		}
		var m Meta
		if err := json.Unmarshal(v, &m); err != nil {
			return err
		}
		if err := tx.Bucket(bucketNames).Delete(nameKey(m.Kind, m.Name, m.Version)); err != nil {
			return err
		}
		return arts.Delete([]byte(sum))
	})
	switch {
	case errors.Is(err, berrors.ErrDatabaseNotOpen):
		return ErrClosed
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrInUse):
		return err
	case err != nil:
		return fmt.Errorf("artifact: delete: %w", err)
	}
	if err := os.Remove(d.blobPath(sum)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("artifact: delete: %w", err)
	}
	return nil
}
