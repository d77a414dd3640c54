package capture

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"edgefleet/internal/testutil"
	"edgefleet/models/modeltest"
)

func TestYUYVToRGBA(t *testing.T) {
	const w, h = 6, 3
	r := rand.New(rand.NewPCG(1, 2))
	raw := make([]byte, w*h*2)
	for i := range raw {
		raw[i] = byte(r.IntN(256))
	}
	// Extremes, where clamping matters.
	copy(raw, []byte{0, 0, 255, 255, 255, 255, 0, 0})
	img, err := YUYVToRGBA(raw, w, h)
	if err != nil {
		t.Fatal(err)
	}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			i := (y*w + x/2*2) * 2
			yy := raw[i]
			if x%2 == 1 {
				yy = raw[i+2]
			}
			rr, gg, bb := color.YCbCrToRGB(yy, raw[i+1], raw[i+3])
			want := color.RGBA{rr, gg, bb, 255}
			if got := img.RGBAAt(x, y); got != want {
				t.Fatalf("pixel %d,%d = %v, want %v", x, y, got, want)
			}
		}
	}
}

func TestYUYVBadInput(t *testing.T) {
	tests := []struct {
		name string
		n    int
		w, h int
	}{
		{"short", 10, 4, 4},
		{"odd width", 100, 5, 2},
		{"zero", 0, 0, 0},
		{"negative", 8, -2, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := YUYVToRGBA(make([]byte, tt.n), tt.w, tt.h); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

func testJPEG(t testing.TB, seed int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 32, 24))
	for i := range img.Pix {
		img.Pix[i] = byte(i*seed + seed)
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// stripDHT removes the Huffman tables, as many USB cameras send MJPEG.
func stripDHT(t *testing.T, b []byte) []byte {
	t.Helper()
	seg, ok := findSegment(b, 0xC4)
	if !ok || seg == nil {
		t.Fatal("encoder output has no DHT")
	}
	i := bytes.Index(b, seg)
	return append(append([]byte(nil), b[:i]...), b[i+len(seg):]...)
}

func TestWithHuffman(t *testing.T) {
	full := testJPEG(t, 3)
	bare := stripDHT(t, full)
	if _, err := jpeg.Decode(bytes.NewReader(bare)); err == nil {
		t.Fatal("Go decoded a JPEG without Huffman tables; test premise wrong")
	}
	want, err := jpeg.Decode(bytes.NewReader(full))
	if err != nil {
		t.Fatal(err)
	}
	got, err := jpeg.Decode(bytes.NewReader(withHuffman(bare)))
	if err != nil {
		t.Fatalf("decode with inserted tables: %v", err)
	}
	if !sameImage(got, want) {
		t.Error("image with inserted tables differs")
	}
	if !bytes.Equal(withHuffman(full), full) {
		t.Error("withHuffman changed a JPEG that has tables")
	}
	for _, junk := range [][]byte{nil, {0xFF}, {0xFF, 0xD8, 0xFF, 0xE0, 0x00}, []byte("not a jpeg")} {
		if !bytes.Equal(withHuffman(junk), junk) {
			t.Errorf("withHuffman(%q) changed junk", junk)
		}
	}
}

func sameImage(a, b image.Image) bool {
	if a.Bounds() != b.Bounds() {
		return false
	}
	r := a.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			if color.RGBAModel.Convert(a.At(x, y)) != color.RGBAModel.Convert(b.At(x, y)) {
				return false
			}
		}
	}
	return true
}

func TestSynthDeterministic(t *testing.T) {
	a := NewSynth(SynthOptions{Width: 160, Height: 120, FPS: 5, Seed: 7})
	b := NewSynth(SynthOptions{Width: 160, Height: 120, FPS: 5, Seed: 7})
	c := NewSynth(SynthOptions{Width: 160, Height: 120, FPS: 5, Seed: 8})
	differ := false
	for _, n := range []int{0, 1, 5, 50, 1000} {
		fa, fb := a.Render(n), b.Render(n)
		if !bytes.Equal(fa.Pix, fb.Pix) {
			t.Fatalf("frame %d differs between two synths with the same seed", n)
		}
		if !bytes.Equal(fa.Pix, c.Render(n).Pix) {
			differ = true
		}
	}
	if !differ {
		t.Error("seeds 7 and 8 render the same frames")
	}
	if bytes.Equal(a.Render(3).Pix, a.Render(4).Pix) {
		t.Error("consecutive frames are identical: nothing moves")
	}
}

func TestSynthObjectsMoveRight(t *testing.T) {
	s := NewSynth(SynthOptions{Width: 320, Height: 240, FPS: 10, Seed: 1})
	seen := map[int]int{} // object -> last x
	moves := 0
	for n := 0; n < 200; n++ {
		objs := s.Objects(n)
		if len(objs) == 0 {
			t.Fatalf("frame %d: empty belt", n)
		}
		for _, o := range objs {
			if x, ok := seen[o.Index]; ok {
				if o.Rect.Min.X <= x {
					t.Fatalf("frame %d: object %d went from x=%d to x=%d", n, o.Index, x, o.Rect.Min.X)
				}
				moves++
			}
			seen[o.Index] = o.Rect.Min.X
		}
	}
	if len(seen) < 5 || moves == 0 {
		t.Errorf("only %d objects over 200 frames", len(seen))
	}
	// Objects must not overlap each other on the belt.
	for n := 0; n < 200; n++ {
		objs := s.Objects(n)
		for i := range objs {
			for j := i + 1; j < len(objs); j++ {
				if objs[i].Rect.Overlaps(objs[j].Rect) {
					ri, rj := objs[i].Rect, objs[j].Rect
					if ri.Max.X > rj.Min.X && rj.Max.X > ri.Min.X {
						t.Fatalf("frame %d: objects %d and %d overlap: %v %v", n, objs[i].Index, objs[j].Index, ri, rj)
					}
				}
			}
		}
	}
}

func TestSynthSpritesFromPhotos(t *testing.T) {
	dir := modeltest.Path(t, "images")
	sprites, err := LoadSprites(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(sprites) < 4 {
		t.Fatalf("%d sprites", len(sprites))
	}
	s := NewSynth(SynthOptions{Width: 640, Height: 480, Seed: 3, Sprites: sprites})
	used := map[int]bool{}
	for n := 0; n < 300; n++ {
		for _, o := range s.Objects(n) {
			used[o.Sprite] = true
		}
	}
	if len(used) != len(sprites) {
		t.Errorf("300 frames show %d of %d sprites", len(used), len(sprites))
	}
	img := s.Render(10)
	o := s.Objects(10)[0]
	r := o.Rect.Intersect(img.Rect)
	c := color.RGBAModel.Convert(img.At((r.Min.X+r.Max.X)/2, (r.Min.Y+r.Max.Y)/2)).(color.RGBA)
	if c == (color.RGBA{96, 96, 92, 255}) {
		t.Error("object centre shows the belt")
	}
}

func TestSynthNextPacedAndClose(t *testing.T) {
	s := NewSynth(SynthOptions{Width: 64, Height: 48, FPS: 50, Seed: 1})
	ctx := context.Background()
	f0, err := s.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f1, err := s.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := f1.Time.Sub(f0.Time); d != 20*time.Millisecond {
		t.Errorf("frames %v apart, want 20ms", d)
	}
	if !bytes.Equal(f0.Image.(*image.RGBA).Pix, s.Render(0).Pix) {
		t.Error("first frame is not Render(0)")
	}
	s.Close()
	s.Close()
	if _, err := s.Next(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Next after Close = %v", err)
	}
}

func writePNG(t *testing.T, path string, c color.RGBA) {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	fill(img, img.Rect, c)
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestFiles(t *testing.T) {
	dir := t.TempDir()
	writePNG(t, filepath.Join(dir, "a.png"), color.RGBA{255, 0, 0, 255})
	writePNG(t, filepath.Join(dir, "b.png"), color.RGBA{0, 255, 0, 255})
	os.WriteFile(filepath.Join(dir, "c.jpg"), []byte("broken"), 0o600)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("ignored"), 0o600)

	ctx := context.Background()
	f, err := OpenFiles(dir, FilesOptions{FPS: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var reds []uint8
	for range 5 {
		fr, err := f.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		reds = append(reds, color.RGBAModel.Convert(fr.Image.At(0, 0)).(color.RGBA).R)
	}
	if fmt.Sprint(reds) != "[255 0 255 0 255]" {
		t.Errorf("looped frames' red = %v", reds)
	}
	if f.Skipped < 2 {
		t.Errorf("skipped %d broken files, want >= 2", f.Skipped)
	}

	once, err := OpenFiles(filepath.Join(dir, "a.png"), FilesOptions{FPS: 1000, Once: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := once.Next(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := once.Next(ctx); !errors.Is(err, io.EOF) {
		t.Errorf("second Next of a single file, once = %v, want EOF", err)
	}

	if _, err := OpenFiles(filepath.Join(dir, "missing"), FilesOptions{}); err == nil {
		t.Error("missing path accepted")
	}
	if _, err := OpenFiles(t.TempDir(), FilesOptions{}); err == nil {
		t.Error("empty folder accepted")
	}
}

// mjpegServer serves a multipart stream of frames; it ends each connection
// after perConn frames, so clients must reconnect.
type mjpegServer struct {
	frames  [][]byte
	perConn int
	conns   atomic.Int32
	fail    atomic.Bool // answer 503 while set
}

func (s *mjpegServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.conns.Add(1)
	if s.fail.Load() {
		http.Error(w, "camera busy", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "multipart/x-mixed-replace; boundary=--frame")
	for i := 0; i < s.perConn; i++ {
		f := s.frames[i%len(s.frames)]
		fmt.Fprintf(w, "--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n", len(f))
		w.Write(f)
		io.WriteString(w, "\r\n")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
			return
		case <-time.After(2 * time.Millisecond):
		}
	}
}

func TestMJPEG(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srv := &mjpegServer{frames: [][]byte{testJPEG(t, 1), testJPEG(t, 2)}, perConn: 3}
	hs := httptest.NewServer(srv)
	defer hs.Close()

	m := NewMJPEG(hs.URL, MJPEGOptions{Backoff: Backoff{Min: time.Millisecond, Max: 5 * time.Millisecond}})
	defer m.Close()
	if st := m.Status(); st.Up {
		t.Error("up before the first frame")
	}
	want0, _ := jpeg.Decode(bytes.NewReader(srv.frames[0]))
	for i := range 7 {
		f, err := m.Next(ctx)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if i == 0 && !sameImage(f.Image, want0) {
			t.Error("first frame differs from what was served")
		}
	}
	if n := srv.conns.Load(); n < 3 {
		t.Errorf("%d connections for 7 frames at 3 per connection", n)
	}
	if !m.Status().Up {
		t.Error("down after frames")
	}

	// The camera fails: Next keeps retrying and reports down until it is back.
	srv.fail.Store(true)
	got := make(chan error, 1)
	go func() {
		for {
			_, err := m.Next(ctx)
			if err != nil || !srv.fail.Load() {
				got <- err
				return
			}
		}
	}()
	testutil.WaitFor(t, "status down with 503", 5*time.Second, func() bool {
		st := m.Status()
		return !st.Up && strings.Contains(st.Err, "503")
	})
	srv.fail.Store(false)
	if err := <-got; err != nil {
		t.Fatalf("after recovery: %v", err)
	}
	if !m.Status().Up {
		t.Error("not up after recovery")
	}
}

func TestMJPEGCloseUnblocksNext(t *testing.T) {
	block := make(chan struct{})
	streaming := make(chan struct{}, 2)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "multipart/x-mixed-replace; boundary=b")
		w.(http.Flusher).Flush()
		streaming <- struct{}{}
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer hs.Close()
	defer close(block)
	m := NewMJPEG(hs.URL, MJPEGOptions{})
	done := make(chan error, 1)
	go func() {
		_, err := m.Next(context.Background())
		done <- err
	}()
	select { // Next is reading the stream
	case <-streaming:
	case err := <-done:
		t.Fatalf("Next returned before Close: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("Next never reached the server")
	}
	m.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Next = %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock Next")
	}

	// And a cancelled ctx unblocks it too.
	m2 := NewMJPEG(hs.URL, MJPEGOptions{})
	defer m2.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := m2.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Next with expiring ctx = %v", err)
	}
}

func TestPartReaderBadContentType(t *testing.T) {
	for _, ct := range []string{"", "image/jpeg", "multipart/x-mixed-replace", "multipart/x-mixed-replace; boundary=--", "text/html; boundary=x"} {
		if _, err := newPartReader(strings.NewReader(""), ct); err == nil {
			t.Errorf("content type %q accepted", ct)
		}
	}
}

func FuzzPartReader(f *testing.F) {
	j := testJPEG(f, 1)
	f.Add([]byte("--b\r\nContent-Type: image/jpeg\r\n\r\n" + string(j) + "\r\n--b\r\n"))
	f.Add([]byte("--b\r\n\r\nxx\r\n--b--"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, body []byte) {
		pr, err := newPartReader(bytes.NewReader(body), "multipart/x-mixed-replace;boundary=b")
		if err != nil {
			t.Fatal(err)
		}
		for range 4 {
			if _, err := pr.next(); err != nil {
				return
			}
		}
	})
}

// fakeDevice is a V4L2 camera at the hardware edge: it serves frames and can
// be unplugged.
type fakeDevice struct {
	cam *fakeCamera
}

type fakeCamera struct {
	mu        sync.Mutex
	frame     []byte
	format    string
	w, h      int
	unplugged bool
	opens     int
	open      int // devices currently open
}

func (c *fakeCamera) opener(cfg DeviceConfig) (Device, DeviceConfig, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.unplugged {
		return nil, cfg, fmt.Errorf("open %s: no such device", cfg.Path)
	}
	c.opens++
	c.open++
	g := cfg
	g.Format, g.Width, g.Height = c.format, c.w, c.h
	return &fakeDevice{cam: c}, g, nil
}

func (d *fakeDevice) ReadFrame(timeout time.Duration) ([]byte, error) {
	d.cam.mu.Lock()
	defer d.cam.mu.Unlock()
	if d.cam.unplugged {
		return nil, errors.New("read: no such device")
	}
	return append([]byte(nil), d.cam.frame...), nil
}

func (d *fakeDevice) Close() error {
	d.cam.mu.Lock()
	d.cam.open--
	d.cam.mu.Unlock()
	return nil
}

func (c *fakeCamera) setUnplugged(v bool) {
	c.mu.Lock()
	c.unplugged = v
	c.mu.Unlock()
}

func TestV4L2Formats(t *testing.T) {
	yuyv := make([]byte, 4*2*2)
	for i := 0; i < len(yuyv); i += 4 {
		copy(yuyv[i:], []byte{200, 128, 200, 128}) // light gray
	}
	tests := []struct {
		name   string
		format string
		frame  []byte
		w, h   int
		check  func(image.Image) bool
	}{
		{"yuyv", FormatYUYV, yuyv, 4, 2, func(img image.Image) bool {
			return img.Bounds().Dx() == 4 && color.RGBAModel.Convert(img.At(3, 1)) == color.RGBA{200, 200, 200, 255}
		}},
		{"mjpeg without huffman tables", FormatMJPEG, nil, 32, 24, func(img image.Image) bool {
			return img.Bounds().Dx() == 32
		}},
	}
	tests[1].frame = stripDHT(t, testJPEG(t, 5))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cam := &fakeCamera{frame: tt.frame, format: tt.format, w: tt.w, h: tt.h}
			v := NewV4L2(DeviceConfig{Path: "/dev/video7", Format: tt.format}, V4L2Options{Open: cam.opener})
			defer v.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			f, err := v.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(f.Image) {
				t.Errorf("bad image %T %v", f.Image, f.Image.Bounds())
			}
		})
	}
}

func TestV4L2Unplugged(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cam := &fakeCamera{frame: testJPEG(t, 1), format: FormatMJPEG, w: 32, h: 24}
	v := NewV4L2(DeviceConfig{Path: "/dev/video3", Format: FormatMJPEG},
		V4L2Options{Open: cam.opener, Backoff: Backoff{Min: time.Millisecond, Max: 4 * time.Millisecond}})
	if _, err := v.Next(ctx); err != nil {
		t.Fatal(err)
	}
	if !v.Status().Up {
		t.Fatal("not up after a frame")
	}

	cam.setUnplugged(true)
	done := make(chan error, 1)
	go func() {
		_, err := v.Next(ctx)
		done <- err
	}()
	// It has failed to read, dropped the device and failed to reopen.
	testutil.WaitFor(t, "status down naming the device", 5*time.Second, func() bool {
		st := v.Status()
		return !st.Up && strings.Contains(st.Err, "/dev/video3") && strings.Contains(st.Err, "open")
	})
	cam.setUnplugged(false)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !v.Status().Up {
		t.Error("not up after replug")
	}
	cam.mu.Lock()
	opens, open := cam.opens, cam.open
	cam.mu.Unlock()
	if opens != 2 || open != 1 {
		t.Errorf("opened %d times with %d open, want 2 and 1", opens, open)
	}
	v.Close()
	v.Close()
	cam.mu.Lock()
	defer cam.mu.Unlock()
	if cam.open != 0 {
		t.Errorf("%d devices left open after Close", cam.open)
	}
}

func TestV4L2CtxCancelWhileDown(t *testing.T) {
	cam := &fakeCamera{unplugged: true}
	v := NewV4L2(DeviceConfig{Path: "/dev/video0", Format: FormatMJPEG},
		V4L2Options{Open: cam.opener, Backoff: Backoff{Min: time.Hour, Max: time.Hour}})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := v.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Next = %v", err)
	}
	if st := v.Status(); st.Up || !strings.Contains(st.Err, "no such device") {
		t.Errorf("status %+v", st)
	}
}

func TestBackoff(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: time.Second}
	for n, want := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		want *= time.Millisecond
		for range 20 {
			d := b.delay(n)
			if d > want || d < want*3/4 {
				t.Fatalf("delay(%d) = %v, want within [%v, %v]", n, d, want*3/4, want)
			}
		}
	}
}

