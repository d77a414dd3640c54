package eventstest

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"time"

	"edgefleet/fleet/api"
)

// SampleCounts are the line crossings of Sample: line "exit" of camera
// "belt-a", by direction and label.
var SampleCounts = map[[2]string]int{{api.DirectionIn, "bottle"}: 3, {api.DirectionIn, "cup"}: 1, {api.DirectionOut, "bottle"}: 2}

// Sample returns a device's analytics events of the two hours before now,
// seq 1.. in time order: six crossings of line "exit" on camera "belt-a"
// (SampleCounts), each with a crop and a thumbnail, a track_end with a
// thumbnail only, and a zone_enter and zone_exit of zone "cell" without
// pictures.
func Sample(device string, now time.Time) []Event {
	var out []Event
	add := func(ago time.Duration, e api.Event) {
		e.Seq, e.CameraID, e.V = uint64(len(out)+1), "belt-a", api.EventVersion
		e.Time = now.Add(-ago).UnixMicro()
		e.Score, e.Box = 0.8, [4]float32{40, 30, 90, 80}
		out = append(out, Event{Device: device, Event: e})
	}
	cross := func(ago time.Duration, dir, label string, id uint64) {
		add(ago, api.Event{Type: api.TypeLineCross, Label: label, Track: &api.TrackInfo{ID: id},
			Line: &api.LineCross{Line: "exit", Direction: dir}})
		out[len(out)-1].Snapshot = &api.EventSnapshot{Crop: JPEG(48, 48, uint8(id)), Thumb: JPEG(160, 90, uint8(id)), TimeUs: out[len(out)-1].Time}
	}
	cross(110*time.Minute, api.DirectionIn, "bottle", 1)
	cross(100*time.Minute, api.DirectionIn, "bottle", 2)
	cross(70*time.Minute, api.DirectionOut, "bottle", 3)
	add(65*time.Minute, api.Event{Type: api.TypeZoneEnter, Label: "person", Zone: &api.ZoneInfo{Zone: "cell", DwellMs: 2000}})
	add(60*time.Minute, api.Event{Type: api.TypeZoneExit, Label: "person", Zone: &api.ZoneInfo{Zone: "cell", DwellMs: 9000}})
	cross(40*time.Minute, api.DirectionIn, "cup", 4)
	cross(20*time.Minute, api.DirectionIn, "bottle", 5)
	cross(10*time.Minute, api.DirectionOut, "bottle", 6)
	first := now.Add(-12 * time.Minute).UnixMicro()
	add(5*time.Minute, api.Event{Type: api.TypeTrackEnd, Label: "bottle",
		Track: &api.TrackInfo{ID: 6, FirstUs: first, LastUs: first + 4e6, Frames: 20, Path: [][2]float32{{0.2, 0.5}, {0.8, 0.5}}}})
	out[len(out)-1].Snapshot = &api.EventSnapshot{Thumb: JPEG(160, 90, 6), TimeUs: first}
	return out
}

// JPEG returns a w×h JPEG of one colour picked by shade.
func JPEG(w, h int, shade uint8) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	c := color.RGBA{R: 40 * shade, G: 200 - 20*shade, B: 120, A: 255}
	for y := range h {
		for x := range w {
			img.SetRGBA(x, y, c)
		}
	}
	var b bytes.Buffer
	jpeg.Encode(&b, img, &jpeg.Options{Quality: 70})
	return b.Bytes()
}
