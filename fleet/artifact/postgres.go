package artifact

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"edgefleet/models/manifest"
)

// ChunkSize is the largest chunk Postgres stores an artifact in.
const ChunkSize = 1 << 20

// Postgres is the Store in PostgreSQL (schema: fleet/database migration
// 00004), shared by fleetd replicas: each artifact is a list of
// content-addressed chunks of up to ChunkSize bytes. Put streams the
// upload chunk by chunk (never more than one chunk in memory, plus what
// the Sealer reads) and records the artifact in one transaction once every
// chunk is stored; chunks of an upload that failed are removed by a later
// Open. Open returns a reader that fetches one chunk at a time, so any
// replica serves Range requests. It is safe for concurrent use.
type Postgres struct {
	pool *pgxpool.Pool
	opt  Options

	mu    sync.Mutex
	inUse InUse
}

var _ Store = (*Postgres)(nil)

// OpenPostgres opens the artifact store in pool's database (migrated by
// database.Open) and removes chunks that no artifact uses and that are
// more than a day old (uploads that died).
func OpenPostgres(ctx context.Context, pool *pgxpool.Pool, opt Options) (*Postgres, error) {
	if opt.MaxSize <= 0 {
		opt.MaxSize = 2 << 30
	}
	if _, err := pool.Exec(ctx, `DELETE FROM artifact_chunks c WHERE created_at < now() - interval '1 day'
		AND NOT EXISTS (SELECT 1 FROM artifact_parts p WHERE p.chunk = c.sha256)`); err != nil {
		return nil, fmt.Errorf("artifact: open: %w", err)
	}
	return &Postgres{pool: pool, opt: opt, inUse: opt.InUse}, nil
}

// SetInUse installs the guard Delete consults.
func (p *Postgres) SetInUse(u InUse) {
	p.mu.Lock()
	p.inUse = u
	p.mu.Unlock()
}

// Close implements io.Closer; the pool is the caller's.
func (p *Postgres) Close() error { return nil }

type part struct {
	sum  string
	off  int64
	size int
}

// Put implements Store.
func (p *Postgres) Put(ctx context.Context, r io.Reader, m Meta) (Meta, error) {
	if err := checkPut(m); err != nil {
		return Meta{}, err
	}
	if _, err := p.Find(ctx, m.Kind, m.Name, m.Version); err == nil {
		return Meta{}, fmt.Errorf("%w: %s %s@%s", ErrExists, m.Kind, m.Name, m.Version)
	}
	h := sha256.New()
	var parts []part
	buf := make([]byte, ChunkSize)
	src := &ctxReader{ctx: ctx, r: io.LimitReader(r, p.opt.MaxSize+1)}
	var n int64
	for {
		k, err := io.ReadFull(src, buf)
		if k > 0 {
			if n+int64(k) > p.opt.MaxSize {
				return Meta{}, fmt.Errorf("%w: %s@%s: more than %d bytes", ErrTooLarge, m.Name, m.Version, p.opt.MaxSize)
			}
			h.Write(buf[:k])
			cs := sha256.Sum256(buf[:k])
			sum := hex.EncodeToString(cs[:])
			if _, err := p.pool.Exec(ctx, `INSERT INTO artifact_chunks (sha256, data) VALUES ($1, $2)
				ON CONFLICT (sha256) DO UPDATE SET created_at = now()`, sum, buf[:k]); err != nil {
				return Meta{}, fmt.Errorf("artifact: put %s@%s: %w", m.Name, m.Version, err)
			}
			parts = append(parts, part{sum: sum, off: n, size: k})
			n += int64(k)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return Meta{}, fmt.Errorf("artifact: put %s@%s: read: %w", m.Name, m.Version, err)
		}
	}
	if n == 0 {
		return Meta{}, fmt.Errorf("artifact: put %s@%s: empty upload", m.Name, m.Version)
	}
	m, err := checkSum(m, hex.EncodeToString(h.Sum(nil)), n)
	if err != nil {
		return Meta{}, err
	}
	if p.opt.Seal != nil {
		if err := p.opt.Seal(ctx, &blob{ctx: ctx, pool: p.pool, parts: parts, size: n}, &m); err != nil {
			return Meta{}, fmt.Errorf("artifact: put %s@%s: %w", m.Name, m.Version, err)
		}
	}
	if err := p.record(ctx, m, parts); err != nil {
		return Meta{}, err
	}
	return m, nil
}

