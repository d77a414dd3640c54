package runtime

import (
	"fmt"
	"image"

	"edgefleet/agent"
	"edgefleet/agent/capture"
	"edgefleet/agent/config"
)

// openCameras builds a source per configured camera.
func openCameras(cfg *config.Config) ([]agent.Camera, error) {
	var cams []agent.Camera
	fail := func(err error) ([]agent.Camera, error) {
		for _, c := range cams {
			c.Source.Close()
		}
		return nil, err
	}
	for i, c := range cfg.Cameras {
		var src capture.Source
		switch c.Source {
		case config.SourceV4L2:
			src = capture.NewV4L2(capture.DeviceConfig{Path: c.Device, Format: c.Format, Width: c.Width, Height: c.Height, FPS: c.FPS}, capture.V4L2Options{})
		case config.SourceFiles:
			f, err := capture.OpenFiles(c.Path, capture.FilesOptions{FPS: c.FPS})
			if err != nil {
				return fail(fmt.Errorf("cameras[%d].path: %w", i, err))
			}
			src = f
		case config.SourceMJPEG:
			src = capture.NewMJPEG(c.URL, capture.MJPEGOptions{})
		case config.SourceSynth:
			var sprites []image.Image
			if c.Path != "" {
				s, err := capture.LoadSprites(c.Path)
				if err != nil {
					return fail(fmt.Errorf("cameras[%d].path: %w", i, err))
				}
				sprites = s
			}
			src = capture.NewSynth(capture.SynthOptions{Width: c.Width, Height: c.Height, FPS: c.FPS, Seed: c.Seed, Sprites: sprites})
		default:
			return fail(fmt.Errorf("cameras[%d].source: unknown source %q", i, c.Source))
		}
		var classes map[string]bool
		if len(c.Classes) > 0 {
			classes = map[string]bool{}
			for _, cl := range c.Classes {
				classes[cl] = true
			}
		}
		cams = append(cams, agent.Camera{ID: c.ID, Source: src, Filter: agent.Filter{Region: c.Region, Classes: classes, MinScore: c.MinScore}})
	}
	return cams, nil
}
