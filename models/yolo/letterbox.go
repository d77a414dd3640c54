package yolo

import (
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"math"
	"sync"

	"edgefleet/models"
)

// PadValue is the grey Ultralytics pads letterboxed images with.
const PadValue = 114

// Geometry says where a letterboxed image lands in the model input, and maps
// boxes back. It follows Ultralytics' LetterBox (auto=False, center=True) and
// scale_boxes.
type Geometry struct {
	SrcW, SrcH int     // original image size
	DstW, DstH int     // model input size
	NewW, NewH int     // size of the resized image inside the input
	Left, Top  int     // padding before the resized image
	Gain       float64 // resize ratio, min(DstH/SrcH, DstW/SrcW)
}

// NewGeometry computes the letterbox of a srcW×srcH image into dstW×dstH.
func NewGeometry(srcW, srcH, dstW, dstH int) (Geometry, error) {
	if srcW <= 0 || srcH <= 0 || dstW <= 0 || dstH <= 0 {
		return Geometry{}, fmt.Errorf("yolo: letterbox %dx%d into %dx%d: empty size", srcW, srcH, dstW, dstH)
	}
	r := math.Min(float64(dstH)/float64(srcH), float64(dstW)/float64(srcW))
	g := Geometry{SrcW: srcW, SrcH: srcH, DstW: dstW, DstH: dstH, Gain: r}
	g.NewW = int(math.RoundToEven(float64(srcW) * r))
	g.NewH = int(math.RoundToEven(float64(srcH) * r))
	g.NewW = min(max(g.NewW, 1), dstW)
	g.NewH = min(max(g.NewH, 1), dstH)
	dw := float64(dstW-g.NewW) / 2
	dh := float64(dstH-g.NewH) / 2
	g.Top = int(math.RoundToEven(dh - 0.1))
	g.Left = int(math.RoundToEven(dw - 0.1))
	return g, nil
}

// ScaleBox maps a box x1,y1,x2,y2 in model-input pixels back to the original
// image and clips it to the image, as Ultralytics' scale_boxes does.
func (g Geometry) ScaleBox(b [4]float32) [4]float32 {
	padX := math.RoundToEven((float64(g.DstW)-float64(g.SrcW)*g.Gain)/2 - 0.1)
	padY := math.RoundToEven((float64(g.DstH)-float64(g.SrcH)*g.Gain)/2 - 0.1)
	var out [4]float32
	for i, v := range b {
		pad, lim := padX, float64(g.SrcW)
		if i%2 == 1 {
			pad, lim = padY, float64(g.SrcH)
		}
		x := (float64(v) - pad) / g.Gain
		out[i] = float32(math.Min(math.Max(x, 0), lim))
	}
	return out
}

// Layout is the order of an image tensor's dimensions.
type Layout uint8

// Image tensor layouts.
const (
	NHWC Layout = iota
	NCHW
)

func (l Layout) String() string {
	if l == NCHW {
		return "NCHW"
	}
	return "NHWC"
}

// InputSpec describes a model's image input tensor.
type InputSpec struct {
	W, H   int
	Layout Layout
	Type   models.DType // Float32, Int8 or UInt8
	// Scale and ZeroPoint quantize int8/uint8 inputs: q = round(v/255/Scale) + ZeroPoint.
	Scale     float64
	ZeroPoint int
}

// ImageBytes is the size in bytes of one image in the tensor.
func (s InputSpec) ImageBytes() int { return s.W * s.H * 3 * s.Type.Size() }

// ErrInput is returned (wrapped) for an input tensor this package cannot fill.
var ErrInput = errors.New("unsupported input tensor")

