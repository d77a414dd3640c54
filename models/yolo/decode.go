package yolo

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"edgefleet/models"
)

// Format is the kind of detection head an output tensor comes from.
type Format uint8

// Detection head formats.
const (
	// V5 is YOLOv5's [1,A,5+nc]: rows of cx,cy,w,h,objectness,class scores.
	V5 Format = iota + 1
	// V8 is YOLOv8/YOLO11's dense [1,4+nc,A]: channels first, cx,cy,w,h,class scores.
	V8
	// V8Rows is the same head transposed, [1,A,4+nc].
	V8Rows
	// E2E is the end-to-end head of YOLOv10 and YOLO26, [1,N,6]: rows of
	// x1,y1,x2,y2,score,class, already free of duplicates (no NMS).
	E2E
)

func (f Format) String() string {
	switch f {
	case V5:
		return "yolov5"
	case V8:
		return "yolov8"
	case V8Rows:
		return "yolov8-rows"
	case E2E:
		return "end2end"
	}
	return fmt.Sprintf("format(%d)", uint8(f))
}

// ErrOutput is returned (wrapped) for an output tensor no decoder here reads.
var ErrOutput = errors.New("unsupported output tensor")

// Head describes a detection output tensor.
type Head struct {
	Format  Format
	Batch   int
	Anchors int // candidate boxes per image (rows of E2E)
	Classes int // 0 for E2E, whose class is a value
	Type    models.DType
	// Scale and ZeroPoint dequantize int8/uint8 outputs: real = Scale*(q-ZeroPoint).
	Scale     float32
	ZeroPoint int32
}

// ImageBytes is the size in bytes of one image's output.
func (h Head) ImageBytes() int {
	n := h.Anchors * (h.Classes + 4)
	switch h.Format {
	case V5:
		n = h.Anchors * (h.Classes + 5)
	case E2E:
		n = h.Anchors * 6
	}
	return n * h.Type.Size()
}

// grid is the number of anchor points of a stride 8/16/32 head on a w×h input.
func grid(w, h int) int {
	n := 0
	for _, s := range []int{8, 16, 32} {
		n += ((w + s - 1) / s) * ((h + s - 1) / s)
	}
	return n
}

// HeadOf picks the decoder for an output tensor from its shape alone, with
// the input size to tell a YOLOv5 head (3 anchors per grid point) from a
// transposed YOLOv8 one (1 per point).
func HeadOf(out models.TensorInfo, in InputSpec) (Head, error) {
	h := Head{Type: out.Type, Batch: 1}
	switch out.Type {
	case models.Float32:
	case models.Int8, models.UInt8:
		if out.Quant == nil || len(out.Quant.Scale) == 0 || !(out.Quant.Scale[0] > 0) || math.IsInf(float64(out.Quant.Scale[0]), 0) {
			return h, fmt.Errorf("yolo: output %q: %w (%v without quantization)", out.Name, ErrOutput, out.Type)
		}
		h.Scale = out.Quant.Scale[0]
		if len(out.Quant.ZeroPoint) > 0 {
			h.ZeroPoint = int32(out.Quant.ZeroPoint[0])
		}
	default:
		return h, fmt.Errorf("yolo: output %q: %w (element type %v)", out.Name, ErrOutput, out.Type)
	}
	var d1, d2 int
	switch len(out.Shape) {
	case 2:
		d1, d2 = out.Shape[0], out.Shape[1]
	case 3:
		h.Batch, d1, d2 = out.Shape[0], out.Shape[1], out.Shape[2]
	default:
		return h, fmt.Errorf("yolo: output %q shape %v: %w (want rank 3)", out.Name, out.Shape, ErrOutput)
	}
	if h.Batch <= 0 || d1 <= 0 || d2 <= 0 {
		return h, fmt.Errorf("yolo: output %q shape %v: %w (empty)", out.Name, out.Shape, ErrOutput)
	}
	g := grid(in.W, in.H)
	switch {
	case d2 == g && d1 > 4:
		h.Format, h.Anchors, h.Classes = V8, d2, d1-4
	case d1 == 3*g && d2 > 5:
		h.Format, h.Anchors, h.Classes = V5, d1, d2-5
	case d1 == g && d2 > 4:
		h.Format, h.Anchors, h.Classes = V8Rows, d1, d2-4
	case d2 == 6:
		h.Format, h.Anchors = E2E, d1
	case d1 < d2 && d1 > 4:
		h.Format, h.Anchors, h.Classes = V8, d2, d1-4
	case d1 > d2 && d2 > 5:
		h.Format, h.Anchors, h.Classes = V5, d1, d2-5
	default:
		return h, fmt.Errorf("yolo: output %q shape %v: %w (not a YOLO detection head)", out.Name, out.Shape, ErrOutput)
	}
	return h, nil
}