// record stores the artifact's row and parts in one transaction.
func (p *Postgres) record(ctx context.Context, m Meta, parts []part) error {
	val, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("artifact: put: %w", err)
	}
	err = pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		var o Meta
		var ob []byte
		switch err := tx.QueryRow(ctx, `SELECT meta FROM artifacts WHERE sha256 = $1`, m.SHA256).Scan(&ob); {
		case err == nil:
			if json.Unmarshal(ob, &o) == nil {
				return fmt.Errorf("%w: the same content is already stored as %s %s@%s", ErrExists, o.Kind, o.Name, o.Version)
			}
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO artifacts (sha256, kind, name, version, meta, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
			m.SHA256, m.Kind, m.Name, m.Version, val, m.CreatedAt); err != nil {
			var pe *pgconn.PgError
			if errors.As(err, &pe) && pe.Code == "23505" {
				return fmt.Errorf("%w: %s %s@%s", ErrExists, m.Kind, m.Name, m.Version)
			}
			return err
		}
		rows := make([][]any, len(parts))
		for i, pt := range parts {
			rows[i] = []any{m.SHA256, int32(i), pt.sum, int32(pt.size)}
		}
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"artifact_parts"}, []string{"artifact", "idx", "chunk", "size"}, pgx.CopyFromRows(rows))
		return err
	})
	if err != nil {
		return wrap("put", err)
	}
	return nil
}

// Get implements Store.
func (p *Postgres) Get(ctx context.Context, sum string) (Meta, error) {
	return p.one(ctx, "get", `SELECT meta FROM artifacts WHERE sha256 = $1`, sum)
}

// Find implements Store.
func (p *Postgres) Find(ctx context.Context, kind, name, version string) (Meta, error) {
	m, err := p.one(ctx, "find", `SELECT meta FROM artifacts WHERE kind = $1 AND name = $2 AND version = $3`, kind, name, version)
	if errors.Is(err, ErrNotFound) {
		return Meta{}, fmt.Errorf("%w: %s %s@%s", ErrNotFound, kind, name, version)
	}
	return m, err
}

func (p *Postgres) one(ctx context.Context, op, q string, args ...any) (Meta, error) {
	var b []byte
	if err := p.pool.QueryRow(ctx, q, args...).Scan(&b); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return Meta{}, fmt.Errorf("%w: %s", ErrNotFound, strings.Join(strs(args), " "))
		}
		return Meta{}, fmt.Errorf("artifact: %s: %w", op, err)
	}
	var m Meta
	if err := json.Unmarshal(b, &m); err != nil {
		return Meta{}, fmt.Errorf("artifact: %s: %w", op, err)
	}
	return m, nil
}

func strs(args []any) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = fmt.Sprint(a)
	}
	return out
}

// Open implements Store: the reader fetches a chunk at a time with ctx.
func (p *Postgres) Open(ctx context.Context, sum string) (Blob, Meta, error) {
	m, err := p.Get(ctx, sum)
	if err != nil {
		return nil, Meta{}, err
	}
	rows, err := p.pool.Query(ctx, `SELECT chunk, size FROM artifact_parts WHERE artifact = $1 ORDER BY idx`, sum)
	if err != nil {
		return nil, Meta{}, fmt.Errorf("artifact: open %s: %w", sum, err)
	}
	b := &blob{ctx: ctx, pool: p.pool, size: m.Size}
	var pt part
	var size int32
	_, err = pgx.ForEachRow(rows, []any{&pt.sum, &size}, func() error {
		pt.off, pt.size = b.partsEnd(), int(size)
		b.parts = append(b.parts, pt)
		return nil
	})
	if err != nil {
		return nil, Meta{}, fmt.Errorf("artifact: open %s: %w", sum, err)
	}
	if b.partsEnd() != m.Size {
		return nil, Meta{}, fmt.Errorf("artifact: open %s: chunks hold %d bytes, not %d", sum, b.partsEnd(), m.Size)
	}
	return b, m, nil
}

// List implements Store.
func (p *Postgres) List(ctx context.Context) ([]Meta, error) {
	rows, err := p.pool.Query(ctx, `SELECT meta FROM artifacts ORDER BY created_at DESC, name || '@' || version`)
	if err != nil {
		return nil, fmt.Errorf("artifact: list: %w", err)
	}
	var out []Meta
	var b []byte
	_, err = pgx.ForEachRow(rows, []any{&b}, func() error {
		var m Meta
		if err := json.Unmarshal(b, &m); err != nil {
			return err
		}
		out = append(out, m)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("artifact: list: %w", err)
	}
	sortMetas(out)
	return out, nil
}

// Delete implements Store.
func (p *Postgres) Delete(ctx context.Context, sum string) error {
	p.mu.Lock()
	u := p.inUse
	p.mu.Unlock()
	if u != nil {
		if ids := u.ArtifactInUse(sum); len(ids) > 0 {
			return fmt.Errorf("%w by rollouts %s: sha256 %s", ErrInUse, strings.Join(ids, ", "), sum)
		}
	}
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `DELETE FROM artifact_parts WHERE artifact = $1 RETURNING chunk`, sum)
		if err != nil {
			return err
		}
		chunks, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `DELETE FROM artifacts WHERE sha256 = $1`, sum)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("%w: sha256 %s", ErrNotFound, sum)
		}
		_, err = tx.Exec(ctx, `DELETE FROM artifact_chunks c WHERE sha256 = ANY($1)
			AND NOT EXISTS (SELECT 1 FROM artifact_parts p WHERE p.chunk = c.sha256)`, chunks)
		return err
	})
	if err != nil {
		return wrap("delete", err)
	}
	return nil
}

