package update

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"image"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"edgefleet/fleet/api"
	"edgefleet/internal/testutil"
	"edgefleet/models"
	"edgefleet/models/manifest"
	"edgefleet/models/tflite"
	tt "edgefleet/models/tflite/tflitetest"
	"edgefleet/models/yolo"
)

// tinyE2E builds a small float model with an end-to-end YOLO head
// [1,512,6] that ignores its 32×32 input and returns one box of the given
// score (class 0) per frame: score 0 makes a model that loads, runs and
// finds nothing.
func tinyE2E(score float32) []byte {
	bias := make([]float32, 512*6)
	copy(bias, []float32{0.1, 0.1, 0.5, 0.5, score, 0})
	return tt.Build(tt.Model{
		Tensors: []tt.Tensor{
			{Name: "images", Type: models.Float32, Shape: []int{1, 32, 32, 3}},
			{Name: "shape", Type: models.Int32, Shape: []int{3}, Data: tt.Int32s(1, 512, 6)},
			{Name: "flat", Type: models.Float32, Shape: []int{1, 512, 6}},
			{Name: "zero", Type: models.Float32, Shape: []int{1}, Data: tt.Float32s(0)},
			{Name: "zeros", Type: models.Float32, Shape: []int{1, 512, 6}},
			{Name: "bias", Type: models.Float32, Shape: []int{1, 512, 6}, Data: tt.Float32s(bias...)},
			{Name: "out", Type: models.Float32, Shape: []int{1, 512, 6}},
		},
		Ops: []tt.Op{
			{Builtin: int32(tflite.OpReshape), Inputs: []int{0, 1}, Outputs: []int{2}},
			{Builtin: int32(tflite.OpMul), Inputs: []int{2, 3}, Outputs: []int{4}, Options: []any{uint8(0)}},
			{Builtin: int32(tflite.OpAdd), Inputs: []int{4, 5}, Outputs: []int{6}, Options: []any{uint8(0)}},
		},
		Inputs: []int{0}, Outputs: []int{6},
	})
}

// tinyFlat builds a model that loads and runs but whose output [1,3072] is
// no detection head.
func tinyFlat() []byte {
	return tt.Build(tt.Model{
		Tensors: []tt.Tensor{
			{Name: "images", Type: models.Float32, Shape: []int{1, 32, 32, 3}},
			{Name: "shape", Type: models.Int32, Shape: []int{2}, Data: tt.Int32s(1, 3072)},
			{Name: "embedding", Type: models.Float32, Shape: []int{1, 3072}},
		},
		Ops:    []tt.Op{{Builtin: int32(tflite.OpReshape), Inputs: []int{0, 1}, Outputs: []int{2}}},
		Inputs: []int{0}, Outputs: []int{2},
	})
}

func sum256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func openGo(ctx context.Context, b []byte, o models.Options) (models.Engine, error) {
	return tflite.Open(ctx, b, o)
}

// artServer serves artifacts by sha256 like fleetd's artifact handler
// (Range, If-Range against an ETag of the sha256) and records every request.
type artServer struct {
	srv *httptest.Server

	inflight sync.WaitGroup // handlers running

	mu    sync.Mutex
	files map[string][]byte // by URL path
	reqs  []servedReq       // in arrival order
	// dropAfter, when > 0, makes the next full response close the
	// connection after that many body bytes (then it resets).
	dropAfter int64
	// stallAfter, when > 0, makes the next response stop after that many
	// bytes and hang until the client goes away (then it resets).
	stallAfter int64
	// fail503 answers that many requests with 503 first.
	fail503 int
	served  atomic.Int64 // body bytes sent in all
}

type servedReq struct {
	Range, IfRange string
	Status         int
	Bytes          int64
}

func newArtServer(t testing.TB) *artServer {
	a := &artServer{files: map[string][]byte{}}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.srv.Close)
	return a
}

// put serves body at /artifacts/<sum> and returns the URL.
func (a *artServer) put(sum string, body []byte) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := "/artifacts/" + sum
	a.files[p] = body
	return a.srv.URL + p
}

// requests waits for the handlers in flight and returns every request.
func (a *artServer) requests() []servedReq {
	a.inflight.Wait()
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.reqs)
}

type countingWriter struct {
	http.ResponseWriter
	n      int64
	status int
	limit  int64 // stop after limit bytes (0: none)
	cut    bool
}

