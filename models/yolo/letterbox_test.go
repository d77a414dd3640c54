package yolo

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"image"
	"image/color"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"edgefleet/models"
	"edgefleet/models/imageio"
	"edgefleet/models/modeltest"
	"edgefleet/models/yolo/yolotest"
)

var imageCache sync.Map // image file name → image.Image

// testImage loads a shared test photo once per test binary.
func testImage(t testing.TB, name string) image.Image {
	t.Helper()
	if img, ok := imageCache.Load(name); ok {
		return img.(image.Image)
	}
	img, err := imageio.Load(modeltest.Path(t, "images", name))
	if err != nil {
		t.Fatal(err)
	}
	imageCache.Store(name, img)
	return img
}

func refInputSpec(t *testing.T, r *yolotest.Reference) InputSpec {
	t.Helper()
	ti, err := yolotest.TensorInfo("input", r.InputDType, r.InputShape, r.InputQuantScaleZP)
	if err != nil {
		t.Fatal(err)
	}
	s, err := InputSpecOf(ti)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestLetterboxReferenceHashes reproduces the exact input tensor bytes the
// reference harness fed to TFLite, for every reference pair.
func TestLetterboxReferenceHashes(t *testing.T) {
	for _, p := range modeltest.Glob(t, "reference/*.json") {
		ref, err := yolotest.ReadReference(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(ref.Pair(), func(t *testing.T) {
			t.Parallel()
			img := testImage(t, ref.Image)
			workerCounts := []int{1}
			if ref.Image == "chelsea.png" {
				workerCounts = append(workerCounts, 3) // rows split over goroutines
			}
			for _, workers := range workerCounts {
				spec := refInputSpec(t, ref)
				l, err := NewLetterboxer(spec)
				if err != nil {
					t.Fatal(err)
				}
				l.Workers = workers
				dst := make([]byte, spec.ImageBytes())
				g, err := l.Letterbox(img, dst)
				if err != nil {
					t.Fatal(err)
				}
				lb := ref.Letterbox
				if g.NewW != lb.ResizedW || g.NewH != lb.ResizedH || g.Left != lb.PadLeft || g.Top != lb.PadTop || g.Gain != lb.Gain {
					t.Errorf("geometry %+v, reference %+v", g, lb)
				}
				sum := sha256.Sum256(dst)
				if got := hex.EncodeToString(sum[:]); got != ref.InputTensorSHA256 {
					t.Errorf("workers %d: input sha256 %s, reference %s", workers, got, ref.InputTensorSHA256)
				}
			}
		})
	}
}

// TestLetterboxNativeInputs compares byte by byte with the input tensors the
// native runtime was fed, to say where a difference is.
func TestLetterboxNativeInputs(t *testing.T) {
	for _, p := range modeltest.Glob(t, "tensors/native/*.input.bin") {
		pair := strings.TrimSuffix(filepath.Base(p), ".input.bin")
		t.Run(pair, func(t *testing.T) {
			ref, err := yolotest.ReadReference(modeltest.Path(t, "reference", pair+".json"))
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			img := testImage(t, ref.Image)
			spec := refInputSpec(t, ref)
			l, _ := NewLetterboxer(spec)
			got := make([]byte, spec.ImageBytes())
			if _, err := l.Letterbox(img, got); err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("%d bytes, want %d", len(got), len(want))
			}
			bad := 0
			for i := range got {
				if got[i] != want[i] {
					if bad < 5 {
						e := spec.Type.Size()
						px := i / e / 3
						t.Errorf("byte %d (x %d y %d c %d): %d, want %d", i, px%spec.W, px/spec.W, i/e%3, got[i], want[i])
					}
					bad++
				}
			}
			if bad > 0 {
				t.Errorf("%d of %d bytes differ", bad, len(got))
			}
		})
	}
}

// naive is the letterbox written the slow, obvious way, for every layout and type.
func naive(img image.Image, s InputSpec) []byte {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	g, _ := NewGeometry(w, h, s.W, s.H)
	px := func(x, y, c int) float64 {
		cc := color.NRGBAModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA)
		return float64([]uint8{cc.R, cc.G, cc.B}[c])
	}
	idx := func(src, dst, d int) (int, int, float64) {
		// float64() conversions stop arm64 from fusing multiply-adds.
		f := float64((float64(d)+0.5)*(float64(src)/float64(dst))) - 0.5
		i0 := int(math.Floor(f))
		fr := f - math.Floor(f)
		if i0 < 0 {
			return 0, 0, 0
		}
		if i0 >= src-1 {
			return src - 1, src - 1, 0
		}
		return i0, i0 + 1, fr
	}
	enc := func(v int) []byte {
		switch s.Type {
		case models.Float32:
			f := math.Float32bits(float32(v) / 255)
			return []byte{byte(f), byte(f >> 8), byte(f >> 16), byte(f >> 24)}
		case models.Int8:
			q := int(math.RoundToEven(float64(v)/255/s.Scale)) + s.ZeroPoint
			return []byte{byte(int8(min(max(q, -128), 127)))}
		default:
			q := int(math.RoundToEven(float64(v)/255/s.Scale)) + s.ZeroPoint
			return []byte{byte(min(max(q, 0), 255))}
		}
	}
	e := s.Type.Size()
	out := make([]byte, s.ImageBytes())
	for y := 0; y < s.H; y++ {
		for x := 0; x < s.W; x++ {
			for c := 0; c < 3; c++ {
				v := PadValue
				dx, dy := x-g.Left, y-g.Top
				if dx >= 0 && dy >= 0 && dx < g.NewW && dy < g.NewH {
					x0, x1, fx := idx(w, g.NewW, dx)
					y0, y1, fy := idx(h, g.NewH, dy)
					top := float64(px(x0, y0, c)*(1-fx)) + float64(px(x1, y0, c)*fx)
					bot := float64(px(x0, y1, c)*(1-fx)) + float64(px(x1, y1, c)*fx)
					v = int(math.Round(float64(top*(1-fy)) + float64(bot*fy)))
				}
				var o int
				if s.Layout == NHWC {
					o = ((y*s.W+x)*3 + c) * e
				} else {
					o = ((c*s.H+y)*s.W + x) * e
				}
				copy(out[o:], enc(v))
			}
		}
	}
	return out
}