// blob reads an artifact's chunks, one at a time, with the context it was
// opened with. It implements Blob and io.ReaderAt.
type blob struct {
	ctx   context.Context
	pool  *pgxpool.Pool
	parts []part
	size  int64
	pos   int64

	cur  int // index of the chunk in data, -1 for none
	data []byte
}

func (b *blob) partsEnd() int64 {
	if len(b.parts) == 0 {
		return 0
	}
	last := b.parts[len(b.parts)-1]
	return last.off + int64(last.size)
}

// chunk returns the chunk holding offset off and its start.
func (b *blob) chunk(off int64) ([]byte, int64, error) {
	i := (off / ChunkSize)
	if i >= int64(len(b.parts)) || b.parts[i].off > off || b.parts[i].off+int64(b.parts[i].size) <= off {
		// Chunks are ChunkSize except the last; search otherwise.
		i = -1
		for k, pt := range b.parts {
			if pt.off <= off && off < pt.off+int64(pt.size) {
				i = int64(k)
			}
		}
		if i < 0 {
			return nil, 0, io.EOF
		}
	}
	if b.data != nil && b.cur == int(i) {
		return b.data, b.parts[i].off, nil
	}
	var data []byte
	if err := b.pool.QueryRow(b.ctx, `SELECT data FROM artifact_chunks WHERE sha256 = $1`, b.parts[i].sum).Scan(&data); err != nil {
		return nil, 0, fmt.Errorf("artifact: read chunk %s: %w", b.parts[i].sum, err)
	}
	if len(data) != b.parts[i].size {
		return nil, 0, fmt.Errorf("artifact: chunk %s has %d bytes, not %d", b.parts[i].sum, len(data), b.parts[i].size)
	}
	b.cur, b.data = int(i), data
	return data, b.parts[i].off, nil
}

// ReadAt implements io.ReaderAt.
func (b *blob) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		if off+int64(n) >= b.size {
			return n, io.EOF
		}
		data, start, err := b.chunk(off + int64(n))
		if err != nil {
			return n, err
		}
		n += copy(p[n:], data[off+int64(n)-start:])
	}
	return n, nil
}

// Read implements io.Reader.
func (b *blob) Read(p []byte) (int, error) {
	if b.pos >= b.size {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	data, start, err := b.chunk(b.pos)
	if err != nil {
		return 0, err
	}
	n := copy(p, data[b.pos-start:])
	b.pos += int64(n)
	return n, nil
}

// Seek implements io.Seeker.
func (b *blob) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		off += b.pos
	case io.SeekEnd:
		off += b.size
	default:
		return 0, errors.New("artifact: seek: bad whence")
	}
	if off < 0 {
		return 0, errors.New("artifact: seek: negative position")
	}
	b.pos = off
	return off, nil
}

// Close implements io.Closer.
func (b *blob) Close() error {
	b.data = nil
	return nil
}

// SigningKeyPostgres returns the signing key kept in the database, so
// that every replica signs with the same key. The first fleetd to ask
// stores seed there (its existing key file), or a key it generates when
// seed is nil; created reports whether this call stored it. The key is
// stored in clear.
func SigningKeyPostgres(ctx context.Context, pool *pgxpool.Pool, seed ed25519.PrivateKey) (priv ed25519.PrivateKey, keyID string, created bool, err error) {
	if seed == nil {
		if _, seed, err = ed25519.GenerateKey(rand.Reader); err != nil {
			return nil, "", false, fmt.Errorf("artifact: signing key: %w", err)
		}
	}
	pemKey, err := EncodePrivateKey(seed)
	if err != nil {
		return nil, "", false, fmt.Errorf("artifact: signing key: %w", err)
	}
	tag, err := pool.Exec(ctx, `INSERT INTO ota_signing_key (private_pem) VALUES ($1) ON CONFLICT DO NOTHING`, string(pemKey))
	if err != nil {
		return nil, "", false, fmt.Errorf("artifact: signing key: %w", err)
	}
	var s string
	if err := pool.QueryRow(ctx, `SELECT private_pem FROM ota_signing_key`).Scan(&s); err != nil {
		return nil, "", false, fmt.Errorf("artifact: signing key: %w", err)
	}
	if priv, err = manifest.ParsePrivateKey([]byte(s)); err != nil {
		return nil, "", false, fmt.Errorf("artifact: signing key: %w", err)
	}
	return priv, manifest.KeyID(priv.Public().(ed25519.PublicKey)), tag.RowsAffected() == 1, nil
}

// EncodePrivateKey returns the PEM "PRIVATE KEY" (PKCS #8) encoding of
// priv, as manifest.GenerateKey writes it.
func EncodePrivateKey(priv ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}