// InputSpecOf reads the image geometry and element type from an input tensor
// of shape [N,H,W,3] or [N,3,H,W].
func InputSpecOf(t models.TensorInfo) (InputSpec, error) {
	var s InputSpec
	if len(t.Shape) != 4 {
		return s, fmt.Errorf("yolo: input %q shape %v: %w (want rank 4)", t.Name, t.Shape, ErrInput)
	}
	switch {
	case t.Shape[3] == 3:
		s.Layout, s.H, s.W = NHWC, t.Shape[1], t.Shape[2]
	case t.Shape[1] == 3:
		s.Layout, s.H, s.W = NCHW, t.Shape[2], t.Shape[3]
	default:
		return s, fmt.Errorf("yolo: input %q shape %v: %w (want 3 channels)", t.Name, t.Shape, ErrInput)
	}
	if s.W <= 0 || s.H <= 0 || s.W > 1<<14 || s.H > 1<<14 {
		return s, fmt.Errorf("yolo: input %q shape %v: %w (bad size)", t.Name, t.Shape, ErrInput)
	}
	s.Type = t.Type
	switch t.Type {
	case models.Float32:
	case models.Int8, models.UInt8:
		if t.Quant == nil || len(t.Quant.Scale) == 0 || !(t.Quant.Scale[0] > 0) || math.IsInf(float64(t.Quant.Scale[0]), 0) {
			return s, fmt.Errorf("yolo: input %q: %w (%v without quantization)", t.Name, ErrInput, t.Type)
		}
		s.Scale = float64(t.Quant.Scale[0])
		if len(t.Quant.ZeroPoint) > 0 {
			s.ZeroPoint = int(t.Quant.ZeroPoint[0])
		}
	default:
		return s, fmt.Errorf("yolo: input %q: %w (element type %v)", t.Name, ErrInput, t.Type)
	}
	return s, nil
}

// Letterboxer writes letterboxed images into input tensors of one spec. It
// keeps its resize tables between calls with the same image size, so reuse it
// across frames. A Letterboxer is not safe for concurrent use.
type Letterboxer struct {
	spec InputSpec
	// Workers splits the rows over this many goroutines; 0 or 1 means the
	// calling goroutine only.
	Workers int

	lut [256][4]byte // encoded element for each pixel value 0..255
	esz int

	geo  Geometry
	xs   []tap // per resized column
	ys   []tap // per resized row
	cols []int // source columns the resize reads, ascending
	// noShare is set when no two resized rows read the same source row
	// (downscales by 2 or more), so rows are resized in one fused pass.
	noShare bool
	bufs    []*rowBufs
}

// tap is one output coordinate of the bilinear resize: source indices and
// weights, computed as cv2.INTER_LINEAR does (half-pixel centres, clamped).
type tap struct {
	i0, i1 int
	w0, w1 float64
}

type rowBufs struct {
	top, bot       []float64
	topRow, botRow int
	rgb0, rgb1     []uint8 // converted source rows for non-RGB images
}

// NewLetterboxer prepares a Letterboxer for the input spec.
func NewLetterboxer(spec InputSpec) (*Letterboxer, error) {
	l := &Letterboxer{spec: spec, esz: spec.Type.Size()}
	for v := 0; v < 256; v++ {
		switch spec.Type {
		case models.Float32:
			binary.LittleEndian.PutUint32(l.lut[v][:], math.Float32bits(float32(v)/255))
		case models.Int8:
			l.lut[v][0] = byte(int8(quantize(v, spec, -128, 127)))
		case models.UInt8:
			l.lut[v][0] = byte(quantize(v, spec, 0, 255))
		default:
			return nil, fmt.Errorf("yolo: letterbox: %w (element type %v)", ErrInput, spec.Type)
		}
	}
	return l, nil
}

func quantize(v int, s InputSpec, lo, hi int) int {
	q := int(math.RoundToEven(float64(v)/255/s.Scale)) + s.ZeroPoint
	return min(max(q, lo), hi)
}

// Spec is the input spec the Letterboxer fills.
func (l *Letterboxer) Spec() InputSpec { return l.spec }

