package artifact

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"edgefleet/models/manifest"
)

func randBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

type fakeInUse map[string][]string

func (f fakeInUse) ArtifactInUse(sum string) []string { return f[sum] }

func TestStore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	sealed := 0
	seal := func(_ context.Context, blob io.ReaderAt, m *Meta) error {
		sealed++
		head := make([]byte, 4)
		if _, err := blob.ReadAt(head, 0); err != nil {
			return err
		}
		if string(head) == "EVIL" {
			return errors.New("refused by sealer")
		}
		m.Manifest, m.KeyID = []byte(`{"sealed":true}`), "k1"
		return nil
	}
	st, err := Open(dir, Options{MaxSize: 1 << 20, Seal: seal})
	if err != nil {
		t.Fatal(err)
	}
	a := randBytes(300_000, 1)
	m, err := st.Put(ctx, bytes.NewReader(a), Meta{Kind: manifest.KindModel, Name: "yolo", Version: "1"})
	if err != nil {
		t.Fatal(err)
	}
	if m.SHA256 != hexSum(a) || m.Size != int64(len(a)) || m.KeyID != "k1" || sealed != 1 {
		t.Fatalf("meta %+v sealed %d", m, sealed)
	}
	fi, err := os.Stat(filepath.Join(dir, "blobs", m.SHA256))
	if err != nil || fi.Mode().Perm() != 0o444 {
		t.Fatalf("blob: %v %v", fi, err)
	}

	refusedPuts(t, st, dir, a, 1<<20)

	fw := []byte("firmware bytes")
	if _, err := st.Put(ctx, bytes.NewReader(fw), Meta{Kind: manifest.KindFirmware, Name: "yolo", Version: "1", SHA256: hexSum(fw), Size: int64(len(fw))}); err != nil {
		t.Fatalf("firmware with a model's name: %v", err)
	}
	if got, err := st.Find(ctx, "model", "yolo", "1"); err != nil || got.SHA256 != m.SHA256 {
		t.Fatalf("Find = %+v %v", got, err)
	}
	if _, err := st.Find(ctx, "model", "yolo", "9"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Find missing = %v", err)
	}
	f, got, err := st.Open(ctx, m.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(f)
	f.Close()
	if !bytes.Equal(b, a) || got.Name != "yolo" {
		t.Fatal("Open returned other bytes")
	}

	// Reopen: everything persisted.
	st.Close()
	if err := st.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := st.Get(ctx, m.SHA256); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close = %v", err)
	}
	os.WriteFile(filepath.Join(dir, "tmp", "put-stale"), []byte("x"), 0o600)
	use := fakeInUse{m.SHA256: {"r1"}}
	st, err = Open(dir, Options{InUse: use})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := os.Stat(filepath.Join(dir, "tmp", "put-stale")); err == nil {
		t.Fatal("stale upload not removed on Open")
	}
	list, err := st.List(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("List = %v %v", list, err)
	}
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
	if _, err := os.Stat(filepath.Join(dir, "blobs", m.SHA256)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("blob left after Delete")
	}
	// The name is free again.
	if _, err := st.Put(ctx, bytes.NewReader(a), Meta{Kind: manifest.KindModel, Name: "yolo", Version: "1"}); err != nil {
		t.Fatal(err)
	}
}

