package yolotest

import (
	"path/filepath"
	"strings"
	"testing"

	"edgefleet/models"
	"edgefleet/models/modeltest"
)

// TestAgreeRealRuntimes: the two real TFLite runtimes agree with each other
// on all 16 shared pairs, in both directions (32 checks), as MODELS.md says.
func TestAgreeRealRuntimes(t *testing.T) {
	n := 0
	for _, p := range modeltest.Glob(t, "crosscheck_wasm/*.json") {
		wasm, err := ReadReference(p)
		if err != nil {
			t.Fatal(err)
		}
		native, err := ReadReference(modeltest.Path(t, "reference", filepath.Base(p)))
		if err != nil {
			t.Fatal(err)
		}
		if err := Agree(native.Dets(), wasm.Dets()); err != nil {
			t.Errorf("%s native→wasm: %v", native.Pair(), err)
		}
		if err := Agree(wasm.Dets(), native.Dets()); err != nil {
			t.Errorf("%s wasm→native: %v", native.Pair(), err)
		}
		n += 2
	}
	if n != 32 {
		t.Errorf("%d directions checked, want 32", n)
	}
}

func det(class int, score float32, x1, y1, x2, y2 float32) models.Detection {
	return models.Detection{ClassID: class, Score: score, Box: [4]float32{x1, y1, x2, y2}}
}

func TestAgree(t *testing.T) {
	ref := []models.Detection{
		det(41, 0.8, 170, 18, 422, 316),
		det(60, 0.6, 0, 1, 578, 397),
		det(3, 0.3, 0, 0, 50, 50), // weak: need not be found
	}
	tests := []struct {
		name string
		got  []models.Detection
		want string // substring of the error; "" means agree
	}{
		{"identical", ref, ""},
		{"weak ones missing, scores drift", []models.Detection{det(41, 0.65, 172, 20, 420, 310), det(60, 0.75, 2, 0, 575, 395)}, ""},
		{"weak extra", append(append([]models.Detection{}, ref...), det(7, 0.49, 300, 300, 400, 400)), ""},
		{"strong one missing", ref[1:], "reference cup"},
		{"wrong class", []models.Detection{det(42, 0.8, 170, 18, 422, 316), ref[1]}, "reference"},
		{"score too far", []models.Detection{det(41, 0.55, 170, 18, 422, 316), ref[1]}, "unmatched"},
		{"box too far", []models.Detection{det(41, 0.8, 170, 18, 300, 316), ref[1]}, "unmatched"},
		{"strong extra", append(append([]models.Detection{}, ref...), det(7, 0.9, 300, 300, 400, 400)), "extra"},
		{"strong extra of a known class elsewhere", append(append([]models.Detection{}, ref...), det(41, 0.6, 450, 300, 500, 390)), "extra"},
		{"nothing", nil, "unmatched"},
	}
	ref[0].Label = "cup"
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Agree(ref, tt.got)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected disagreement: %v", err)
			case tt.want != "" && err == nil:
				t.Fatal("agreed, want a disagreement")
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

// TestAgreeCatchesWrongPipelines: detections with a typical pipeline bug
// (boxes not mapped back, classes off by one) fail on real reference pairs.
func TestAgreeCatchesWrongPipelines(t *testing.T) {
	for _, p := range modeltest.Glob(t, "reference/*.json") {
		r, err := ReadReference(p)
		if err != nil {
			t.Fatal(err)
		}
		strong := false
		for _, d := range r.Dets() {
			strong = strong || d.Score >= StrongScore
		}
		if !strong {
			continue
		}
		lb := r.Letterbox
		unmapped := r.Dets() // boxes left in letterboxed input pixels
		offByOne := r.Dets()
		for i := range unmapped {
			b := &unmapped[i].Box
			for k := range b {
				pad := float32(lb.PadLeft)
				if k%2 == 1 {
					pad = float32(lb.PadTop)
				}
				b[k] = b[k]*float32(lb.Gain) + pad
			}
			offByOne[i].ClassID++
		}
		if lb.Gain < 0.8 || lb.Gain > 1.25 {
			if err := Agree(r.Dets(), unmapped); err == nil {
				t.Errorf("%s: unmapped boxes agree", r.Pair())
			}
		}
		if err := Agree(r.Dets(), offByOne); err == nil {
			t.Errorf("%s: classes off by one agree", r.Pair())
		}
	}
}

func TestIoU(t *testing.T) {
	tests := []struct {
		a, b [4]float32
		want float32
	}{
		{[4]float32{0, 0, 10, 10}, [4]float32{0, 0, 10, 10}, 1},
		{[4]float32{0, 0, 10, 10}, [4]float32{5, 0, 15, 10}, 1.0 / 3},
		{[4]float32{0, 0, 10, 10}, [4]float32{10, 10, 20, 20}, 0},
		{[4]float32{0, 0, 0, 0}, [4]float32{0, 0, 0, 0}, 0},
	}
	for _, tt := range tests {
		if got := IoU(tt.a, tt.b); got < tt.want-1e-6 || got > tt.want+1e-6 {
			t.Errorf("IoU(%v, %v) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}
