package update

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"math"
	"slices"
	"time"

	"edgefleet/models"
	"edgefleet/models/manifest"
	"edgefleet/models/tflite"
	"edgefleet/models/yolo"
)

// Fitter says whether a model's signature fits the pipeline that will run it.
type Fitter interface {
	Fits(inputs, outputs []models.TensorInfo) error
}

// YOLOFit is the Fitter of the agent's pipeline: the first input must be an
// image the letterboxer fills and the first output a head a YOLO decoder
// reads. Classes, when not zero, is the number of classes the head must have
// (camera class filters refer to class ids); end-to-end heads carry the class
// as a value and are not checked against it.
type YOLOFit struct {
	Classes int
}

// Fits implements Fitter.
func (f YOLOFit) Fits(ins, outs []models.TensorInfo) error {
	if len(ins) == 0 || len(outs) == 0 {
		return fmt.Errorf("%w: %d inputs and %d outputs", ErrNoFit, len(ins), len(outs))
	}
	spec, err := yolo.InputSpecOf(ins[0])
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNoFit, err)
	}
	head, err := yolo.HeadOf(outs[0], spec)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNoFit, err)
	}
	if f.Classes > 0 && head.Format != yolo.E2E && head.Classes != f.Classes {
		return fmt.Errorf("%w: output %q has %d classes, the pipeline needs %d", ErrNoFit, outs[0].Name, head.Classes, f.Classes)
	}
	return nil
}

// signature parses a .tflite file and returns its main subgraph's tensors.
func signature(data []byte) (ins, outs []models.TensorInfo, err error) {
	mod, err := tflite.Parse(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrNoFit, err)
	}
	if len(mod.Subgraphs) == 0 {
		return nil, nil, fmt.Errorf("%w: no subgraph", ErrNoFit)
	}
	sg := &mod.Subgraphs[0]
	infos := func(idx []int) ([]models.TensorInfo, error) {
		out := make([]models.TensorInfo, 0, len(idx))
		for _, i := range idx {
			if i < 0 || i >= len(sg.Tensors) {
				return nil, fmt.Errorf("%w: tensor index %d out of range", ErrNoFit, i)
			}
			out = append(out, sg.Tensors[i].Info())
		}
		return out, nil
	}
	if ins, err = infos(sg.Inputs); err != nil {
		return nil, nil, err
	}
	if outs, err = infos(sg.Outputs); err != nil {
		return nil, nil, err
	}
	return ins, outs, nil
}

// sameSignature checks that the signed manifest describes the model's tensors.
func sameSignature(m *manifest.Manifest, ins, outs []models.TensorInfo) error {
	cmp := func(what string, want []manifest.Tensor, got []models.TensorInfo) error {
		if len(want) != len(got) {
			return fmt.Errorf("%w: the model has %d %s, the manifest %d", ErrMismatch, len(got), what, len(want))
		}
		for i := range want {
			if want[i].Type != got[i].Type.String() || !slices.Equal(want[i].Shape, got[i].Shape) {
				return fmt.Errorf("%w: %s %d is %v%v in the model, %s%v in the manifest", ErrMismatch, what, i,
					got[i].Type, got[i].Shape, want[i].Type, want[i].Shape)
			}
		}
		return nil
	}
	if err := cmp("inputs", m.Inputs, ins); err != nil {
		return err
	}
	return cmp("outputs", m.Outputs, outs)
}

// referenceFrame is the synthetic image of the smoke test: a grey belt with
// a few solid blocks, so every stage (letterbox, invoke, decode) does real work.
func referenceFrame() image.Image {
	img := image.NewRGBA(image.Rect(0, 0, 640, 480))
	for y := range 480 {
		for x := range 640 {
			img.SetRGBA(x, y, color.RGBA{uint8(90 + x/16), uint8(90 + y/16), 100, 255})
		}
	}
	blocks := []struct {
		r image.Rectangle
		c color.RGBA
	}{
		{image.Rect(80, 120, 240, 300), color.RGBA{200, 40, 40, 255}},
		{image.Rect(320, 200, 420, 420), color.RGBA{30, 30, 180, 255}},
		{image.Rect(480, 60, 600, 160), color.RGBA{240, 220, 60, 255}},
	}
	for _, b := range blocks {
		for y := b.r.Min.Y; y < b.r.Max.Y; y++ {
			for x := b.r.Min.X; x < b.r.Max.X; x++ {
				img.SetRGBA(x, y, b.c)
			}
		}
	}
	return img
}

// smoke runs the reference frame through eng and checks the output's size,
// that float outputs are finite, and that the frame took at most budget.
func smoke(ctx context.Context, eng models.Engine, m *manifest.Manifest, budget time.Duration) (time.Duration, error) {
	opts := yolo.Options{}
	if m != nil {
		opts.Labels = m.Labels
	}
	det, err := yolo.NewDetector(eng, opts)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrSmoke, err)
	}
	t0 := time.Now()
	if _, err := det.Detect(ctx, []image.Image{referenceFrame()}); err != nil {
		return 0, fmt.Errorf("%w: reference frame: %v", ErrSmoke, err)
	}
	took := time.Since(t0)
	outs := eng.Outputs()
	for i, o := range outs {
		want := o.Elements() * o.Type.Size()
		got := len(eng.Output(i))
		if got != want {
			return took, fmt.Errorf("%w: output %q is %d bytes, its shape %v says %d", ErrSmoke, o.Name, got, o.Shape, want)
		}
		if o.Type == models.Float32 {
			b := eng.Output(i)
			for j := 0; j+4 <= len(b); j += 4 {
				v := math.Float32frombits(uint32(b[j]) | uint32(b[j+1])<<8 | uint32(b[j+2])<<16 | uint32(b[j+3])<<24)
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					return took, fmt.Errorf("%w: output %q has a non-finite value at element %d", ErrSmoke, o.Name, j/4)
				}
			}
		}
	}
	if budget > 0 && took > budget {
		return took, fmt.Errorf("%w: the reference frame took %v, over the budget of %v", ErrSmoke, took.Round(time.Millisecond), budget)
	}
	return took, nil
}