func (c *countingWriter) WriteHeader(code int) {
	c.status = code
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(b []byte) (int, error) {
	if c.limit > 0 && c.n+int64(len(b)) > c.limit {
		b = b[:c.limit-c.n]
		c.cut = true
	}
	n, err := c.ResponseWriter.Write(b)
	c.n += int64(n)
	if c.cut {
		return n, fmt.Errorf("test server: cut at %d bytes", c.n)
	}
	return n, err
}

func (a *artServer) serve(w http.ResponseWriter, r *http.Request) {
	a.inflight.Add(1)
	defer a.inflight.Done()
	rec := servedReq{Range: r.Header.Get("Range"), IfRange: r.Header.Get("If-Range")}
	a.mu.Lock()
	body, ok := a.files[r.URL.Path]
	drop, stall := a.dropAfter, a.stallAfter
	a.dropAfter, a.stallAfter = 0, 0
	fail := a.fail503 > 0
	if fail {
		a.fail503--
	}
	idx := len(a.reqs)
	a.reqs = append(a.reqs, rec)
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.reqs[idx] = rec
		a.mu.Unlock()
	}()
	if fail {
		rec.Status = http.StatusServiceUnavailable
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	if !ok {
		rec.Status = http.StatusNotFound
		http.NotFound(w, r)
		return
	}
	sum := strings.TrimPrefix(r.URL.Path, "/artifacts/")
	w.Header().Set("ETag", `"`+sum+`"`)
	cw := &countingWriter{ResponseWriter: w, limit: max(drop, stall)}
	http.ServeContent(cw, r, "", time.Unix(1700000000, 0), strings.NewReader(string(body)))
	rec.Status, rec.Bytes = cw.status, cw.n
	a.served.Add(cw.n)
	if cw.cut {
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		if stall > 0 {
			<-r.Context().Done()
			return
		}
		// Drop the connection mid-body.
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
			}
		}
	}
}

// recorder is a Reporter that keeps every status.
type recorder struct {
	mu  sync.Mutex
	all []api.JobStatus
	ch  chan struct{}
}

func newRecorder() *recorder { return &recorder{ch: make(chan struct{}, 1)} }

func (r *recorder) Report(ctx context.Context, s api.JobStatus) error {
	r.mu.Lock()
	r.all = append(r.all, s)
	r.mu.Unlock()
	select {
	case r.ch <- struct{}{}:
	default:
	}
	return nil
}

func (r *recorder) of(job string) []api.JobStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []api.JobStatus
	for _, s := range r.all {
		if s.JobID == job {
			out = append(out, s)
		}
	}
	return out
}

// states lists a job's states, collapsing repeated downloading reports.
func (r *recorder) states(job string) []string {
	var out []string
	for _, s := range r.of(job) {
		if len(out) > 0 && out[len(out)-1] == s.State && s.State == api.JobDownloading {
			continue
		}
		out = append(out, s.State)
	}
	return out
}

// wait returns the job's final status.
func (r *recorder) wait(t *testing.T, job string, timeout time.Duration) api.JobStatus {
	t.Helper()
	dl := time.After(timeout)
	for {
		for _, s := range r.of(job) {
			if terminal(s.State) {
				return s
			}
		}
		select {
		case <-r.ch:
		case <-time.After(20 * time.Millisecond):
		case <-dl:
			t.Fatalf("job %s: no final state after %v; states %v", job, timeout, r.states(job))
		}
	}
}

// waitState waits until the job reported state.
func (r *recorder) waitState(t *testing.T, job, state string, timeout time.Duration) {
	t.Helper()
	testutil.WaitFor(t, "job "+job+" to reach "+state, timeout, func() bool { return slices.Contains(r.states(job), state) })
}

// camera feeds the Serving frames as the pipeline would, counting errors.
type camera struct {
	frames, errs atomic.Int64
	stop         func()
	done         chan struct{}
}

func startCamera(t *testing.T, s *Serving, every time.Duration) *camera {
	return runCamera(t, s, every, true)
}

// startCameraTolerant counts errors without failing the test.
func startCameraTolerant(t *testing.T, s *Serving, every time.Duration) *camera {
	return runCamera(t, s, every, false)
}