func taps(src, dst int) []tap {
	t := make([]tap, dst)
	scale := float64(src) / float64(dst)
	for d := range t {
		// The conversion keeps arm64 from fusing the multiply and subtract
		// (the spec allows fusion without it), so every platform gets the
		// same taps.
		f := float64((float64(d)+0.5)*scale) - 0.5
		fl := math.Floor(f)
		w := f - fl
		i0 := int(fl)
		i1 := i0 + 1
		if i0 < 0 {
			i0, i1, w = 0, 0, 0
		}
		if i0 >= src-1 {
			i0 = src - 1
			i1 = src - 1
		}
		if i1 >= src {
			i1 = src - 1
		}
		t[d] = tap{i0: i0, i1: i1, w0: 1 - w, w1: w}
	}
	return t
}

func (l *Letterboxer) prepare(w, h int) error {
	if l.geo.SrcW == w && l.geo.SrcH == h && l.xs != nil {
		return nil
	}
	g, err := NewGeometry(w, h, l.spec.W, l.spec.H)
	if err != nil {
		return err
	}
	l.geo = g
	l.xs = taps(w, g.NewW)
	l.ys = taps(h, g.NewH)
	seen := make([]bool, w)
	for _, t := range l.xs {
		seen[t.i0] = true
		if t.w1 != 0 {
			seen[t.i1] = true
		}
	}
	l.noShare = true
	for y := 1; y < len(l.ys); y++ {
		if l.ys[y].i0 <= l.ys[y-1].i1 {
			l.noShare = false
		}
	}
	l.cols = l.cols[:0]
	for x, s := range seen {
		if s {
			l.cols = append(l.cols, x)
		}
	}
	l.bufs = nil
	return nil
}

// Letterbox resizes img into dst, the bytes of one image in the input tensor
// (Spec().ImageBytes() long), and returns the geometry used.
func (l *Letterboxer) Letterbox(img image.Image, dst []byte) (Geometry, error) {
	if img == nil {
		return Geometry{}, errors.New("yolo: letterbox: nil image")
	}
	if len(dst) != l.spec.ImageBytes() {
		return Geometry{}, fmt.Errorf("yolo: letterbox: destination holds %d bytes, want %d", len(dst), l.spec.ImageBytes())
	}
	b := img.Bounds()
	if err := l.prepare(b.Dx(), b.Dy()); err != nil {
		return Geometry{}, err
	}
	src := sourceOf(img)
	workers := max(l.Workers, 1)
	workers = min(workers, l.geo.NewH)
	for len(l.bufs) < workers {
		n := l.geo.NewW * 3
		l.bufs = append(l.bufs, &rowBufs{
			top: make([]float64, n), bot: make([]float64, n), topRow: -1, botRow: -1,
		})
	}
	for _, rb := range l.bufs {
		rb.topRow, rb.botRow = -1, -1 // rows cached from another image
	}
	l.pad(dst)
	if workers == 1 {
		l.rows(src, l.bufs[0], dst, 0, l.geo.NewH)
		return l.geo, nil
	}
	var wg sync.WaitGroup
	per := (l.geo.NewH + workers - 1) / workers
	for w := 0; w < workers; w++ {
		y0, y1 := w*per, min((w+1)*per, l.geo.NewH)
		if y0 >= y1 {
			break
		}
		wg.Add(1)
		go func(rb *rowBufs) {
			defer wg.Done()
			l.rows(src, rb, dst, y0, y1)
		}(l.bufs[w])
	}
	wg.Wait()
	return l.geo, nil
}

