package runtime

import (
	"strings"
	"testing"
	"time"

	"edgefleet/agent"
	"edgefleet/agent/config"
)

// TestOpenCamerasTracking: a camera with lines, zones, a tracker section or
// detections other than all gets a tracker with its geometry; one without
// any stays detections only.
func TestOpenCamerasTracking(t *testing.T) {
	cfg, err := config.Parse(strings.NewReader(`
device_id: box-1
model: {path: /m.tflite}
cameras:
  - {id: plain, source: synth}
  - id: counted
    source: synth
    lines: [{id: exit, points: [[0.5, 1], [0.5, 0]]}]
    zones: [{id: cell, polygon: [[0.1, 0.1], [0.4, 0.1], [0.4, 0.4]], min_dwell: 3s}]
    detections: off
  - {id: tuned, source: synth, tracker: {track_buffer: 9}}
  - {id: sampled, source: synth, detections: sampled, detections_every: 2s}
spool: {path: /tmp/s.db}
`))
	if err != nil {
		t.Fatal(err)
	}
	cams, err := openCameras(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, c := range cams {
			c.Source.Close()
		}
	}()
	if cams[0].Tracking != nil || cams[0].Detections != agent.DetectionsAll {
		t.Errorf("plain: tracking %+v, detections %q", cams[0].Tracking, cams[0].Detections)
	}
	c := cams[1]
	if c.Tracking == nil || len(c.Tracking.Analytics.Lines) != 1 || c.Tracking.Analytics.Zones[0].MinDwell != 3*time.Second || c.Detections != agent.DetectionsOff {
		t.Errorf("counted: %+v, detections %q", c.Tracking, c.Detections)
	}
	if c := cams[2]; c.Tracking == nil || c.Tracking.Tracker.Buffer != 9 || c.Tracking.Tracker.MinHits != 2 {
		t.Errorf("tuned: %+v", c.Tracking)
	}
	if c := cams[3]; c.Tracking == nil || c.Detections != agent.DetectionsSampled || c.DetectionsEvery != 2*time.Second {
		t.Errorf("sampled: %+v %q %v", c.Tracking, c.Detections, c.DetectionsEvery)
	}
}
