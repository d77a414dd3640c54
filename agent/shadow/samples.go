package shadow

import (
	"bytes"
	"fmt"
	"image"
	"image/draw"
	"image/jpeg"
	"slices"
	"sync"
	"time"

	xdraw "golang.org/x/image/draw"
	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"edgefleet/fleet/api"
	"edgefleet/models"
	"edgefleet/models/annotate"
)

// Samples keeps the N frames where the two models disagree most (1 - the
// frame's F1; a tie goes to the frame with more boxes), each as one encoded
// JPEG: serving boxes on the left, candidate boxes on the right. Only the
// current top N are kept, encoded, so memory is bounded by N x MaxBytes. It is
// safe for concurrent use.
type Samples struct {
	n, maxBytes int
	mu          sync.Mutex
	keep        []kept
}

type kept struct {
	s     api.ShadowSample
	boxes int
}

// NewSamples keeps n samples of at most maxBytes each (api.MaxShadowSamples
// and api.MaxShadowSampleBytes when 0).
func NewSamples(n, maxBytes int) *Samples {
	if n <= 0 {
		n = api.MaxShadowSamples
	}
	if maxBytes <= 0 {
		maxBytes = api.MaxShadowSampleBytes
	}
	return &Samples{n: n, maxBytes: maxBytes}
}

// better orders samples: more disagreement first, then more boxes.
func better(d1 float64, b1 int, d2 float64, b2 int) bool {
	if d1 != d2 {
		return d1 > d2
	}
	return b1 > b2
}

// Offer considers one frame; it encodes the picture only when the frame
// enters the top N. Frames where the models agree fully are not kept.
func (s *Samples) Offer(camera string, t time.Time, img image.Image, serving, candidate []models.Detection, r FrameResult) error {
	dis := 1 - r.F1()
	boxes := r.Serving + r.Candidate
	if dis <= 0 || !s.enters(dis, boxes) {
		return nil
	}
	jpg, err := SideBySide(img, serving, candidate, s.maxBytes)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keep = append(s.keep, kept{s: api.ShadowSample{Camera: camera, TimeUs: t.UnixMicro(), Disagreement: dis, JPEG: jpg}, boxes: boxes})
	slices.SortStableFunc(s.keep, func(a, b kept) int {
		switch {
		case better(a.s.Disagreement, a.boxes, b.s.Disagreement, b.boxes):
			return -1
		case better(b.s.Disagreement, b.boxes, a.s.Disagreement, a.boxes):
			return 1
		}
		return 0
	})
	if len(s.keep) > s.n {
		clear(s.keep[s.n:])
		s.keep = s.keep[:s.n]
	}
	return nil
}

func (s *Samples) enters(dis float64, boxes int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.keep) < s.n {
		return true
	}
	w := s.keep[len(s.keep)-1]
	return better(dis, boxes, w.s.Disagreement, w.boxes)
}

// List returns the kept samples, most disagreement first.
func (s *Samples) List() []api.ShadowSample {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]api.ShadowSample, len(s.keep))
	for i, k := range s.keep {
		out[i] = k.s
	}
	return out
}

// Bytes is the size of the kept JPEGs.
func (s *Samples) Bytes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, k := range s.keep {
		n += len(k.s.JPEG)
	}
	return n
}

// SideBySide draws the serving boxes on a copy of img on the left and the
// candidate's on the right, and encodes it as a JPEG of at most maxBytes,
// lowering quality, then scale, until it fits.
func SideBySide(img image.Image, serving, candidate []models.Detection, maxBytes int) ([]byte, error) {
	l, r := annotate.Draw(img, serving), annotate.Draw(img, candidate)
	w, h := l.Rect.Dx(), l.Rect.Dy()
	if w == 0 || h == 0 {
		return nil, fmt.Errorf("shadow: sample: empty image")
	}
	both := image.NewRGBA(image.Rect(0, 0, 2*w, h))
	draw.Draw(both, l.Rect, l, image.Point{}, draw.Src)
	draw.Draw(both, l.Rect.Add(image.Pt(w, 0)), r, image.Point{}, draw.Src)
	divide(both, w)
	var pic image.Image = both
	if 2*w > 1280 { // keep samples a screen's width
		pic = scale(both, 1280, h*1280/(2*w))
	}
	var buf bytes.Buffer
	for _, q := range []int{80, 65, 50, 35} {
		for range 6 {
			buf.Reset()
			if err := jpeg.Encode(&buf, pic, &jpeg.Options{Quality: q}); err != nil {
				return nil, fmt.Errorf("shadow: sample: %w", err)
			}
			if buf.Len() <= maxBytes {
				return bytes.Clone(buf.Bytes()), nil
			}
			if q > 35 {
				break // try a lower quality first
			}
			b := pic.Bounds()
			if b.Dx() < 32 {
				break
			}
			pic = scale(pic, b.Dx()*3/4, b.Dy()*3/4)
		}
	}
	return nil, fmt.Errorf("shadow: sample: cannot encode within %d bytes", maxBytes)
}

// divide draws the line between the halves and names them at the bottom.
func divide(img *image.RGBA, w int) {
	h := img.Rect.Dy()
	draw.Draw(img, image.Rect(w-1, 0, w+1, h), image.White, image.Point{}, draw.Src)
	face := basicfont.Face7x13
	for i, name := range []string{"serving", "candidate"} {
		tw := font.MeasureString(face, name).Ceil() + 6
		r := image.Rect(i*w, h-16, i*w+tw, h)
		draw.Draw(img, r, image.Black, image.Point{}, draw.Src)
		d := font.Drawer{Dst: img, Src: image.White, Face: face, Dot: fixed.P(r.Min.X+3, h-4)}
		d.DrawString(name)
	}
}

func scale(src image.Image, w, h int) *image.RGBA {
	dst := image.NewRGBA(image.Rect(0, 0, max(w, 1), max(h, 1)))
	xdraw.ApproxBiLinear.Scale(dst, dst.Rect, src, src.Bounds(), xdraw.Src, nil)
	return dst
}