// Params are the post-processing settings. Zero values mean the defaults.
type Params struct {
	Conf    float32 // keep scores > Conf; 0 means 0.25
	IoU     float32 // suppress same-class boxes overlapping at IoU > IoU; 0 means 0.45
	MaxDet  int     // at most this many detections per image; 0 means 300
	Classes []int   // keep only these class ids (by the best class); nil keeps all
}

func (p Params) withDefaults() Params {
	if p.Conf == 0 {
		p.Conf = 0.25
	}
	if p.IoU == 0 {
		p.IoU = 0.45
	}
	if p.MaxDet <= 0 {
		p.MaxDet = 300
	}
	return p
}

// maxNMS bounds the boxes that go into NMS, as Ultralytics' max_nms.
const maxNMS = 30000

// Decoder turns one image's raw output into detections. It keeps scratch
// space between calls; it is not safe for concurrent use.
type Decoder struct {
	head Head
	in   InputSpec
	p    Params

	classOK []bool // nil: all classes
	qmin    int    // smallest quantized score (as stored, int8 or uint8 value) > Conf
	never   bool   // no quantized value passes Conf

	bestq   []int16   // per anchor best class value (V8), -1 untouched
	bestf   []float32 // per anchor best score (V8 float32)
	bestc   []int32
	touched []int32
	cands   []cand
	kept    []cand
}

type cand struct {
	box   [4]float32
	score float32
	class int32
	idx   int32
}

// NewDecoder prepares a decoder for an output head of a model with input in.
func NewDecoder(head Head, in InputSpec, p Params) (*Decoder, error) {
	if head.Format < V5 || head.Format > E2E || head.Anchors <= 0 {
		return nil, fmt.Errorf("yolo: decoder: %w (%v)", ErrOutput, head.Format)
	}
	d := &Decoder{head: head, in: in, p: p.withDefaults()}
	if p.Classes != nil {
		n := head.Classes
		for _, c := range p.Classes {
			n = max(n, c+1)
		}
		d.classOK = make([]bool, n)
		for _, c := range p.Classes {
			if c >= 0 {
				d.classOK[c] = true
			}
		}
	}
	if head.Type != models.Float32 {
		lo, hi := -128, 127
		if head.Type == models.UInt8 {
			lo, hi = 0, 255
		}
		d.never = true
		for q := lo; q <= hi; q++ {
			if d.deq(q) > d.p.Conf {
				d.qmin, d.never = q, false
				break
			}
		}
	}
	if head.Format == V8 {
		d.bestq = make([]int16, head.Anchors)
		d.bestc = make([]int32, head.Anchors)
		for i := range d.bestq {
			d.bestq[i] = -1
		}
	}
	return d, nil
}

// Head is the output head the decoder reads.
func (d *Decoder) Head() Head { return d.head }

func (d *Decoder) deq(q int) float32 { return float32(int32(q)-d.head.ZeroPoint) * d.head.Scale }

// at reads element i of the output as a real number.
func (d *Decoder) at(b []byte, i int) float32 {
	switch d.head.Type {
	case models.Int8:
		return d.deq(int(int8(b[i])))
	case models.UInt8:
		return d.deq(int(b[i]))
	}
	return math.Float32frombits(binary.LittleEndian.Uint32(b[i*4:]))
}

// raw reads element i as an ordered integer for quantized outputs.
func (d *Decoder) raw(b []byte, i int) int {
	if d.head.Type == models.Int8 {
		return int(int8(b[i]))
	}
	return int(b[i])
}

func (d *Decoder) classAllowed(c int) bool {
	return d.classOK == nil || (c >= 0 && c < len(d.classOK) && d.classOK[c])
}

// Decode appends the detections found in out, one image's output bytes, to
// dst, with boxes mapped back to the original image by g. Detections come in
// descending score order.
func (d *Decoder) Decode(out []byte, g Geometry, dst []models.Detection) ([]models.Detection, error) {
	if len(out) != d.head.ImageBytes() {
		return dst, fmt.Errorf("yolo: decode: output holds %d bytes, want %d", len(out), d.head.ImageBytes())
	}
	d.cands = d.cands[:0]
	sx, sy := d.coordScale(out)
	switch d.head.Format {
	case V8:
		d.candidatesV8(out, sx, sy)
	case V5, V8Rows:
		d.candidatesRows(out, sx, sy)
	case E2E:
		d.candidatesE2E(out, sx, sy)
	}
	slices.SortStableFunc(d.cands, func(a, b cand) int {
		switch {
		case a.score > b.score:
			return -1
		case a.score < b.score:
			return 1
		}
		return 0
	})
	if len(d.cands) > maxNMS {
		d.cands = d.cands[:maxNMS]
	}
	keep := d.cands
	if d.head.Format != E2E {
		keep = d.nms()
	}
	if len(keep) > d.p.MaxDet {
		keep = keep[:d.p.MaxDet]
	}
	for _, c := range keep {
		dst = append(dst, models.Detection{ClassID: int(c.class), Score: c.score, Box: g.ScaleBox(c.box)})
	}
	return dst, nil
}