func runCamera(t *testing.T, s *Serving, every time.Duration, strict bool) *camera {
	ctx, cancel := context.WithCancel(context.Background())
	c := &camera{stop: cancel, done: make(chan struct{})}
	img := image.NewRGBA(image.Rect(0, 0, 64, 48))
	go func() {
		defer close(c.done)
		for ctx.Err() == nil {
			if _, err := s.Detect(ctx, []image.Image{img}); err != nil && ctx.Err() == nil {
				c.errs.Add(1)
				if strict {
					t.Errorf("camera: detect: %v", err)
				}
			}
			c.frames.Add(1)
			select {
			case <-ctx.Done():
			case <-time.After(every):
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-c.done })
	return c
}

// fixture is an agent's update side: a Serving serving the old model, an
// Executor over a data dir, an artifact server and a signing key.
type fixture struct {
	t      *testing.T
	dir    string
	art    *artServer
	rep    *recorder
	srv    *Serving
	x      *Executor
	opts   Options
	priv   ed25519.PrivateKey
	keyID  string
	old    []byte
	cancel context.CancelFunc
	ran    chan error
}

func newFixture(t *testing.T, old []byte, tweak func(*Options)) *fixture {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keys := manifest.KeySet{}
	f := &fixture{t: t, dir: t.TempDir(), art: newArtServer(t), rep: newRecorder(), priv: priv, keyID: keys.Add(pub), old: old}
	eng, err := tflite.Open(context.Background(), old, models.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f.srv, err = NewServing(eng, nil, yolo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.srv.Close() })
	f.opts = Options{
		Dir: f.dir, DeviceID: "cam-box-1", Token: "secret", Keys: keys, Reporter: f.rep,
		Swapper: f.srv, Health: f.srv, Open: openGo,
		RetryBase: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond, StallTimeout: 2 * time.Second,
		ProgressInterval: time.Millisecond, HealthWindow: 400 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil)),
	}
	if tweak != nil {
		tweak(&f.opts)
	}
	f.open()
	oldPath := filepath.Join(t.TempDir(), "old.tflite")
	if err := os.WriteFile(oldPath, old, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := f.x.Seed(context.Background(), oldPath, "tiny", "1"); err != nil {
		t.Fatal(err)
	}
	return f
}

// open (re)creates the Executor on the data dir, as an agent start does.
func (f *fixture) open() {
	f.t.Helper()
	x, err := New(f.opts)
	if err != nil {
		f.t.Fatal(err)
	}
	f.x = x
}

// start runs the Executor until stop or the end of the test.
func (f *fixture) start() {
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel, f.ran = cancel, make(chan error, 1)
	x := f.x
	go func() { f.ran <- x.Run(ctx) }()
	f.t.Cleanup(f.stop)
}

func (f *fixture) stop() {
	if f.cancel == nil {
		return
	}
	f.cancel()
	if err := <-f.ran; err != nil {
		f.t.Errorf("Run: %v", err)
	}
	f.cancel = nil
}

// signed is a command for data signed with the fixture's key, served by the
// artifact server (serve, when set, replaces the bytes served).
func (f *fixture) signed(job string, data []byte, version string) api.Command {
	f.t.Helper()
	return f.signedAs(job, data, "tiny", version, nil)
}

// signedAs is signed with a manifest of that name and labels.
func (f *fixture) signedAs(job string, data []byte, name, version string, labels []string) api.Command {
	f.t.Helper()
	m, err := manifest.ForModel(data, name, version, labels, time.Now())
	if err != nil {
		f.t.Fatal(err)
	}
	payload, sig, err := manifest.Sign(f.priv, f.keyID, m)
	if err != nil {
		f.t.Fatal(err)
	}
	return api.Command{JobID: job, Kind: api.CommandModelUpdate, Artifact: &api.Artifact{
		Kind: "model", Name: m.Name, Version: m.Version, SHA256: m.SHA256, Size: m.Size,
		URL: f.art.put(m.SHA256, data), Manifest: payload, Sig: sig, KeyID: f.keyID,
	}}
}

func (f *fixture) handle(c api.Command) {
	f.t.Helper()
	if err := f.x.Handle(context.Background(), c); err != nil {
		f.t.Fatalf("Handle: %v", err)
	}
}

// serving is the sha256 of the model the Serving runs.
func (f *fixture) serving() string {
	if m := f.srv.Manifest(); m != nil {
		return m.SHA256
	}
	return sum256(f.old) // the seeded model has no manifest
}

func (f *fixture) modelFiles() []string {
	files, _ := filepath.Glob(filepath.Join(f.dir, "models", "*"))
	for i := range files {
		files[i] = filepath.Base(files[i])
	}
	return files
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
