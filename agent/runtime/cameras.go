package runtime

import (
	"fmt"
	"image"
	"strings"

	"edgefleet/agent"
	"edgefleet/agent/capture"
	"edgefleet/agent/config"
)

// resolveClasses sets each camera's class filter from cameras[i].classes,
// names or ids checked against the labels of the model serving: an unknown
// one is an error naming the key and the model.
func (r *Runtime) resolveClasses() error {
	labels := r.serving.Labels()
	resolve := func(key string, names []string) (map[string]bool, error) {
		if len(names) == 0 {
			return nil, nil
		}
		ids, bad := agent.ClassIDs(names, labels)
		if bad != "" {
			name, version := r.serving.Model()
			if name == "" {
				name = r.cfg.Model.Path
			}
			return nil, fmt.Errorf("%s: %q is not a label of model %s %s (%s)", key, bad, name, version, labelList(labels))
		}
		classes := map[string]bool{}
		for _, id := range ids {
			classes[agent.ClassLabel(labels, id)] = true
		}
		return classes, nil
	}
	for i, c := range r.cfg.Cameras {
		classes, err := resolve(fmt.Sprintf("cameras[%d].classes", i), c.Classes)
		if err != nil {
			return err
		}
		r.cams[i].Filter.Classes = classes
		tk := r.cams[i].Tracking
		if tk == nil {
			continue
		}
		// Lines and zones name classes as labels of the model, or ids.
		for j, l := range c.Lines {
			if tk.Analytics.Lines[j].Classes, err = resolve(fmt.Sprintf("cameras[%d].lines[%d].classes", i, j), l.Classes); err != nil {
				return err
			}
		}
		for j, z := range c.Zones {
			if tk.Analytics.Zones[j].Classes, err = resolve(fmt.Sprintf("cameras[%d].zones[%d].classes", i, j), z.Classes); err != nil {
				return err
			}
		}
	}
	return nil
}

// labelList shows a model's labels in an error, shortened.
func labelList(labels []string) string {
	if len(labels) == 0 {
		return "it names no labels: use class ids"
	}
	const most = 12
	shown := labels[:min(len(labels), most)]
	s := "labels: " + strings.Join(shown, ", ")
	if len(labels) > most {
		s += fmt.Sprintf(", ... (%d in all)", len(labels))
	}
	return s
}

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
			src = capture.NewSynth(capture.SynthOptions{Width: c.Width, Height: c.Height, FPS: c.FPS, Seed: c.Seed, Speed: c.Speed, Sprites: sprites})
		default:
			return fail(fmt.Errorf("cameras[%d].source: unknown source %q", i, c.Source))
		}
		// Classes are resolved against the model's labels once it is open.
		cam := agent.Camera{ID: c.ID, Source: src, Filter: agent.Filter{Region: c.Region, MinScore: c.MinScore},
			Detections: c.Detections, DetectionsEvery: c.DetectionsEvery}
		if c.Tracking() {
			cam.Tracking = &agent.Tracking{Tracker: c.TrackConfig(), Analytics: c.Analytics()}
		}
		cams = append(cams, cam)
	}
	return cams, nil
}
