package update

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"edgefleet/fleet/api"
	"edgefleet/fleet/artifact"
	"edgefleet/models/manifest"
)

// TestFleetArtifactServer downloads from fleetd's real artifact handler:
// device credentials, a relative URL, and a resume (a partial file left by
// an earlier run) answered with 206 through If-Range against its ETag.
func TestFleetArtifactServer(t *testing.T) {
	data := tinyE2E(0.8)
	f := newFixture(t, tinyE2E(0.9), nil)
	startCamera(t, f.srv, 2*time.Millisecond)
	store, err := artifact.Open(t.TempDir(), artifact.Options{Seal: func(ctx context.Context, blob io.ReaderAt, m *artifact.Meta) error {
		b, err := io.ReadAll(io.NewSectionReader(blob, 0, m.Size))
		if err != nil {
			return err
		}
		man, err := manifest.ForModel(b, m.Name, m.Version, nil, m.CreatedAt)
		if err != nil {
			return err
		}
		m.Manifest, m.Sig, err = manifest.Sign(f.priv, f.keyID, man)
		m.KeyID = f.keyID
		return err
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	meta, err := store.Put(context.Background(), bytes.NewReader(data), artifact.Meta{Kind: "model", Name: "tiny", Version: "2"})
	if err != nil {
		t.Fatal(err)
	}
	auth := artifact.AuthFunc(func(ctx context.Context, id string, token []byte) error {
		if id != "cam-box-1" || string(token) != "secret" {
			return errors.New("unknown device")
		}
		return nil
	})
	h := artifact.NewHandler(store, auth, nil)
	var mu sync.Mutex
	var reqs []servedReq
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &countingWriter{ResponseWriter: w}
		h.ServeHTTP(cw, r)
		mu.Lock()
		reqs = append(reqs, servedReq{Range: r.Header.Get("Range"), IfRange: r.Header.Get("If-Range"), Status: cw.status, Bytes: cw.n})
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)

	command := func(job string) api.Command {
		return api.Command{JobID: job, Kind: api.CommandModelUpdate, Artifact: &api.Artifact{
			Kind: meta.Kind, Name: meta.Name, Version: meta.Version, SHA256: meta.SHA256, Size: meta.Size,
			URL: artifact.URL(meta.SHA256), Manifest: meta.Manifest, Sig: meta.Sig, KeyID: meta.KeyID,
		}}
	}

	// Wrong credentials: refused for good, no retries.
	f.opts.BaseURL = srv.URL
	f.opts.Token = "wrong"
	f.open()
	f.start()
	f.handle(command("job-denied"))
	end := f.rep.wait(t, "job-denied", jobTimeout)
	if end.State != api.JobFailed || !strings.Contains(end.Reason, "update: http error: get "+srv.URL+"/artifacts/") || !strings.Contains(end.Reason, "401 Unauthorized") {
		t.Fatalf("denied: %s (%q)", end.State, end.Reason)
	}
	f.stop()

	// A partial file from an earlier run, and its ETag.
	half := int64(len(data)) / 2
	part := filepath.Join(f.dir, "staging", meta.SHA256+".part")
	if err := os.WriteFile(part, data[:half], 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(strings.TrimSuffix(part, ".part")+".etag", []byte(`"`+meta.SHA256+`"`), 0o644); err != nil {
		t.Fatal(err)
	}
	f.opts.Token = "secret"
	f.open()
	f.start()
	f.handle(command("job-fleet"))
	if end := f.rep.wait(t, "job-fleet", jobTimeout); end.State != api.JobSucceeded {
		t.Fatalf("final %s (%s)", end.State, end.Reason)
	}
	if got := f.serving(); got != meta.SHA256 {
		t.Errorf("serving %s, want %s", short(got), short(meta.SHA256))
	}
	mu.Lock()
	defer mu.Unlock()
	last := reqs[len(reqs)-1]
	if want := "bytes=" + strconv.FormatInt(half, 10) + "-"; last.Range != want || last.Status != http.StatusPartialContent || last.Bytes != int64(len(data))-half {
		t.Errorf("resume request %+v, want Range %s answered 206 with %d bytes", last, want, int64(len(data))-half)
	}
}