// coordScale says what to multiply box coordinates by: the input size when
// every box coordinate of the output is <= 2 (normalized), else 1.
func (d *Decoder) coordScale(out []byte) (float32, float32) {
	h := d.head
	stride := 1 // elements between one anchor's box coordinates
	rows := 4   // V8: the first 4 rows of A values
	switch h.Format {
	case V5:
		stride, rows = h.Classes+5, h.Anchors
	case V8Rows:
		stride, rows = h.Classes+4, h.Anchors
	case E2E:
		stride, rows = 6, h.Anchors
	}
	var mx float32
	switch h.Type {
	case models.Float32:
		mx = float32(math.Inf(-1))
		if h.Format == V8 {
			for i := 0; i < 4*h.Anchors; i++ {
				mx = max(mx, math.Float32frombits(binary.LittleEndian.Uint32(out[i*4:])))
			}
		} else {
			for r := 0; r < rows; r++ {
				for k := 0; k < 4; k++ {
					mx = max(mx, math.Float32frombits(binary.LittleEndian.Uint32(out[(r*stride+k)*4:])))
				}
			}
		}
	default:
		// Largest stored value in value order: int8 flips the sign bit.
		var flip byte
		if h.Type == models.Int8 {
			flip = 0x80
		}
		var mq byte
		if h.Format == V8 {
			for _, b := range out[:4*h.Anchors] {
				mq = max(mq, b^flip)
			}
		} else {
			for r := 0; r < rows; r++ {
				for _, b := range out[r*stride : r*stride+4] {
					mq = max(mq, b^flip)
				}
			}
		}
		mx = d.deq(int(mq) - int(flip))
	}
	if mx <= 2 {
		return float32(d.in.W), float32(d.in.H)
	}
	return 1, 1
}

func (d *Decoder) addXYWH(a int, cx, cy, w, h, sx, sy, score float32, class int) {
	cx, cy, w, h = cx*sx, cy*sy, w*sx, h*sy
	d.cands = append(d.cands, cand{
		box:   [4]float32{cx - w/2, cy - h/2, cx + w/2, cy + h/2},
		score: score, class: int32(class), idx: int32(a),
	})
}

// candidatesV8 reads the channels-first head. For quantized outputs it finds
// the anchors with any class above the threshold in the quantized domain,
// eight values at a time, and dequantizes only those.
func (d *Decoder) candidatesV8(out []byte, sx, sy float32) {
	h := d.head
	A := h.Anchors
	d.touched = d.touched[:0]
	if h.Type == models.Float32 {
		// Row by row, as memory lies: a class counts only above the threshold,
		// so the best of those is the best class whenever it passes.
		if d.bestf == nil {
			d.bestf = make([]float32, A)
		}
		for c := 0; c < h.Classes; c++ {
			row := out[(4+c)*A*4 : (5+c)*A*4]
			for a := 0; a < A; a++ {
				v := math.Float32frombits(binary.LittleEndian.Uint32(row[a*4:]))
				if !(v > d.p.Conf) {
					continue
				}
				if d.bestq[a] < 0 {
					d.touched = append(d.touched, int32(a))
					d.bestq[a] = 0
					d.bestf[a] = v
					d.bestc[a] = int32(c)
				} else if v > d.bestf[a] {
					d.bestf[a], d.bestc[a] = v, int32(c)
				}
			}
		}
		slices.Sort(d.touched)
		for _, a32 := range d.touched {
			a := int(a32)
			d.bestq[a] = -1
			if c := int(d.bestc[a]); d.classAllowed(c) {
				d.addXYWH(a, d.at(out, a), d.at(out, A+a), d.at(out, 2*A+a), d.at(out, 3*A+a), sx, sy, d.bestf[a], c)
			}
		}
		return
	}
	if d.never {
		return
	}
	// Scores as unsigned bytes in the order of their values: int8 flips the sign bit.
	var flip byte
	if h.Type == models.Int8 {
		flip = 0x80
	}
	thr := d.qmin + int(flip) // unsigned-order threshold: byte^flip >= thr
	for c := 0; c < h.Classes; c++ {
		row := out[(4+c)*A : (5+c)*A]
		scanAtLeast(row, flip, thr, func(a int) {
			q := int16(row[a] ^ flip)
			if d.bestq[a] < 0 {
				d.touched = append(d.touched, int32(a))
			}
			if q > d.bestq[a] {
				d.bestq[a], d.bestc[a] = q, int32(c)
			}
		})
	}
	slices.Sort(d.touched)
	for _, a32 := range d.touched {
		a := int(a32)
		q, c := int(d.bestq[a])-int(flip), int(d.bestc[a])
		d.bestq[a] = -1
		if !d.classAllowed(c) {
			continue
		}
		d.addXYWH(a, d.at(out, a), d.at(out, A+a), d.at(out, 2*A+a), d.at(out, 3*A+a), sx, sy, d.deq(q), c)
	}
}

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// scanAtLeast calls hit(i) for every i with row[i]^flip >= thr, in order.
// It tests eight bytes per step with SWAR arithmetic.
func scanAtLeast(row []byte, flip byte, thr int, hit func(int)) {
	if thr <= 0 {
		for i := range row {
			hit(i)
		}
		return
	}
	if thr > 255 {
		return
	}
	n := uint64(thr - 1) // looking for bytes > n
	m := n & 0x7f
	fl := uint64(flip) * ones
	add := (127 - m) * ones
	i := 0
	for ; i+8 <= len(row); i += 8 {
		x := binary.LittleEndian.Uint64(row[i:]) ^ fl
		t := ((x &^ highs) + add) & highs // high bit set where low 7 bits > m
		var found uint64
		if n >= 128 {
			found = t & x & highs
		} else {
			found = (t | x) & highs
		}
		if found == 0 {
			continue
		}
		for k := 0; k < 8; k++ {
			if int(row[i+k]^flip) >= thr {
				hit(i + k)
			}
		}
	}
	for ; i < len(row); i++ {
		if int(row[i]^flip) >= thr {
			hit(i)
		}
	}
}

