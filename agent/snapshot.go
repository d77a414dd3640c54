package agent

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"time"

	"golang.org/x/image/draw"

	"edgefleet/models/annotate"
)

// Snapshot errors.
var (
	ErrUnknownCamera = errors.New("agent: unknown camera")
	ErrNoFrame       = errors.New("agent: no frame from the camera yet")
	ErrTooLarge      = errors.New("agent: snapshot does not fit the size cap")
)

// Snapshot is one camera's newest processed frame, annotated, as a JPEG.
type Snapshot struct {
	JPEG          []byte
	Width, Height int
	// Time is when the frame was captured.
	Time time.Time
}

// snapshotQualities are tried in turn until the JPEG fits; then the image
// is halved and they are tried again.
var snapshotQualities = []int{85, 70, 55, 40}

// SnapshotJPEG encodes the newest processed frame of camera with its
// detections and region drawn (as /snapshot/<camera>.jpg serves it) in at
// most maxBytes: it lowers the quality, then halves the size (down to
// 80 pixels wide) until the JPEG fits, else ErrTooLarge.
func (a *Agent) SnapshotJPEG(camera string, maxBytes int) (Snapshot, error) {
	img, t, err := a.annotated(camera)
	if err != nil {
		return Snapshot{}, err
	}
	var buf bytes.Buffer
	for {
		for _, q := range snapshotQualities {
			buf.Reset()
			if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: q}); err != nil {
				return Snapshot{}, fmt.Errorf("agent: snapshot %s: %w", camera, err)
			}
			if buf.Len() <= maxBytes {
				b := img.Bounds()
				return Snapshot{JPEG: bytes.Clone(buf.Bytes()), Width: b.Dx(), Height: b.Dy(), Time: t}, nil
			}
		}
		b := img.Bounds()
		if b.Dx()/2 < 80 {
			return Snapshot{}, fmt.Errorf("%w: %s: %d bytes at %dx%d, cap %d", ErrTooLarge, camera, buf.Len(), b.Dx(), b.Dy(), maxBytes)
		}
		half := image.NewRGBA(image.Rect(0, 0, b.Dx()/2, b.Dy()/2))
		draw.ApproxBiLinear.Scale(half, half.Rect, img, b, draw.Src, nil)
		img = half
	}
}

// annotated returns the newest frame of camera with its detections and
// region drawn, and its capture time.
func (a *Agent) annotated(camera string) (*image.RGBA, time.Time, error) {
	f, dets, region, ok := a.pipe.Snapshot(camera)
	if !ok {
		for _, c := range a.opts.Cameras {
			if c.ID == camera {
				return nil, time.Time{}, fmt.Errorf("%w: %s", ErrNoFrame, camera)
			}
		}
		return nil, time.Time{}, fmt.Errorf("%w: %q", ErrUnknownCamera, camera)
	}
	img := annotate.Draw(f.Image, dets)
	drawPolygon(img, region, color.RGBA{0, 220, 255, 255})
	return img, f.Time, nil
}