// pad fills everything outside the resized image with PadValue.
func (l *Letterboxer) pad(dst []byte) {
	g, s, e := l.geo, l.spec, l.esz
	p := l.lut[PadValue][:e]
	fill := func(b []byte) {
		if len(b) == 0 {
			return
		}
		copy(b, p)
		for n := e; n < len(b); n *= 2 {
			copy(b[n:], b[:n])
		}
	}
	if s.Layout == NHWC {
		row := s.W * 3 * e
		fill(dst[:g.Top*row])
		fill(dst[(g.Top+g.NewH)*row:])
		for y := g.Top; y < g.Top+g.NewH; y++ {
			r := dst[y*row : (y+1)*row]
			fill(r[:g.Left*3*e])
			fill(r[(g.Left+g.NewW)*3*e:])
		}
		return
	}
	plane := s.W * s.H * e
	row := s.W * e
	for c := 0; c < 3; c++ {
		pl := dst[c*plane : (c+1)*plane]
		fill(pl[:g.Top*row])
		fill(pl[(g.Top+g.NewH)*row:])
		for y := g.Top; y < g.Top+g.NewH; y++ {
			r := pl[y*row : (y+1)*row]
			fill(r[:g.Left*e])
			fill(r[(g.Left+g.NewW)*e:])
		}
	}
}

// source gives rows of 8-bit pixels: pix[x*ps+co[c]] is channel c of column x.
type source struct {
	pix    []uint8
	stride int
	ps     int
	co     [3]int
	// convert, when set, fills buf (3 bytes per pixel) with row y at the
	// given columns instead of reading pix.
	convert func(y int, cols []int, buf []uint8)
}

func (s *source) row(y int, cols []int, buf *[]uint8, w int) ([]uint8, int, [3]int) {
	if s.convert == nil {
		return s.pix[y*s.stride:], s.ps, s.co
	}
	if len(*buf) < w*3 {
		*buf = make([]uint8, w*3)
	}
	s.convert(y, cols, *buf)
	return *buf, 3, [3]int{0, 1, 2}
}

func sourceOf(img image.Image) *source {
	b := img.Bounds()
	switch m := img.(type) {
	case *image.RGBA:
		return &source{pix: m.Pix[m.PixOffset(b.Min.X, b.Min.Y):], stride: m.Stride, ps: 4, co: [3]int{0, 1, 2}}
	case *image.NRGBA:
		return &source{pix: m.Pix[m.PixOffset(b.Min.X, b.Min.Y):], stride: m.Stride, ps: 4, co: [3]int{0, 1, 2}}
	case *image.Gray:
		return &source{pix: m.Pix[m.PixOffset(b.Min.X, b.Min.Y):], stride: m.Stride, ps: 1}
	case *image.YCbCr:
		// Offsets into the planes are a row part plus a column part for
		// every subsampling ratio; tabulate the column parts once.
		y0, c0 := m.YOffset(b.Min.X, b.Min.Y), m.COffset(b.Min.X, b.Min.Y)
		colY := make([]int, b.Dx())
		colC := make([]int, b.Dx())
		for x := range colY {
			colY[x] = m.YOffset(b.Min.X+x, b.Min.Y) - y0
			colC[x] = m.COffset(b.Min.X+x, b.Min.Y) - c0
		}
		return &source{convert: func(y int, cols []int, buf []uint8) {
			yr, cr := m.YOffset(b.Min.X, b.Min.Y+y), m.COffset(b.Min.X, b.Min.Y+y)
			for _, x := range cols {
				ci := cr + colC[x]
				r, g, bl := ycbcrToRGB(m.Y[yr+colY[x]], m.Cb[ci], m.Cr[ci])
				buf[x*3], buf[x*3+1], buf[x*3+2] = r, g, bl
			}
		}}
	}
	return &source{convert: func(y int, cols []int, buf []uint8) {
		for _, x := range cols {
			c := color.NRGBAModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA)
			buf[x*3], buf[x*3+1], buf[x*3+2] = c.R, c.G, c.B
		}
	}}
}

// ycbcrToRGB is color.YCbCrToRGB (JFIF full-range BT.601, 16.16 fixed
// point) with branch-free clamping, which camera noise would otherwise make
// mispredict. TestYCbCrToRGB compares all 2^24 inputs.
func ycbcrToRGB(y, cb, cr uint8) (uint8, uint8, uint8) {
	yy := int32(y) * 0x10101
	cb1 := int32(cb) - 128
	cr1 := int32(cr) - 128
	r := yy + 91881*cr1
	g := yy - 22554*cb1 - 46802*cr1
	b := yy + 116130*cb1
	return uint8(min(max(r, 0), 0xffffff) >> 16), uint8(min(max(g, 0), 0xffffff) >> 16), uint8(min(max(b, 0), 0xffffff) >> 16)
}

