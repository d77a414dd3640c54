package yolo

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"edgefleet/models"
	"edgefleet/models/modeltest"
	"edgefleet/models/yolo/yolotest"
)

// tensorsFile is the .tensors.json beside the raw tensor dumps.
type tensorsFile struct {
	Files []struct {
		File      string  `json:"file"`
		Role      string  `json:"role"`
		DType     string  `json:"dtype"`
		Shape     []int   `json:"shape"`
		Scale     float64 `json:"scale"`
		ZeroPoint float64 `json:"zero_point"`
	} `json:"files"`
}

// rawPair loads the output dump of one pair and describes its tensors.
func rawPair(t *testing.T, dir, pair string) (in, out models.TensorInfo, data []byte) {
	return rawPairB(t, dir, pair)
}

func rawPairB(t testing.TB, dir, pair string) (in, out models.TensorInfo, data []byte) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, pair+".tensors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var tf tensorsFile
	if err := json.Unmarshal(b, &tf); err != nil {
		t.Fatal(err)
	}
	for _, f := range tf.Files {
		ti, err := yolotest.TensorInfo(f.Role, f.DType, f.Shape, [2]float64{f.Scale, f.ZeroPoint})
		if err != nil {
			t.Fatal(err)
		}
		if f.Scale == 0 {
			ti.Quant = nil
		}
		if f.Role == "input" {
			in = ti
		} else {
			out = ti
			if data, err = os.ReadFile(filepath.Join(dir, f.File)); err != nil {
				t.Fatal(err)
			}
		}
	}
	return in, out, data
}

// sameDetections is stricter than yolotest.Agree: the same output bytes must
// give the reference's detections up to the rounding of the JSON files.
func sameDetections(t *testing.T, want, got []models.Detection) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d detections, reference has %d:\ngot  %v\nwant %v", len(got), len(want), got, want)
	}
	for i := range want {
		w, g := want[i], got[i]
		ok := w.ClassID == g.ClassID && math.Abs(float64(w.Score-g.Score)) < 1e-4
		for k := range w.Box {
			ok = ok && math.Abs(float64(w.Box[k]-g.Box[k])) < 0.011
		}
		if !ok {
			t.Errorf("detection %d: got %s, want %s", i, yolotest.Format(g), yolotest.Format(w))
		}
	}
}

// TestDecodeRealOutputs decodes the raw output tensors two real TFLite
// runtimes produced and gets exactly the detections each runtime's
// reference file lists: decode checked independently of any interpreter.
func TestDecodeRealOutputs(t *testing.T) {
	for _, runtime := range []string{"native", "wasm"} {
		for _, p := range modeltest.Glob(t, "tensors/"+runtime+"/*.output.bin") {
			pair := strings.TrimSuffix(filepath.Base(p), ".output.bin")
			t.Run(runtime+"/"+pair, func(t *testing.T) {
				refDir := "reference"
				if runtime == "wasm" {
					refDir = "crosscheck_wasm"
					if _, err := os.Stat(modeltest.Path(t) + "/crosscheck_wasm/" + pair + ".json"); err != nil {
						refDir = "reference" // models only the WASM runtime loads
					}
				}
				ref, err := yolotest.ReadReference(modeltest.Path(t, refDir, pair+".json"))
				if err != nil {
					t.Fatal(err)
				}
				if runtime == "wasm" && !strings.HasPrefix(ref.Runtime, "wasm") {
					t.Fatalf("%s/%s is from runtime %q", refDir, pair, ref.Runtime)
				}
				inT, outT, data := rawPair(t, filepath.Dir(p), pair)
				spec, err := InputSpecOf(inT)
				if err != nil {
					t.Fatal(err)
				}
				head, err := HeadOf(outT, spec)
				if err != nil {
					t.Fatal(err)
				}
				if !strings.HasPrefix(ref.OutputFormat, head.Format.String()) && !(head.Format == E2E && strings.HasPrefix(ref.OutputFormat, "end2end")) {
					t.Errorf("format %v, reference says %q", head.Format, ref.OutputFormat)
				}
				dec, err := NewDecoder(head, spec, Params{Conf: float32(ref.ConfThreshold), IoU: float32(ref.IoUThreshold)})
				if err != nil {
					t.Fatal(err)
				}
				g, err := NewGeometry(ref.ImageSizeWH[0], ref.ImageSizeWH[1], spec.W, spec.H)
				if err != nil {
					t.Fatal(err)
				}
				got, err := dec.Decode(data, g, nil)
				if err != nil {
					t.Fatal(err)
				}
				sameDetections(t, ref.Dets(), got)
				if err := yolotest.Agree(ref.Dets(), got); err != nil {
					t.Error(err)
				}
				// Decoding twice reuses the scratch space and must not change anything.
				again, _ := dec.Decode(data, g, nil)
				sameDetections(t, got, again)
			})
		}
	}
}

