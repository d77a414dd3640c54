//go:build linux && (amd64 || arm64) && !omit_native

package native

import (
	"context"
	"errors"
	"image"
	"testing"

	"edgefleet/models"
	"edgefleet/models/imageio"
	"edgefleet/models/modeltest"
	"edgefleet/models/yolo"
	"edgefleet/models/yolo/yolotest"
)

// TestDetectionsAgree runs the whole detection pipeline on the native
// engine for every reference pair whose model this library loads, with and
// without XNNPACK, and holds it to the project's agreement rule.
func TestDetectionsAgree(t *testing.T) {
	lib := libPath(t)
	refs := modeltest.Glob(t, "reference/*.json")
	imgs := map[string]image.Image{} // decoded once: PNG decoding is slow under -race
	for _, delegate := range []string{"none", "xnnpack"} {
		t.Run(delegate, func(td *testing.T) {
			t := td
			engines := map[string]*yolo.Detector{}
			for _, path := range refs {
				ref, err := yolotest.ReadReference(path)
				if err != nil {
					t.Fatal(err)
				}
				t.Run(ref.Pair(), func(t *testing.T) {
					det, ok := engines[ref.Model]
					if !ok {
						e, err := Open(context.Background(), readModel(t, ref.Model), models.Options{Library: lib, Threads: 2, Delegate: delegate})
						if errors.Is(err, models.ErrUnsupported) {
							engines[ref.Model] = nil
							t.Skipf("this library cannot load %s: %v", ref.Model, err)
						}
						if err != nil {
							t.Fatal(err)
						}
						td.Cleanup(func() { e.Close() })
						if delegate == "xnnpack" && e.Info().Delegate != "xnnpack" {
							engines[ref.Model] = nil
							t.Skipf("TFLite %s has no XNNPACK delegate", e.Info().Version)
						}
						if det, err = yolo.NewDetector(e, yolo.Options{}); err != nil {
							t.Fatal(err)
						}
						engines[ref.Model] = det
					}
					if det == nil {
						t.Skipf("this library cannot load %s", ref.Model)
					}
					img, ok := imgs[ref.Image]
					if !ok {
						var err error
						if img, err = imageio.Load(modeltest.Path(t, "images", ref.Image)); err != nil {
							t.Fatal(err)
						}
						imgs[ref.Image] = img
					}
					got, err := det.Detect(context.Background(), []image.Image{img})
					if err != nil {
						t.Fatal(err)
					}
					if err := yolotest.Agree(ref.Dets(), got[0]); err != nil {
						t.Errorf("%s vs %s reference: %v", ref.Pair(), ref.Runtime, err)
					}
				})
			}
		})
	}
}
