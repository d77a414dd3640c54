package sim

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"image"
	"image/color"
	"image/jpeg"
	"time"

	"edgefleet/fleet/api"
)

// Snapshots. A virtual device answers a snapshot command as an agent does:
// for its one camera (SimCamera, the camera its state and telemetry list) it
// replies on api.SnapshotTopic with a small real JPEG, encoded once per
// device from a generated frame whose colour comes from the device id; for
// any other camera it replies api.SnapshotUnknownCamera. The reply is
// encoded with api.EncodeSnapshotReply, the contract fleetd parses.

// SimCamera is the id of the one camera every virtual device has.
const SimCamera = "cam0"

// Size of a virtual device's snapshot.
const (
	SnapshotWidth  = 160
	SnapshotHeight = 120
)

// answerSnapshot publishes the reply to one snapshot command (c validated:
// c.Snapshot is set). It runs on the read loop; the JPEG is encoded once.
func (d *device) answerSnapshot(c api.Command) {
	h := api.SnapshotHeader{DeviceID: d.id, RequestID: c.JobID, Camera: c.Snapshot.Camera}
	r := api.SnapshotReply{Header: h}
	switch jpg, err := d.snapshotJPEG(); {
	case c.Snapshot.Camera != SimCamera:
		r.Header.Error, r.Header.Reason = api.SnapshotUnknownCamera, fmt.Sprintf("no camera %q (cameras: %s)", c.Snapshot.Camera, SimCamera)
	case err != nil:
		r.Header.Error, r.Header.Reason = api.SnapshotFailed, err.Error()
	case len(jpg) > c.Snapshot.Limit():
		r.Header.Error, r.Header.Reason = api.SnapshotFailed, fmt.Sprintf("image of %d bytes exceeds the cap of %d", len(jpg), c.Snapshot.Limit())
	default:
		r.JPEG, r.Header.Width, r.Header.Height, r.Header.Time = jpg, SnapshotWidth, SnapshotHeight, time.Now().UnixMilli()
	}
	p, err := api.EncodeSnapshotReply(&r)
	if err != nil {
		return // cannot happen for the replies built above
	}
	d.cl.publish(api.SnapshotTopic(d.id, c.JobID), 1, false, p)
}

// snapshotJPEG returns the device's frame as a JPEG, encoding it on first use.
func (d *device) snapshotJPEG() ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.snapJPEG != nil {
		return d.snapJPEG, nil
	}
	h := fnv.New32a()
	h.Write([]byte(d.id))
	s := h.Sum32()
	bg := color.RGBA{R: uint8(s), G: uint8(s >> 8), B: uint8(s >> 16), A: 255}
	img := image.NewRGBA(image.Rect(0, 0, SnapshotWidth, SnapshotHeight))
	for y := range SnapshotHeight {
		for x := range SnapshotWidth {
			c := bg
			if (x/20+y/20)%2 == 0 { // a checkerboard, so the frame is not flat
				c = color.RGBA{R: 255 - bg.R, G: 255 - bg.G, B: 255 - bg.B, A: 255}
			}
			img.SetRGBA(x, y, c)
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 80}); err != nil {
		return nil, fmt.Errorf("sim: snapshot %s: %w", d.id, err)
	}
	d.snapJPEG = b.Bytes()
	return d.snapJPEG, nil
}