// horizontal resizes source row y into out (3 float64 per resized column).
// The conversions keep each product rounded on its own (no FMA), as the
// reference does.
func (l *Letterboxer) horizontal(src *source, y int, conv *[]uint8, out []float64) {
	pix, ps, co := src.row(y, l.cols, conv, l.geo.SrcW)
	out = out[:len(l.xs)*3]
	if ps == 4 && co == [3]int{0, 1, 2} {
		pix = pix[:l.geo.SrcW*4]
		for i, t := range l.xs {
			a := pix[t.i0*4 : t.i0*4+3 : t.i0*4+3]
			o := out[i*3 : i*3+3 : i*3+3]
			if t.w1 == 0 {
				// a*1 + b*0 is exactly a.
				o[0], o[1], o[2] = u8f[a[0]], u8f[a[1]], u8f[a[2]]
				continue
			}
			b := pix[t.i1*4 : t.i1*4+3 : t.i1*4+3]
			w0, w1 := t.w0, t.w1
			o[0] = float64(u8f[a[0]]*w0) + float64(u8f[b[0]]*w1)
			o[1] = float64(u8f[a[1]]*w0) + float64(u8f[b[1]]*w1)
			o[2] = float64(u8f[a[2]]*w0) + float64(u8f[b[2]]*w1)
		}
		return
	}
	c0, c1, c2 := co[0], co[1], co[2]
	for i, t := range l.xs {
		a := pix[t.i0*ps:]
		b := pix[t.i1*ps:]
		o := out[i*3 : i*3+3 : i*3+3]
		o[0] = float64(u8f[a[c0]]*t.w0) + float64(u8f[b[c0]]*t.w1)
		o[1] = float64(u8f[a[c1]]*t.w0) + float64(u8f[b[c1]]*t.w1)
		o[2] = float64(u8f[a[c2]]*t.w0) + float64(u8f[b[c2]]*t.w1)
	}
}

// u8f converts bytes to float64 by lookup, cheaper than the conversion instruction.
var u8f = func() (t [256]float64) {
	for i := range t {
		t[i] = float64(i)
	}
	return t
}()

// rows writes resized rows [y0,y1) into dst.
func (l *Letterboxer) rows(src *source, rb *rowBufs, dst []byte, y0, y1 int) {
	g, s, e := l.geo, l.spec, l.esz
	n := g.NewW * 3
	fused := l.noShare && src.convert == nil && src.ps == 4 && src.co == [3]int{0, 1, 2} && s.Layout == NHWC && e == 1
	for y := y0; y < y1; y++ {
		t := l.ys[y]
		if fused {
			o := dst[((g.Top+y)*s.W+g.Left)*3:]
			l.fusedRow(src.pix[t.i0*src.stride:], src.pix[t.i1*src.stride:], t.w0, t.w1, o[:n])
			continue
		}
		// Reuse the horizontal pass of rows the previous output row read.
		if rb.topRow != t.i0 {
			if rb.botRow == t.i0 {
				rb.top, rb.bot = rb.bot, rb.top
				rb.topRow, rb.botRow = rb.botRow, -1
				rb.rgb0, rb.rgb1 = rb.rgb1, rb.rgb0
			} else {
				l.horizontal(src, t.i0, &rb.rgb0, rb.top)
				rb.topRow = t.i0
			}
		}
		oy := g.Top + y
		if t.w1 == 0 {
			// top*1 + bot*0 is exactly top: the bottom row is not needed.
			l.store(dst, oy, rb.top[:n])
			continue
		}
		if rb.botRow != t.i1 {
			l.horizontal(src, t.i1, &rb.rgb1, rb.bot)
			rb.botRow = t.i1
		}
		top, bot := rb.top[:n], rb.bot[:n]
		w0, w1 := t.w0, t.w1
		switch {
		case s.Layout == NHWC && e == 1:
			o := dst[(oy*s.W+g.Left)*3:]
			o = o[:n]
			top, bot := top[:len(o)], bot[:len(o)]
			for i := range o {
				v := round255(float64(top[i]*w0) + float64(bot[i]*w1))
				o[i] = l.lut[v][0]
			}
		case s.Layout == NHWC:
			o := dst[(oy*s.W+g.Left)*3*e:]
			o = o[:n*4]
			for i := 0; i < n; i++ {
				v := round255(float64(top[i]*w0) + float64(bot[i]*w1))
				copy(o[i*4:i*4+4], l.lut[v][:])
			}
		default: // NCHW
			plane := s.W * s.H * e
			base := (oy*s.W + g.Left) * e
			for i := 0; i < n; i++ {
				v := round255(float64(top[i]*w0) + float64(bot[i]*w1))
				c, x := i%3, i/3
				copy(dst[c*plane+base+x*e:], l.lut[v][:e])
			}
		}
	}
}

