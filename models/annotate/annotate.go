// Package annotate draws detections onto images (boxes, class names and
// scores) so a person can look at what a model found.
package annotate

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"math"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"edgefleet/models"
)

// palette is Ultralytics' default colour cycle, so pictures look familiar.
var palette = []color.RGBA{
	{0xFF, 0x38, 0x38, 255}, {0xFF, 0x9D, 0x97, 255}, {0xFF, 0x70, 0x1F, 255}, {0xFF, 0xB2, 0x1D, 255},
	{0xCF, 0xD2, 0x31, 255}, {0x48, 0xF9, 0x0A, 255}, {0x92, 0xCC, 0x17, 255}, {0x3D, 0xDB, 0x86, 255},
	{0x1A, 0x93, 0x34, 255}, {0x00, 0xD4, 0xBB, 255}, {0x2C, 0x99, 0xA8, 255}, {0x00, 0xC2, 0xFF, 255},
	{0x34, 0x45, 0x93, 255}, {0x64, 0x73, 0xFF, 255}, {0x00, 0x18, 0xEC, 255}, {0x84, 0x38, 0xFF, 255},
	{0x52, 0x00, 0x85, 255}, {0xCB, 0x38, 0xFF, 255}, {0xFF, 0x95, 0xC8, 255}, {0xFF, 0x37, 0xC7, 255},
}

// Color is the colour boxes of a class are drawn in.
func Color(class int) color.RGBA {
	if class < 0 {
		class = -class
	}
	return palette[class%len(palette)]
}

// Draw returns a copy of img with each detection's box and "label score"
// drawn on it. Boxes are clipped to the image.
func Draw(img image.Image, dets []models.Detection) *image.RGBA {
	b := img.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(out, out.Bounds(), img, b.Min, draw.Src)
	thick := max(2, int(math.Round(float64(min(b.Dx(), b.Dy()))/300)))
	face := basicfont.Face7x13
	// Draw weakest first so the strongest ends up on top.
	for i := len(dets) - 1; i >= 0; i-- {
		d := dets[i]
		c := Color(d.ClassID)
		r := image.Rect(int(d.Box[0]), int(d.Box[1]), int(math.Ceil(float64(d.Box[2]))), int(math.Ceil(float64(d.Box[3])))).Intersect(out.Bounds())
		if r.Empty() {
			continue
		}
		frame(out, r, thick, c)
		name := d.Label
		if name == "" {
			name = fmt.Sprint(d.ClassID)
		}
		text := fmt.Sprintf("%s %.2f", name, d.Score)
		w := font.MeasureString(face, text).Ceil() + 4
		h := face.Metrics().Height.Ceil() + 2
		// The label sits above the box, or inside it at the top edge of the image.
		lr := image.Rect(r.Min.X, r.Min.Y-h, r.Min.X+w, r.Min.Y)
		if lr.Min.Y < 0 {
			lr = lr.Add(image.Pt(0, h))
		}
		if lr.Max.X > out.Bounds().Max.X {
			lr = lr.Sub(image.Pt(lr.Max.X-out.Bounds().Max.X, 0))
		}
		draw.Draw(out, lr, image.NewUniform(c), image.Point{}, draw.Src)
		fg := color.Black
		if lum(c) < 140 {
			fg = color.White
		}
		dr := font.Drawer{Dst: out, Src: image.NewUniform(fg), Face: face,
			Dot: fixed.P(lr.Min.X+2, lr.Max.Y-1-face.Metrics().Descent.Ceil())}
		dr.DrawString(text)
	}
	return out
}

func lum(c color.RGBA) int { return (299*int(c.R) + 587*int(c.G) + 114*int(c.B)) / 1000 }

func frame(img *image.RGBA, r image.Rectangle, t int, c color.RGBA) {
	u := image.NewUniform(c)
	for _, s := range []image.Rectangle{
		{r.Min, image.Pt(r.Max.X, r.Min.Y+t)},
		{image.Pt(r.Min.X, r.Max.Y-t), r.Max},
		{r.Min, image.Pt(r.Min.X+t, r.Max.Y)},
		{image.Pt(r.Max.X-t, r.Min.Y), r.Max},
	} {
		draw.Draw(img, s.Intersect(r), u, image.Point{}, draw.Src)
	}
}
