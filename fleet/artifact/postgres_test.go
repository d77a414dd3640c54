package artifact

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"edgefleet/fleet/database/dbtest"
	"edgefleet/models/manifest"
)

// storeSuite is the behaviour every Store shows: st is empty, takes up to
// 3 MiB, seals with sealEvil, and its Delete asks use.
func storeSuite(t *testing.T, st Store, use fakeInUse, dir string) {
	ctx := context.Background()
	a := randBytes(2<<20+12345, 7) // three chunks in Postgres, the last short
	m, err := st.Put(ctx, bytes.NewReader(a), Meta{Kind: manifest.KindModel, Name: "yolo", Version: "1"})
	if err != nil {
		t.Fatal(err)
	}
	if m.SHA256 != hexSum(a) || m.Size != int64(len(a)) || m.KeyID != "k1" {
		t.Fatalf("meta %+v", m)
	}
	refusedPuts(t, st, dir, a, 3<<20)
	if got, err := st.Find(ctx, "model", "yolo", "1"); err != nil || got.SHA256 != m.SHA256 || string(got.Manifest) != `{"sealed":true}` {
		t.Fatalf("Find = %+v %v", got, err)
	}
	if _, err := st.Get(ctx, strings.Repeat("0", 64)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get missing = %v", err)
	}
	b, _, err := st.Open(ctx, m.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	all, err := io.ReadAll(b)
	if err != nil || !bytes.Equal(all, a) {
		t.Fatalf("read %d bytes, %v", len(all), err)
	}
	// Across a chunk boundary, from the end, and past it.
	for _, off := range []int64{1<<20 - 10, 2<<20 + 12000, 5} {
		if _, err := b.Seek(off, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 100)
		n, err := io.ReadFull(b, got)
		want := a[off:min(off+100, int64(len(a)))]
		if !bytes.Equal(got[:n], want) || (n < 100) != errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("at %d: %d bytes, %v", off, n, err)
		}
	}
	if end, err := b.Seek(0, io.SeekEnd); err != nil || end != int64(len(a)) {
		t.Fatalf("Seek end = %d %v", end, err)
	}
	b.Close()

	fw := []byte("firmware bytes")
	if _, err := st.Put(ctx, bytes.NewReader(fw), Meta{Kind: manifest.KindFirmware, Name: "yolo", Version: "1", Size: int64(len(fw))}); err != nil {
		t.Fatalf("firmware with a model's name: %v", err)
	}
	if list, err := st.List(ctx); err != nil || len(list) != 2 {
		t.Fatalf("List = %v %v", list, err)
	}
	use[m.SHA256] = []string{"r1"}
	if err := st.Delete(ctx, m.SHA256); !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "r1") {
		t.Fatalf("Delete in use = %v", err)
	}
	delete(use, m.SHA256)
	if err := st.Delete(ctx, m.SHA256); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, m.SHA256); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Delete = %v", err)
	}
	if _, _, err := st.Open(ctx, m.SHA256); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Open after Delete = %v", err)
	}
	if _, err := st.Put(ctx, bytes.NewReader(a), Meta{Kind: manifest.KindModel, Name: "yolo", Version: "1"}); err != nil {
		t.Fatalf("put again after delete: %v", err)
	}
	// Served with Range by the handler.
	srv, sum := serve(t, st, a[:2<<20+7])
	req, _ := http.NewRequest("GET", srv.URL+URL(sum), nil)
	req.SetBasicAuth("cam-1", "secret")
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", 1<<20-3, 2<<20+5))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, a[1<<20-3:2<<20+6]) {
		t.Fatalf("range: %s, %d bytes", resp.Status, len(body))
	}
}

func sealEvil(_ context.Context, blob io.ReaderAt, m *Meta) error {
	head := make([]byte, 4)
	if _, err := blob.ReadAt(head, 0); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if string(head) == "EVIL" {
		return errors.New("refused by sealer")
	}
	m.Manifest, m.KeyID = []byte(`{"sealed":true}`), "k1"
	return nil
}

func TestStoreSuite(t *testing.T) {
	t.Run("disk", func(t *testing.T) {
		use, dir := fakeInUse{}, t.TempDir()
		st, err := Open(dir, Options{MaxSize: 3 << 20, Seal: sealEvil, InUse: use})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		storeSuite(t, st, use, dir)
	})
	t.Run("postgres", func(t *testing.T) {
		use := fakeInUse{}
		st, err := OpenPostgres(context.Background(), dbtest.Open(t).Pool, Options{MaxSize: 3 << 20, Seal: sealEvil, InUse: use})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		storeSuite(t, st, use, "")
	})
}

// TestSigningKeyPostgres: the first call stores its key (a seed given, or
// a generated one), later ones (other replicas) get the same.
func TestSigningKeyPostgres(t *testing.T) {
	ctx := context.Background()
	t.Run("generated", func(t *testing.T) {
		pool := dbtest.Open(t).Pool
		k1, id1, created, err := SigningKeyPostgres(ctx, pool, nil)
		if err != nil || !created {
			t.Fatalf("first: created %v, %v", created, err)
		}
		k2, id2, created, err := SigningKeyPostgres(ctx, pool, nil)
		if err != nil || created || id1 != id2 || !k1.Equal(k2) {
			t.Fatalf("second: created %v, ids %s %s, %v", created, id1, id2, err)
		}
	})
	t.Run("seeded", func(t *testing.T) {
		pool := dbtest.Open(t).Pool
		_, seed, _ := ed25519.GenerateKey(nil)
		k1, _, created, err := SigningKeyPostgres(ctx, pool, seed)
		if err != nil || !created || !k1.Equal(seed) {
			t.Fatalf("first: created %v, same as seed %v, %v", created, k1.Equal(seed), err)
		}
		_, other, _ := ed25519.GenerateKey(nil)
		k2, _, created, err := SigningKeyPostgres(ctx, pool, other)
		if err != nil || created || !k2.Equal(seed) {
			t.Fatalf("second seed: created %v, the first's key %v, %v", created, k2.Equal(seed), err)
		}
	})
}