// builder makes hand-built output tensors.
type builder struct {
	typ   models.DType
	scale float32
	zp    int32
}

func (b builder) info(shape ...int) models.TensorInfo {
	ti := models.TensorInfo{Name: "out", Type: b.typ, Shape: shape}
	if b.typ != models.Float32 {
		ti.Quant = &models.Quant{Scale: []float32{b.scale}, ZeroPoint: []int64{int64(b.zp)}}
	}
	return ti
}

func (b builder) encode(vals []float32) []byte {
	out := make([]byte, len(vals)*b.typ.Size())
	for i, v := range vals {
		switch b.typ {
		case models.Float32:
			binary.LittleEndian.PutUint32(out[i*4:], math.Float32bits(v))
		case models.Int8:
			q := int(math.Round(float64(v/b.scale))) + int(b.zp)
			out[i] = byte(int8(min(max(q, -128), 127)))
		case models.UInt8:
			q := int(math.Round(float64(v/b.scale))) + int(b.zp)
			out[i] = byte(min(max(q, 0), 255))
		}
	}
	return out
}

// obj is one object to put into a hand-built output, in input pixels.
type obj struct {
	anchor       int
	cx, cy, w, h float32
	class        int
	score        float32
	objectness   float32 // V5 only
}

// build lays objs out in the given format; every other anchor scores 0.
func build(f Format, anchors, classes int, objs []obj, norm float32) []float32 {
	switch f {
	case V8:
		v := make([]float32, (4+classes)*anchors)
		for a := 0; a < anchors; a++ {
			v[2*anchors+a], v[3*anchors+a] = 2/norm, 2/norm
		}
		for _, o := range objs {
			v[o.anchor], v[anchors+o.anchor], v[2*anchors+o.anchor], v[3*anchors+o.anchor] = o.cx/norm, o.cy/norm, o.w/norm, o.h/norm
			v[(4+o.class)*anchors+o.anchor] = o.score
		}
		return v
	case V5, V8Rows:
		first := 4
		if f == V5 {
			first = 5
		}
		s := first + classes
		v := make([]float32, s*anchors)
		for _, o := range objs {
			r := v[o.anchor*s:]
			r[0], r[1], r[2], r[3] = o.cx/norm, o.cy/norm, o.w/norm, o.h/norm
			if f == V5 {
				r[4] = o.objectness
			}
			r[first+o.class] = o.score
		}
		return v
	case E2E:
		v := make([]float32, 6*anchors)
		for _, o := range objs {
			r := v[o.anchor*6:]
			r[0], r[1], r[2], r[3] = (o.cx-o.w/2)/norm, (o.cy-o.h/2)/norm, (o.cx+o.w/2)/norm, (o.cy+o.h/2)/norm
			r[4], r[5] = o.score, float32(o.class)
		}
		return v
	}
	return nil
}