// silentDevice opens fine but never delivers a frame, like a camera whose
// USB link stalled.
type silentDevice struct{ closed *atomic.Int32 }

func (d silentDevice) ReadFrame(timeout time.Duration) ([]byte, error) {
	time.Sleep(time.Millisecond)
	return nil, ErrFrameTimeout
}

func (d silentDevice) Close() error { d.closed.Add(1); return nil }

func TestV4L2StallCountsAsDown(t *testing.T) {
	var opens, closed atomic.Int32
	open := func(cfg DeviceConfig) (Device, DeviceConfig, error) {
		opens.Add(1)
		return silentDevice{&closed}, cfg, nil
	}
	v := NewV4L2(DeviceConfig{Path: "/dev/video5", Format: FormatYUYV, Width: 4, Height: 2},
		V4L2Options{Open: open, Stall: 30 * time.Millisecond, Backoff: Backoff{Min: time.Millisecond, Max: time.Millisecond}})
	defer v.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := v.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next = %v", err)
	}
	if st := v.Status(); st.Up || !strings.Contains(st.Err, "no frame for") {
		t.Errorf("status %+v, want down for a stall", st)
	}
	if opens.Load() < 2 || closed.Load() < 1 {
		t.Errorf("stalled device opened %d and closed %d times; want it reopened", opens.Load(), closed.Load())
	}
}

// TestSynthDropsOriginalSprites checks that a Synth keeps only its scaled
// sprites, not the full-size pictures it was given.
func TestSynthDropsOriginalSprites(t *testing.T) {
	freed := make(chan struct{})
	orig := image.NewRGBA(image.Rect(0, 0, 800, 600))
	runtime.SetFinalizer(orig, func(*image.RGBA) { close(freed) })
	s := NewSynth(SynthOptions{Seed: 1, Sprites: []image.Image{orig}})
	orig = nil
	testutil.WaitFor(t, "the full-size sprite to be collected", 10*time.Second, func() bool {
		runtime.GC()
		select {
		case <-freed:
			return true
		default:
			return false
		}
	})
	if b := s.Render(0).Bounds(); b.Dx() != 640 {
		t.Errorf("frame is %v, want 640 wide", b)
	}
}