func randomImages(r *rand.Rand, w, h int) []image.Image {
	rgba := image.NewRGBA(image.Rect(3, 5, 3+w, 5+h))
	for i := range rgba.Pix {
		rgba.Pix[i] = uint8(r.IntN(256))
		if i%4 == 3 {
			rgba.Pix[i] = 255
		}
	}
	nrgba := image.NewNRGBA(image.Rect(0, 0, w, h))
	copy(nrgba.Pix, rgba.Pix)
	gray := image.NewGray(image.Rect(0, 0, w, h))
	for i := range gray.Pix {
		gray.Pix[i] = uint8(r.IntN(256))
	}
	ycc := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	for _, p := range [][]uint8{ycc.Y, ycc.Cb, ycc.Cr} {
		for i := range p {
			p[i] = uint8(r.IntN(256))
		}
	}
	pal := image.NewPaletted(image.Rect(0, 0, w, h), color.Palette{color.RGBA{10, 20, 30, 255}, color.RGBA{200, 100, 0, 255}, color.White})
	for i := range pal.Pix {
		pal.Pix[i] = uint8(r.IntN(3))
	}
	return []image.Image{rgba, nrgba, gray, ycc, pal}
}

// TestLetterboxMatchesNaive checks every fast path, layout and type against
// the obvious implementation on random images, upscaled and downscaled.
func TestLetterboxMatchesNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	specs := []InputSpec{
		{W: 32, H: 32, Layout: NHWC, Type: models.Int8, Scale: 1.0 / 255, ZeroPoint: -128},
		{W: 40, H: 24, Layout: NCHW, Type: models.UInt8, Scale: 0.02, ZeroPoint: 3},
		{W: 24, H: 40, Layout: NHWC, Type: models.Float32},
		{W: 33, H: 31, Layout: NCHW, Type: models.Float32},
	}
	sizes := [][2]int{{17, 9}, {9, 17}, {64, 50}, {1, 1}, {32, 32}, {100, 7}}
	for _, s := range specs {
		for _, sz := range sizes {
			for _, img := range randomImages(r, sz[0], sz[1]) {
				want := naive(img, s)
				for _, workers := range []int{1, 2, 5} {
					l, err := NewLetterboxer(s)
					if err != nil {
						t.Fatal(err)
					}
					l.Workers = workers
					got := make([]byte, s.ImageBytes())
					if _, err := l.Letterbox(img, got); err != nil {
						t.Fatal(err)
					}
					// Second call reuses the tables and must give the same bytes.
					if _, err := l.Letterbox(img, got); err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, want) {
						t.Fatalf("%v %s %v %T workers %d: differs from naive", s.Layout, s.Type, sz, img, workers)
					}
				}
			}
		}
	}
}