func TestDecodeHandBuilt(t *testing.T) {
	spec := InputSpec{W: 64, H: 64, Layout: NHWC, Type: models.Float32}
	g, _ := NewGeometry(128, 64, 64, 64) // gain 0.5, pad top 16
	A := grid(64, 64)                    // 84
	objs := []obj{
		{anchor: 3, cx: 20, cy: 30, w: 10, h: 10, class: 2, score: 0.9, objectness: 0.95},
		{anchor: 7, cx: 21, cy: 30, w: 10, h: 10, class: 2, score: 0.8, objectness: 0.95}, // suppressed by 3
		{anchor: 9, cx: 21, cy: 30, w: 10, h: 10, class: 1, score: 0.7, objectness: 0.95}, // other class: kept
		{anchor: 11, cx: 50, cy: 40, w: 8, h: 6, class: 0, score: 0.6, objectness: 0.9},
		{anchor: 13, cx: 10, cy: 10, w: 4, h: 4, class: 0, score: 0.2, objectness: 0.9}, // below conf
		{anchor: 15, cx: 30, cy: 50, w: 4, h: 4, class: 1, score: 0.9, objectness: 0.2}, // V5: objectness below conf
	}
	box := func(cx, cy, w, h float32) [4]float32 {
		return g.ScaleBox([4]float32{cx - w/2, cy - h/2, cx + w/2, cy + h/2})
	}
	type want struct {
		class int
		score float32
		box   [4]float32
	}
	all := []want{ // V8: anchor 15 counts, having no objectness
		{2, 0.9, box(20, 30, 10, 10)},
		{1, 0.9, box(30, 50, 4, 4)},
		{1, 0.7, box(21, 30, 10, 10)},
		{0, 0.6, box(50, 40, 8, 6)},
	}
	v5 := []want{
		{2, 0.9 * 0.95, box(20, 30, 10, 10)},
		{1, 0.7 * 0.95, box(21, 30, 10, 10)},
		{0, 0.6 * 0.9, box(50, 40, 8, 6)},
	}
	e2e := []want{ // no NMS: the overlapping same-class box stays
		{2, 0.9, box(20, 30, 10, 10)},
		{2, 0.8, box(21, 30, 10, 10)},
		{1, 0.7, box(21, 30, 10, 10)},
		{0, 0.6, box(50, 40, 8, 6)},
		{1, 0.9, box(30, 50, 4, 4)},
	}
	// E2E rows come sorted by score; ours are too after decode.
	e2eSorted := []want{e2e[0], e2e[4], e2e[1], e2e[2], e2e[3]}
	types := []builder{
		{typ: models.Float32},
		{typ: models.Int8, scale: 1.0 / 254, zp: -127},
		{typ: models.UInt8, scale: 1.0 / 255, zp: 0},
	}
	tests := []struct {
		name    string
		f       Format
		anchors int
		shape   func(anchors, classes int) []int
		norm    float32
		params  Params
		want    []want
	}{
		{"v8 normalized", V8, A, func(a, c int) []int { return []int{1, 4 + c, a} }, 64, Params{}, all},
		{"v8 pixels", V8, A, func(a, c int) []int { return []int{1, 4 + c, a} }, 1, Params{}, all},
		{"v8 class filter", V8, A, func(a, c int) []int { return []int{1, 4 + c, a} }, 64, Params{Classes: []int{0, 1}}, all[1:]},
		{"v8 max det", V8, A, func(a, c int) []int { return []int{1, 4 + c, a} }, 64, Params{MaxDet: 2}, all[:2]},
		{"v8 iou 0.99 keeps both", V8, A, func(a, c int) []int { return []int{1, 4 + c, a} }, 64, Params{IoU: 0.99}, []want{all[0], all[1], {2, 0.8, box(21, 30, 10, 10)}, all[2], all[3]}},
		{"v8 rows", V8Rows, A, func(a, c int) []int { return []int{1, a, 4 + c} }, 64, Params{}, all},
		{"v5 normalized", V5, 3 * A, func(a, c int) []int { return []int{1, a, 5 + c} }, 64, Params{}, v5},
		{"v5 pixels", V5, 3 * A, func(a, c int) []int { return []int{1, a, 5 + c} }, 1, Params{}, v5},
		{"e2e normalized", E2E, 300, func(a, c int) []int { return []int{1, a, 6} }, 64, Params{}, e2eSorted},
		{"e2e pixels conf 0.75", E2E, 300, func(a, c int) []int { return []int{1, a, 6} }, 1, Params{Conf: 0.75}, e2eSorted[:3]},
	}
	for _, tt := range tests {
		for _, b := range types {
			if (tt.norm == 1 || tt.f == E2E) && b.typ != models.Float32 {
				// pixel coordinates and class ids do not fit an 8-bit scale of ~1/255
				continue
			}
			t.Run(tt.name+"/"+b.typ.String(), func(t *testing.T) {
				const classes = 3
				head, err := HeadOf(b.info(tt.shape(tt.anchors, classes)...), spec)
				if err != nil {
					t.Fatal(err)
				}
				if head.Format != tt.f || head.Anchors != tt.anchors || (tt.f != E2E && head.Classes != classes) {
					t.Fatalf("head %+v", head)
				}
				dec, err := NewDecoder(head, spec, tt.params)
				if err != nil {
					t.Fatal(err)
				}
				got, err := dec.Decode(b.encode(build(tt.f, tt.anchors, classes, objs, tt.norm)), g, nil)
				if err != nil {
					t.Fatal(err)
				}
				tol := float32(1e-5)
				if b.typ != models.Float32 {
					tol = 0.01
				}
				if len(got) != len(tt.want) {
					t.Fatalf("got %d detections %v, want %d", len(got), got, len(tt.want))
				}
				for i, w := range tt.want {
					d := got[i]
					ok := d.ClassID == w.class && abs32(d.Score-w.score) <= tol
					for k := range w.box {
						ok = ok && abs32(d.Box[k]-w.box[k]) <= 64*tol+1e-3
					}
					if !ok {
						t.Errorf("detection %d = %+v, want %+v", i, d, w)
					}
				}
			})
		}
	}
}

