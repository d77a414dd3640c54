package annotate

import (
	"image"
	"image/color"
	"path/filepath"
	"testing"

	"edgefleet/models"
	"edgefleet/models/imageio"
)

func grey(w, h int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(10, 20, 10+w, 20+h)) // offset bounds on purpose
	for i := range img.Pix {
		img.Pix[i] = 128
		if i%4 == 3 {
			img.Pix[i] = 255
		}
	}
	return img
}

func TestDraw(t *testing.T) {
	src := grey(200, 100)
	dets := []models.Detection{
		{ClassID: 3, Label: "motorcycle", Score: 0.9, Box: [4]float32{50, 40, 150, 90}},
		{ClassID: 0, Score: 0.3, Box: [4]float32{-20, -20, 30, 30}},       // clipped, label by id
		{ClassID: 5, Score: 0.3, Box: [4]float32{500, 500, 600, 600}},     // outside: skipped
		{ClassID: 7, Label: "x", Score: 0.5, Box: [4]float32{0, 0, 0, 0}}, // empty
	}
	out := Draw(src, dets)
	if out.Bounds() != image.Rect(0, 0, 200, 100) {
		t.Fatalf("bounds %v", out.Bounds())
	}
	tests := []struct {
		name string
		x, y int
		want color.RGBA
	}{
		{"left edge of box", 50, 70, Color(3)},
		{"bottom edge of box", 100, 89, Color(3)},
		{"inside the box", 100, 70, color.RGBA{128, 128, 128, 255}},
		{"label background above the box", 52, 40 - 3, Color(3)},
		{"far corner", 199, 0, color.RGBA{128, 128, 128, 255}},
		{"clipped box edge", 29, 25, Color(0)},
	}
	for _, tt := range tests {
		if got := out.RGBAAt(tt.x, tt.y); got != tt.want {
			t.Errorf("%s (%d,%d) = %v, want %v", tt.name, tt.x, tt.y, got, tt.want)
		}
	}
	// Some text was drawn: the label area is not one flat colour.
	flat := true
	for x := 51; x < 120 && flat; x++ {
		for y := 40 - 14; y < 40; y++ {
			if out.RGBAAt(x, y) != Color(3) {
				flat = false
			}
		}
	}
	if flat {
		t.Error("no label text drawn")
	}
	// The source image is left alone.
	if src.NRGBAAt(60, 60) != (color.NRGBA{128, 128, 128, 255}) {
		t.Error("Draw changed its input")
	}
}

func TestSaveRoundTrip(t *testing.T) {
	out := Draw(grey(64, 48), []models.Detection{{ClassID: 1, Label: "a", Score: 1, Box: [4]float32{5, 20, 60, 40}}})
	for _, name := range []string{"a.png", "a.jpg"} {
		p := filepath.Join(t.TempDir(), name)
		if err := imageio.Save(p, out); err != nil {
			t.Fatal(err)
		}
		back, err := imageio.Load(p)
		if err != nil {
			t.Fatal(err)
		}
		if back.Bounds() != out.Bounds() {
			t.Errorf("%s: bounds %v", name, back.Bounds())
		}
	}
}