// candidatesRows reads the row-major heads: V5 (with objectness) and V8Rows.
func (d *Decoder) candidatesRows(out []byte, sx, sy float32) {
	h := d.head
	first := 4 // first class column
	if h.Format == V5 {
		first = 5
	}
	stride := first + h.Classes
	quant := h.Type != models.Float32
	if quant && d.never {
		return
	}
	for a := 0; a < h.Anchors; a++ {
		base := a * stride
		var obj float32 = 1
		if h.Format == V5 {
			// Objectness > conf first, as YOLOv5's non_max_suppression.
			if quant {
				if d.raw(out, base+4) < d.qmin {
					continue
				}
				obj = d.deq(d.raw(out, base+4))
			} else if obj = d.at(out, base+4); !(obj > d.p.Conf) {
				continue
			}
		}
		bc := 0
		var best float32
		if quant {
			bq := d.raw(out, base+first)
			for c := 1; c < h.Classes; c++ {
				if q := d.raw(out, base+first+c); q > bq {
					bq, bc = q, c
				}
			}
			if h.Format == V8Rows && bq < d.qmin {
				continue
			}
			best = d.deq(bq)
		} else {
			best = d.at(out, base+first)
			for c := 1; c < h.Classes; c++ {
				if v := d.at(out, base+first+c); v > best {
					best, bc = v, c
				}
			}
		}
		score := obj * best
		if !(score > d.p.Conf) || !d.classAllowed(bc) {
			continue
		}
		d.addXYWH(a, d.at(out, base), d.at(out, base+1), d.at(out, base+2), d.at(out, base+3), sx, sy, score, bc)
	}
}

// candidatesE2E reads x1,y1,x2,y2,score,class rows.
func (d *Decoder) candidatesE2E(out []byte, sx, sy float32) {
	for a := 0; a < d.head.Anchors; a++ {
		base := a * 6
		score := d.at(out, base+4)
		if !(score > d.p.Conf) {
			continue
		}
		cf := d.at(out, base+5)
		if !(cf >= -0.5 && cf < 1<<24) {
			continue
		}
		c := int(math.Round(float64(cf)))
		if !d.classAllowed(c) {
			continue
		}
		d.cands = append(d.cands, cand{
			box:   [4]float32{d.at(out, base) * sx, d.at(out, base+1) * sy, d.at(out, base+2) * sx, d.at(out, base+3) * sy},
			score: score, class: int32(c), idx: int32(a),
		})
	}
}

// nms is greedy class-aware non-maximum suppression over d.cands (sorted by
// descending score), as torchvision.ops.nms over class-offset boxes.
func (d *Decoder) nms() []cand {
	d.kept = d.kept[:0]
	thr := d.p.IoU
	for _, c := range d.cands {
		ok := true
		for i := range d.kept {
			k := &d.kept[i]
			if k.class == c.class && iou(&k.box, &c.box) > thr {
				ok = false
				break
			}
		}
		if ok {
			d.kept = append(d.kept, c)
			if len(d.kept) >= d.p.MaxDet {
				break
			}
		}
	}
	return d.kept
}

func iou(a, b *[4]float32) float32 { return models.IoU(*a, *b) }