func abs32(x float32) float32 { return float32(math.Abs(float64(x))) }

func TestHeadOf(t *testing.T) {
	spec640 := InputSpec{W: 640, H: 640}
	q := &models.Quant{Scale: []float32{0.1}, ZeroPoint: []int64{3}}
	tests := []struct {
		name  string
		ti    models.TensorInfo
		spec  InputSpec
		f     Format
		a, nc int
		err   bool
	}{
		{"yolov8", models.TensorInfo{Type: models.Int8, Shape: []int{1, 84, 8400}, Quant: q}, spec640, V8, 8400, 80, false},
		{"yolov5", models.TensorInfo{Type: models.UInt8, Shape: []int{1, 25200, 85}, Quant: q}, spec640, V5, 25200, 80, false},
		{"yolov5 one class", models.TensorInfo{Type: models.Float32, Shape: []int{1, 25200, 6}}, spec640, V5, 25200, 1, false},
		{"yolov8 rows", models.TensorInfo{Type: models.Float32, Shape: []int{1, 8400, 84}}, spec640, V8Rows, 8400, 80, false},
		{"e2e", models.TensorInfo{Type: models.Float32, Shape: []int{1, 300, 6}}, InputSpec{W: 320, H: 320}, E2E, 300, 0, false},
		{"yolov8 other size", models.TensorInfo{Type: models.Float32, Shape: []int{1, 6, 2100}}, spec640, V8, 2100, 2, false},
		{"no batch", models.TensorInfo{Type: models.Float32, Shape: []int{84, 8400}}, spec640, V8, 8400, 80, false},
		{"classifier", models.TensorInfo{Type: models.Float32, Shape: []int{1, 1000}}, spec640, 0, 0, 0, true},
		{"rank 4", models.TensorInfo{Type: models.Float32, Shape: []int{1, 1, 84, 8400}}, spec640, 0, 0, 0, true},
		{"too few channels", models.TensorInfo{Type: models.Float32, Shape: []int{1, 4, 3}}, spec640, 0, 0, 0, true},
		{"int8 no quant", models.TensorInfo{Type: models.Int8, Shape: []int{1, 84, 8400}}, spec640, 0, 0, 0, true},
		{"int32", models.TensorInfo{Type: models.Int32, Shape: []int{1, 84, 8400}}, spec640, 0, 0, 0, true},
		{"zero dim", models.TensorInfo{Type: models.Float32, Shape: []int{1, 0, 8400}}, spec640, 0, 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := HeadOf(tt.ti, tt.spec)
			if (err != nil) != tt.err {
				t.Fatalf("err = %v, want error %v", err, tt.err)
			}
			if err == nil && (h.Format != tt.f || h.Anchors != tt.a || h.Classes != tt.nc) {
				t.Fatalf("got %+v, want %v A=%d nc=%d", h, tt.f, tt.a, tt.nc)
			}
		})
	}
}

