package agent

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"
	"math"

	"golang.org/x/image/draw"

	"edgefleet/fleet/api"
	"edgefleet/models"
	"edgefleet/models/annotate"
)

// Event snapshot sizes: the crop's longest side and the thumbnail's width,
// at most; and the most tracks of a camera that hold a snapshot at once
// (the tracker's first slots), which bounds their memory to
// maxShots × (192² + 320×240) × 4 bytes ≈ 14 MiB in a crowd, a few hundred
// KiB per track on a belt.
const (
	cropMax    = 192
	thumbWidth = 320
	maxShots   = 32
)

// bestShot is the picture of one track at its best frame so far: the crop
// of the object and a small copy of the whole frame, in buffers reused from
// track to track in the same tracker slot.
type bestShot struct {
	crop, thumb *image.RGBA
	box         [4]float32 // in thumbnail pixels
	class       int
	label       string
	score       float32
	timeUs      int64
	ok          bool
}

// shots keeps one bestShot per tracker slot of a camera.
type shots struct {
	slots []bestShot
	buf   bytes.Buffer
}

// take copies the crop of box and the thumbnail of img into slot's buffers.
func (s *shots) take(slot int, img image.Image, box [4]float32, class int, label string, score float32, timeUs int64) {
	if slot >= maxShots {
		return
	}
	for len(s.slots) <= slot {
		s.slots = append(s.slots, bestShot{})
	}
	sh := &s.slots[slot]
	b := img.Bounds()
	// The object with a tenth of its size around it, within the frame.
	mx, my := (box[2]-box[0])/10, (box[3]-box[1])/10
	r := image.Rect(int(box[0]-mx), int(box[1]-my), int(math.Ceil(float64(box[2]+mx))), int(math.Ceil(float64(box[3]+my)))).
		Add(b.Min).Intersect(b)
	if r.Empty() {
		return
	}
	cw, ch := r.Dx(), r.Dy()
	if k := float64(cropMax) / float64(max(cw, ch)); k < 1 {
		cw, ch = max(1, int(float64(cw)*k)), max(1, int(float64(ch)*k))
	}
	sh.crop = reuse(sh.crop, cw, ch)
	draw.ApproxBiLinear.Scale(sh.crop, sh.crop.Rect, img, r, draw.Src, nil)
	tw := min(thumbWidth, b.Dx())
	th := max(1, b.Dy()*tw/max(1, b.Dx()))
	sh.thumb = reuse(sh.thumb, tw, th)
	draw.NearestNeighbor.Scale(sh.thumb, sh.thumb.Rect, img, b, draw.Src, nil)
	k := float32(tw) / float32(b.Dx())
	sh.box = [4]float32{box[0] * k, box[1] * k, box[2] * k, box[3] * k}
	sh.class, sh.label, sh.score, sh.timeUs, sh.ok = class, label, score, timeUs, true
}

// reuse returns img when it is w×h, else a new image of that size.
func reuse(img *image.RGBA, w, h int) *image.RGBA {
	if img != nil && img.Rect.Dx() == w && img.Rect.Dy() == h {
		return img
	}
	if img != nil && cap(img.Pix) >= 4*w*h {
		return &image.RGBA{Pix: img.Pix[:4*w*h], Stride: 4 * w, Rect: image.Rect(0, 0, w, h)}
	}
	return image.NewRGBA(image.Rect(0, 0, w, h))
}

// encode returns slot's snapshot as JPEGs of at most api.MaxEventSnapshot
// bytes each, and forgets it; nil when the slot has none.
func (s *shots) encode(slot int) (*api.EventSnapshot, error) {
	if slot >= len(s.slots) || !s.slots[slot].ok {
		return nil, nil
	}
	sh := &s.slots[slot]
	sh.ok = false
	crop, err := s.fit(sh.crop)
	if err != nil {
		return nil, fmt.Errorf("crop: %w", err)
	}
	thumb := annotate.Draw(sh.thumb, []models.Detection{{ClassID: sh.class, Label: sh.label, Score: sh.score, Box: sh.box}})
	th, err := s.fit(thumb)
	if err != nil {
		return nil, fmt.Errorf("thumbnail: %w", err)
	}
	return &api.EventSnapshot{Crop: crop, Thumb: th, TimeUs: sh.timeUs}, nil
}

// fit encodes img as a JPEG of at most api.MaxEventSnapshot bytes, lowering
// the quality, then halving the size.
func (s *shots) fit(img *image.RGBA) ([]byte, error) {
	for {
		for _, q := range snapshotQualities {
			s.buf.Reset()
			if err := jpeg.Encode(&s.buf, img, &jpeg.Options{Quality: q}); err != nil {
				return nil, err
			}
			if s.buf.Len() <= api.MaxEventSnapshot {
				return bytes.Clone(s.buf.Bytes()), nil
			}
		}
		b := img.Bounds()
		if b.Dx() < 16 || b.Dy() < 16 {
			return nil, fmt.Errorf("%w: %d bytes at %dx%d", ErrTooLarge, s.buf.Len(), b.Dx(), b.Dy())
		}
		half := image.NewRGBA(image.Rect(0, 0, b.Dx()/2, b.Dy()/2))
		draw.ApproxBiLinear.Scale(half, half.Rect, img, b, draw.Src, nil)
		img = half
	}
}
