package capture

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"math"
	"math/rand/v2"
	"os"

	xdraw "golang.org/x/image/draw"
)

// Synth is a synthetic camera looking down at a conveyor belt on which
// objects ride from left to right. Frame n is a pure function of the options
// and n: the same seed gives the same pictures on every machine. The objects
// are the given sprites (e.g. photos a COCO model recognises, so a demo
// produces real detections) or, without sprites, coloured shapes.
// Not safe for concurrent use, except Close.
type Synth struct {
	opts    SynthOptions
	sprites []*image.RGBA
	speed   int // belt pixels per frame
	spacing int // belt pixels between object slots
	belt    image.Rectangle
	pace    *pacer
	n       int
	c       closer
}

// SynthOptions configure NewSynth.
type SynthOptions struct {
	Width, Height int     // default 640x480
	FPS           float64 // default 5
	Seed          uint64
	// Sprites are scaled to about the belt's height and moved along it.
	Sprites []image.Image
	// Speed is how far the belt moves per frame, in pixels; 0 means about
	// six seconds for an object to cross the frame at FPS.
	Speed int
}

// Placed is where object Index sits in a frame, with the sprite it shows
// (-1 for a drawn shape).
type Placed struct {
	Index  int
	Sprite int
	Rect   image.Rectangle
}

// NewSynth makes a synthetic belt camera.
func NewSynth(opts SynthOptions) *Synth {
	if opts.Width <= 0 || opts.Height <= 0 {
		opts.Width, opts.Height = 640, 480
	}
	if opts.FPS <= 0 {
		opts.FPS = 5
	}
	W, H := opts.Width, opts.Height
	belt := image.Rect(0, H*15/100, W, H*85/100)
	s := &Synth{opts: opts, belt: belt, pace: newPacer(opts.FPS), c: newCloser()}
	r := rand.New(rand.NewPCG(opts.Seed, 0x5eed))
	// About six seconds for an object to cross, whatever the frame rate.
	s.speed = max(1, int(float64(W)/(6*opts.FPS))+r.IntN(3))
	if opts.Speed > 0 {
		s.speed = opts.Speed
	}
	maxW := belt.Dy() * 8 / 10
	for _, sp := range opts.Sprites {
		scaled := scaleTo(sp, belt.Dy()*8/10, W*6/10)
		s.sprites = append(s.sprites, scaled)
		maxW = max(maxW, scaled.Rect.Dx())
	}
	s.spacing = maxW + max(W/8, 16)
	// Frames need only the scaled copies: let the full-size pictures go
	// (1 to 4 MiB of RGBA per camera for the test photos).
	s.opts.Sprites = nil
	return s
}

// scaleTo scales img to height h (at most width w), keeping its aspect.
func scaleTo(img image.Image, h, w int) *image.RGBA {
	b := img.Bounds()
	if b.Dx() <= 0 || b.Dy() <= 0 {
		return image.NewRGBA(image.Rect(0, 0, 1, 1))
	}
	sw, sh := b.Dx()*h/b.Dy(), h
	if sw > w {
		sw, sh = w, b.Dy()*w/b.Dx()
	}
	dst := image.NewRGBA(image.Rect(0, 0, max(sw, 1), max(sh, 1)))
	xdraw.ApproxBiLinear.Scale(dst, dst.Rect, img, b, xdraw.Src, nil)
	return dst
}

// LoadSprites decodes picture files (or every picture in a folder) for Synth.
func LoadSprites(path string) ([]image.Image, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("capture: synth sprites: %w", err)
	}
	paths := []string{path}
	if st.IsDir() {
		if paths, err = imageFiles(path); err != nil {
			return nil, fmt.Errorf("capture: synth sprites: %w", err)
		}
	}
	var out []image.Image
	for _, p := range paths {
		img, err := decodeFile(p)
		if err != nil {
			return nil, fmt.Errorf("capture: synth sprites: %w", err)
		}
		out = append(out, img)
	}
	return out, nil
}

// object k's own stable random properties.
func (s *Synth) object(k int) (sprite int, y, jitter, w, h int, col color.RGBA) {
	r := rand.New(rand.NewPCG(s.opts.Seed, uint64(k)+1))
	bh := s.belt.Dy()
	if len(s.sprites) > 0 {
		sprite = r.IntN(len(s.sprites))
		w, h = s.sprites[sprite].Rect.Dx(), s.sprites[sprite].Rect.Dy()
	} else {
		sprite = -1
		w = bh/4 + r.IntN(bh/3+1)
		h = bh/4 + r.IntN(bh/3+1)
		col = color.RGBA{uint8(64 + r.IntN(192)), uint8(64 + r.IntN(192)), uint8(64 + r.IntN(192)), 255}
	}
	slack := max(s.spacing-w-8, 1)
	jitter = r.IntN(slack)
	y = s.belt.Min.Y + r.IntN(max(bh-h, 1))
	return
}