func TestScanAtLeast(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	row := make([]byte, 203)
	for i := range row {
		row[i] = byte(r.IntN(256))
	}
	row[0], row[1], row[2] = 0, 127, 128
	for _, flip := range []byte{0, 0x80} {
		for thr := -1; thr <= 257; thr++ {
			var got, want []int
			scanAtLeast(row, flip, thr, func(i int) { got = append(got, i) })
			for i, b := range row {
				if int(b^flip) >= thr {
					want = append(want, i)
				}
			}
			if len(got) != len(want) {
				t.Fatalf("flip %x thr %d: %d hits, want %d", flip, thr, len(got), len(want))
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("flip %x thr %d: hit %d = %d, want %d", flip, thr, i, got[i], want[i])
				}
			}
		}
	}
}

func TestDecodeWrongSize(t *testing.T) {
	spec := InputSpec{W: 640, H: 640}
	h, _ := HeadOf(models.TensorInfo{Type: models.Float32, Shape: []int{1, 84, 8400}}, spec)
	d, _ := NewDecoder(h, spec, Params{})
	g, _ := NewGeometry(640, 640, 640, 640)
	if _, err := d.Decode(make([]byte, 10), g, nil); err == nil {
		t.Fatal("short output accepted")
	}
}

// FuzzDecode feeds arbitrary output bytes (a broken or hostile engine) to
// every decoder: no panics, boxes inside the image.
func FuzzDecode(f *testing.F) {
	f.Add([]byte{1, 2, 3}, uint8(0), uint8(0))
	f.Add(make([]byte, 64), uint8(1), uint8(2))
	spec := InputSpec{W: 32, H: 32}
	A := grid(32, 32)
	shapes := [][]int{{1, 6, A}, {1, 3 * A, 7}, {1, A, 6}, {1, 10, 6}}
	types := []builder{{typ: models.Float32}, {typ: models.Int8, scale: 0.01, zp: -5}, {typ: models.UInt8, scale: 0.02, zp: 7}}
	f.Fuzz(func(t *testing.T, seed []byte, si, ti uint8) {
		b := types[int(ti)%len(types)]
		head, err := HeadOf(b.info(shapes[int(si)%len(shapes)]...), spec)
		if err != nil {
			t.Fatal(err)
		}
		dec, err := NewDecoder(head, spec, Params{Conf: 0.01})
		if err != nil {
			t.Fatal(err)
		}
		out := make([]byte, head.ImageBytes())
		for i := range out {
			if len(seed) > 0 {
				out[i] = seed[i%len(seed)] ^ byte(i*7)
			}
		}
		g, _ := NewGeometry(50, 40, 32, 32)
		dets, err := dec.Decode(out, g, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range dets {
			for k, v := range d.Box {
				lim := float32(50)
				if k%2 == 1 {
					lim = 40
				}
				if !(v >= 0 && v <= lim) {
					t.Fatalf("box %v outside the image", d.Box)
				}
			}
		}
	})
}