// TestLetterboxNewImageSameSize: row caches must not leak from one image to
// the next (a one-pixel-tall image reads the same source row everywhere).
func TestLetterboxNewImageSameSize(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	spec := InputSpec{W: 32, H: 32, Layout: NHWC, Type: models.UInt8, Scale: 1.0 / 255}
	for _, sz := range [][2]int{{40, 1}, {1, 40}, {20, 20}} {
		l, err := NewLetterboxer(spec)
		if err != nil {
			t.Fatal(err)
		}
		a := randomImages(r, sz[0], sz[1])[0]
		b := randomImages(r, sz[0], sz[1])[0]
		got := make([]byte, spec.ImageBytes())
		l.Letterbox(a, got)
		if _, err := l.Letterbox(b, got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, naive(b, spec)) {
			t.Errorf("%v: second image differs from naive", sz)
		}
	}
}

func TestYCbCrToRGB(t *testing.T) {
	for y := 0; y < 256; y++ {
		for cb := 0; cb < 256; cb++ {
			for cr := 0; cr < 256; cr++ {
				r, g, b := ycbcrToRGB(uint8(y), uint8(cb), uint8(cr))
				wr, wg, wb := color.YCbCrToRGB(uint8(y), uint8(cb), uint8(cr))
				if r != wr || g != wg || b != wb {
					t.Fatalf("ycbcrToRGB(%d,%d,%d) = %d,%d,%d, want %d,%d,%d", y, cb, cr, r, g, b, wr, wg, wb)
				}
			}
		}
	}
}

func TestRound255(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	vals := []float64{0, 0.49999999999999994, 0.5, 1.5, 2.5, 254.5, 255, 127.49999999999999, math.Nextafter(0.5, 0), math.Nextafter(3.5, 0)}
	for i := 0; i < 100000; i++ {
		vals = append(vals, r.Float64()*255, float64(r.IntN(255))+0.5)
	}
	for _, v := range vals {
		if got, want := round255(v), uint8(math.Round(v)); got != want {
			t.Fatalf("round255(%v) = %d, want %d", v, got, want)
		}
	}
}

func TestGeometryScaleBox(t *testing.T) {
	tests := []struct {
		name       string
		sw, sh     int
		dw, dh     int
		newW, newH int
		left, top  int
		in, want   [4]float32
	}{
		{"chelsea", 451, 300, 640, 640, 640, 426, 0, 107, [4]float32{0, 107, 640, 533}, [4]float32{0, 0, 451, 300}},
		{"portrait", 300, 600, 320, 320, 160, 320, 80, 0, [4]float32{80, 0, 240, 320}, [4]float32{0, 0, 300, 600}},
		{"clip", 100, 100, 64, 64, 64, 64, 0, 0, [4]float32{-5, -5, 70, 70}, [4]float32{0, 0, 100, 100}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := NewGeometry(tt.sw, tt.sh, tt.dw, tt.dh)
			if err != nil {
				t.Fatal(err)
			}
			if g.NewW != tt.newW || g.NewH != tt.newH || g.Left != tt.left || g.Top != tt.top {
				t.Fatalf("geometry %+v", g)
			}
			got := g.ScaleBox(tt.in)
			for i := range got {
				if math.Abs(float64(got[i]-tt.want[i])) > 0.01 {
					t.Fatalf("ScaleBox(%v) = %v, want %v", tt.in, got, tt.want)
				}
			}
		})
	}
	if _, err := NewGeometry(0, 10, 640, 640); err == nil {
		t.Error("empty image accepted")
	}
}

func TestInputSpecOf(t *testing.T) {
	q := &models.Quant{Scale: []float32{0.5}, ZeroPoint: []int64{-3}}
	tests := []struct {
		name string
		ti   models.TensorInfo
		want InputSpec
		err  bool
	}{
		{"nhwc int8", models.TensorInfo{Type: models.Int8, Shape: []int{1, 320, 256, 3}, Quant: q}, InputSpec{W: 256, H: 320, Layout: NHWC, Type: models.Int8, Scale: 0.5, ZeroPoint: -3}, false},
		{"nchw float", models.TensorInfo{Type: models.Float32, Shape: []int{1, 3, 64, 32}}, InputSpec{W: 32, H: 64, Layout: NCHW, Type: models.Float32}, false},
		{"rank 3", models.TensorInfo{Type: models.Float32, Shape: []int{640, 640, 3}}, InputSpec{}, true},
		{"4 channels", models.TensorInfo{Type: models.Float32, Shape: []int{1, 64, 64, 4}}, InputSpec{}, true},
		{"int8 without quant", models.TensorInfo{Type: models.Int8, Shape: []int{1, 64, 64, 3}}, InputSpec{}, true},
		{"int32", models.TensorInfo{Type: models.Int32, Shape: []int{1, 64, 64, 3}}, InputSpec{}, true},
		{"zero size", models.TensorInfo{Type: models.Float32, Shape: []int{1, 0, 64, 3}}, InputSpec{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := InputSpecOf(tt.ti)
			if (err != nil) != tt.err {
				t.Fatalf("err = %v, want error %v", err, tt.err)
			}
			if err == nil && got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