// Objects lists the objects visible in frame n, left to right.
func (s *Synth) Objects(n int) []Placed {
	W := s.opts.Width
	// Object k sits at belt position k*spacing+jitter; the belt has moved
	// n*speed, and starts full: at n=0 object 0 is at the right edge.
	base := n*s.speed + W
	kMin := max(0, (n*s.speed-s.spacing)/s.spacing-1)
	kMax := base/s.spacing + 1
	var out []Placed
	for k := kMax; k >= kMin; k-- {
		sprite, y, jitter, w, h, _ := s.object(k)
		x := base - (k*s.spacing + jitter) - w
		r := image.Rect(x, y, x+w, y+h)
		if r.Overlaps(image.Rect(0, 0, W, s.opts.Height)) {
			out = append(out, Placed{Index: k, Sprite: sprite, Rect: r})
		}
	}
	return out
}

// Render draws frame n.
func (s *Synth) Render(n int) *image.RGBA {
	W, H := s.opts.Width, s.opts.Height
	img := image.NewRGBA(image.Rect(0, 0, W, H))
	fill(img, img.Rect, color.RGBA{46, 52, 58, 255})
	fill(img, s.belt, color.RGBA{96, 96, 92, 255})
	// Slats move with the belt so motion is visible even without objects.
	slat := 48
	off := (n * s.speed) % slat
	for x := off - slat; x < W; x += slat {
		fill(img, image.Rect(x, s.belt.Min.Y, x+4, s.belt.Max.Y).Intersect(s.belt), color.RGBA{78, 78, 74, 255})
	}
	fill(img, image.Rect(0, s.belt.Min.Y-3, W, s.belt.Min.Y), color.RGBA{200, 170, 40, 255})
	fill(img, image.Rect(0, s.belt.Max.Y, W, s.belt.Max.Y+3), color.RGBA{200, 170, 40, 255})
	for _, p := range s.Objects(n) {
		if p.Sprite >= 0 {
			sp := s.sprites[p.Sprite]
			xdraw.Draw(img, p.Rect, sp, sp.Rect.Min, xdraw.Src)
			continue
		}
		_, _, _, _, _, col := s.object(p.Index)
		if p.Index%2 == 0 {
			fill(img, p.Rect, col)
		} else {
			ellipse(img, p.Rect, col)
		}
	}
	return img
}

// Next returns the next frame at the configured rate.
func (s *Synth) Next(ctx context.Context) (Frame, error) {
	if s.c.closed() {
		return Frame{}, ErrClosed
	}
	ctx, cancel := s.c.bind(ctx)
	defer cancel()
	t, err := s.pace.wait(ctx)
	if err != nil {
		if s.c.closed() {
			return Frame{}, ErrClosed
		}
		return Frame{}, err
	}
	img := s.Render(s.n)
	s.n++
	return Frame{Image: img, Time: t}, nil
}

// Close stops the source; Next then returns ErrClosed.
func (s *Synth) Close() error {
	s.c.close()
	return nil
}

func fill(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	r = r.Intersect(img.Rect)
	for y := r.Min.Y; y < r.Max.Y; y++ {
		row := img.Pix[img.PixOffset(r.Min.X, y):img.PixOffset(r.Max.X, y)]
		for i := 0; i < len(row); i += 4 {
			row[i], row[i+1], row[i+2], row[i+3] = c.R, c.G, c.B, c.A
		}
	}
}

func ellipse(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	cx, cy := float64(r.Min.X+r.Max.X)/2, float64(r.Min.Y+r.Max.Y)/2
	rx, ry := float64(r.Dx())/2, float64(r.Dy())/2
	cl := r.Intersect(img.Rect)
	for y := cl.Min.Y; y < cl.Max.Y; y++ {
		dy := (float64(y) + 0.5 - cy) / ry
		if dy*dy > 1 {
			continue
		}
		half := rx * math.Sqrt(1-dy*dy)
		x0 := max(cl.Min.X, int(math.Ceil(cx-half-0.5)))
		x1 := min(cl.Max.X, int(math.Floor(cx+half-0.5))+1)
		for x := x0; x < x1; x++ {
			i := img.PixOffset(x, y)
			img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = c.R, c.G, c.B, c.A
		}
	}
}