// fusedRow resizes one row of an RGBA source into one-byte NHWC output in a
// single pass: the same products and sums as horizontal then vertical, in
// the same order, without the row buffers.
func (l *Letterboxer) fusedRow(r0, r1 []uint8, wy0, wy1 float64, o []byte) {
	w := l.geo.SrcW * 4
	r0, r1 = r0[:w], r1[:w]
	lut := &l.lut
	for i, t := range l.xs {
		oo := o[i*3 : i*3+3 : i*3+3]
		a0 := r0[t.i0*4 : t.i0*4+3 : t.i0*4+3]
		a1 := r1[t.i0*4 : t.i0*4+3 : t.i0*4+3]
		if t.w1 == 0 {
			if wy1 == 0 {
				oo[0], oo[1], oo[2] = lut[a0[0]][0], lut[a0[1]][0], lut[a0[2]][0]
				continue
			}
			for c := 0; c < 3; c++ {
				oo[c] = lut[round255(float64(u8f[a0[c]]*wy0)+float64(u8f[a1[c]]*wy1))][0]
			}
			continue
		}
		b0 := r0[t.i1*4 : t.i1*4+3 : t.i1*4+3]
		b1 := r1[t.i1*4 : t.i1*4+3 : t.i1*4+3]
		w0, w1 := t.w0, t.w1
		for c := 0; c < 3; c++ {
			top := float64(u8f[a0[c]]*w0) + float64(u8f[b0[c]]*w1)
			bot := float64(u8f[a1[c]]*w0) + float64(u8f[b1[c]]*w1)
			oo[c] = lut[round255(float64(top*wy0)+float64(bot*wy1))][0]
		}
	}
}

// store writes one resized row whose values need only rounding.
func (l *Letterboxer) store(dst []byte, oy int, row []float64) {
	g, s, e := l.geo, l.spec, l.esz
	n := len(row)
	switch {
	case s.Layout == NHWC && e == 1:
		o := dst[(oy*s.W+g.Left)*3:]
		o = o[:n]
		for i, v := range row[:len(o)] {
			o[i] = l.lut[round255(v)][0]
		}
	case s.Layout == NHWC:
		o := dst[(oy*s.W+g.Left)*3*e:]
		o = o[:n*4]
		for i, v := range row {
			copy(o[i*4:i*4+4], l.lut[round255(v)][:])
		}
	default: // NCHW
		plane := s.W * s.H * e
		base := (oy*s.W + g.Left) * e
		for i, v := range row {
			c, x := i%3, i/3
			copy(dst[c*plane+base+x*e:], l.lut[round255(v)][:e])
		}
	}
}

// round255 rounds v in [0,255] half away from zero, like math.Round. Adding
// the largest double below one half (not one half) keeps 0.49999999999999994
// from rounding up; TestRound255 checks the edges.
func round255(v float64) uint8 {
	return uint8(int(v + 0.49999999999999994))
}