// refusedPuts checks the uploads the store refuses, given st holding a
// as model yolo@1 and taking up to maxSize bytes: none leaves a temporary
// file behind in dir ("" for a store without one). The store's sealer
// refuses content starting with "EVIL".
func refusedPuts(t *testing.T, st Store, dir string, a []byte, maxSize int) {
	ctx := context.Background()
	tests := []struct {
		name string
		data []byte
		meta Meta
		want error
	}{
		{"same name and version", []byte("other"), Meta{Kind: "model", Name: "yolo", Version: "1"}, ErrExists},
		{"same content", a, Meta{Kind: "model", Name: "yolo", Version: "2"}, ErrExists},
		{"wrong sha", []byte("abc"), Meta{Kind: "model", Name: "x", Version: "1", SHA256: hexSum([]byte("abd"))}, ErrMismatch},
		{"truncated", []byte("abc"), Meta{Kind: "model", Name: "x", Version: "1", Size: 4}, ErrMismatch},
		{"too large", make([]byte, maxSize+1), Meta{Kind: "model", Name: "x", Version: "1"}, ErrTooLarge},
		{"bad kind", []byte("abc"), Meta{Kind: "docker", Name: "x", Version: "1"}, nil},
		{"slash in name", []byte("abc"), Meta{Kind: "model", Name: "a/b", Version: "1"}, nil},
		{"empty", nil, Meta{Kind: "model", Name: "x", Version: "1"}, nil},
		{"sealer refuses", []byte("EVIL bytes"), Meta{Kind: "model", Name: "x", Version: "1"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := st.Put(ctx, bytes.NewReader(tc.data), tc.meta)
			if err == nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Put = %v, want %v", err, tc.want)
			}
		})
	}
	if tmps, _ := os.ReadDir(filepath.Join(dir, "tmp")); dir != "" && len(tmps) != 0 {
		t.Fatalf("temporary files left: %v", tmps)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := st.Put(cctx, bytes.NewReader([]byte("abc")), Meta{Kind: "model", Name: "x", Version: "1"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put with canceled ctx = %v", err)
	}
}

func newServed(t testing.TB, data []byte) (*httptest.Server, string) {
	t.Helper()
	st, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return serve(t, st, data)
}

// serve puts data into st and serves st to device cam-1 (token "secret").
func serve(t testing.TB, st Store, data []byte) (*httptest.Server, string) {
	t.Helper()
	m, err := st.Put(context.Background(), bytes.NewReader(data), Meta{Kind: "model", Name: "m", Version: "1"})
	if err != nil {
		t.Fatal(err)
	}
	auth := AuthFunc(func(_ context.Context, id string, tok []byte) error {
		if id == "cam-1" && string(tok) == "secret" {
			return nil
		}
		return errors.New("bad credentials")
	})
	mux := http.NewServeMux()
	mux.Handle(PathPrefix, NewHandler(st, auth, discard()))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, m.SHA256
}

func TestHandler(t *testing.T) {
	data := randBytes(200_000, 2)
	srv, sum := newServed(t, data)
	get := func(t *testing.T, method, path, user, pass string, hdr map[string]string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	tests := []struct {
		name       string
		method     string
		path       string
		user, pass string
		hdr        map[string]string
		wantCode   int
		wantBody   []byte
		wantSubstr string
	}{
		{"no credentials", "GET", URL(sum), "", "", nil, 401, nil, "credentials required"},
		{"bad token", "GET", URL(sum), "cam-1", "nope", nil, 401, nil, "bad device credentials"},
		{"unknown device", "GET", URL(sum), "cam-9", "secret", nil, 401, nil, "bad device"},
		{"whole", "GET", URL(sum), "cam-1", "secret", nil, 200, data, ""},
		{"range", "GET", URL(sum), "cam-1", "secret", map[string]string{"Range": "bytes=1000-1999"}, 206, data[1000:2000], ""},
		{"resume", "GET", URL(sum), "cam-1", "secret", map[string]string{"Range": "bytes=150000-", "If-Range": `"` + sum + `"`}, 206, data[150000:], ""},
		{"resume changed", "GET", URL(sum), "cam-1", "secret", map[string]string{"Range": "bytes=150000-", "If-Range": `"other"`}, 200, data, ""},
		{"unsatisfiable", "GET", URL(sum), "cam-1", "secret", map[string]string{"Range": "bytes=999999-"}, 416, nil, ""},
		{"head", "HEAD", URL(sum), "cam-1", "secret", nil, 200, []byte{}, ""},
		{"unknown sha", "GET", URL(strings.Repeat("0", 64)), "cam-1", "secret", nil, 404, nil, "not found"},
		{"bad sha", "GET", PathPrefix + "../etc/passwd", "cam-1", "secret", nil, 404, nil, ""},
		{"post", "POST", URL(sum), "cam-1", "secret", nil, 405, nil, "not allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := get(t, tc.method, tc.path, tc.user, tc.pass, tc.hdr)
			if resp.StatusCode != tc.wantCode {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.wantCode, body)
			}
			if tc.wantBody != nil && !bytes.Equal(body, tc.wantBody) {
				t.Fatalf("body of %d bytes, want %d", len(body), len(tc.wantBody))
			}
			if !strings.Contains(string(body), tc.wantSubstr) {
				t.Fatalf("body %q lacks %q", body, tc.wantSubstr)
			}
			if tc.wantCode == 200 && resp.Header.Get("ETag") != `"`+sum+`"` {
				t.Fatalf("ETag %q", resp.Header.Get("ETag"))
			}
		})
	}
}

// BenchmarkArtifactServe measures serving a 16 MiB artifact over loopback
// HTTP, in 4 MiB Range requests as a resuming agent makes them.
func BenchmarkArtifactServe(b *testing.B) {
	const size, chunk = 16 << 20, 4 << 20
	data := randBytes(size, 3)
	srv, sum := newServed(b, data)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	buf := make([]byte, 64<<10)
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		for off := 0; off < size; off += chunk {
			req, _ := http.NewRequest("GET", srv.URL+URL(sum), nil)
			req.SetBasicAuth("cam-1", "secret")
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+chunk-1))
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			n, err := io.CopyBuffer(io.Discard, resp.Body, buf)
			resp.Body.Close()
			if err != nil || n != chunk || resp.StatusCode != http.StatusPartialContent {
				b.Fatalf("got %d bytes, status %d, %v", n, resp.StatusCode, err)
			}
		}
	}
	b.ReportMetric(float64(size)*float64(b.N)/b.Elapsed().Seconds()/1e6, "MB/s")
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
