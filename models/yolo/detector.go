package yolo

import (
	"context"
	"fmt"
	"image"
	"strconv"
	"sync"
	"time"

	"edgefleet/models"
)

// Options configure a Detector. The zero value detects with Ultralytics'
// defaults for these models (conf 0.25, IoU 0.45, 300 boxes), one image per
// invoke, labels as class ids.
type Options struct {
	Params
	// Labels name the classes by id; ids past the end are named by number.
	Labels []string
	// Batch is the most images per Invoke when the engine implements
	// models.Batcher; 0 or 1 means one at a time.
	Batch int
	// Workers is the number of goroutines that letterbox an image.
	Workers int
}

// Timings is where the time of one image went. For a batch, Inference is the
// batch's invoke time divided by the images in it.
type Timings struct {
	Preprocess  time.Duration
	Inference   time.Duration
	Postprocess time.Duration
}

// Result is what a Detector found in one image.
type Result struct {
	Detections []models.Detection
	Geometry   Geometry
	Timings    Timings
}

// Detector finds objects with a YOLO model on a models.Engine: letterbox,
// invoke, decode. It is safe for concurrent use; calls run one at a time.
type Detector struct {
	opts Options

	mu    sync.Mutex // guards everything below and the engine
	eng   models.Engine
	spec  InputSpec
	head  Head
	lb    *Letterboxer
	dec   *Decoder
	batch int // the engine's current batch size
	// batchErr is why the engine refused a batch; the detector then runs
	// one image per invoke.
	batchErr error
}

var _ models.Detector = (*Detector)(nil)

// NewDetector prepares a detector over eng, whose first input must be an
// image tensor and first output a YOLO detection head.
func NewDetector(eng models.Engine, opts Options) (*Detector, error) {
	ins, outs := eng.Inputs(), eng.Outputs()
	if len(ins) == 0 || len(outs) == 0 {
		return nil, fmt.Errorf("yolo: detector: model has %d inputs and %d outputs: %w", len(ins), len(outs), ErrInput)
	}
	spec, err := InputSpecOf(ins[0])
	if err != nil {
		return nil, err
	}
	head, err := HeadOf(outs[0], spec)
	if err != nil {
		return nil, err
	}
	lb, err := NewLetterboxer(spec)
	if err != nil {
		return nil, err
	}
	lb.Workers = opts.Workers
	dec, err := NewDecoder(head, spec, opts.Params)
	if err != nil {
		return nil, err
	}
	batch := 1
	if len(ins[0].Shape) == 4 && ins[0].Shape[0] > 0 {
		batch = ins[0].Shape[0]
	}
	if opts.Batch < 1 {
		opts.Batch = 1
	}
	if _, ok := eng.(models.Batcher); !ok {
		// A model exported with a fixed batch takes that many images per
		// invoke; a short last group is padded.
		opts.Batch = batch
	}
	return &Detector{opts: opts, eng: eng, spec: spec, head: head, lb: lb, dec: dec, batch: batch}, nil
}

// Input is the model input the detector fills.
func (d *Detector) Input() InputSpec { return d.spec }

// Head is the model output the detector decodes.
func (d *Detector) Head() Head { return d.head }

// Detect implements models.Detector.
func (d *Detector) Detect(ctx context.Context, imgs []image.Image) ([][]models.Detection, error) {
	res, err := d.DetectResults(ctx, imgs)
	if err != nil {
		return nil, err
	}
	out := make([][]models.Detection, len(res))
	for i, r := range res {
		out[i] = r.Detections
	}
	return out, nil
}

// DetectResults finds objects in each image, up to Options.Batch images per
// invoke, and says where the time went.
func (d *Detector) DetectResults(ctx context.Context, imgs []image.Image) ([]Result, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	res := make([]Result, 0, len(imgs))
	for len(imgs) > 0 {
		n := min(len(imgs), d.opts.Batch)
		r, err := d.run(ctx, imgs[:n])
		if err != nil {
			return nil, err
		}
		res = append(res, r...)
		imgs = imgs[n:]
	}
	return res, nil
}

// BatchError says why the engine refused to run several images per invoke
// (many exports fix the batch inside the graph), or nil. After a refusal the
// detector runs one image per invoke.
func (d *Detector) BatchError() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.batchErr
}

func (d *Detector) setBatch(n int) error {
	if n == d.batch {
		return nil
	}
	b, ok := d.eng.(models.Batcher)
	if !ok {
		return fmt.Errorf("yolo: detect: engine runs batches of %d and cannot change it", d.batch)
	}
	if err := b.SetBatch(n); err != nil {
		return fmt.Errorf("yolo: detect: set batch %d: %w", n, err)
	}
	d.batch = n
	return nil
}

func (d *Detector) run(ctx context.Context, imgs []image.Image) ([]Result, error) {
	n := len(imgs)
	if _, ok := d.eng.(models.Batcher); !ok && n < d.batch {
		// Fixed batch: repeat the last image into the unused slots.
		padded := append([]image.Image(nil), imgs...)
		for len(padded) < d.batch {
			padded = append(padded, imgs[n-1])
		}
		res, err := d.run(ctx, padded)
		if err != nil {
			return nil, err
		}
		return res[:n], nil
	}
	if err := d.setBatch(n); err != nil {
		if n == 1 {
			return nil, err
		}
		// Fall back to one image at a time for good.
		d.batchErr = err
		d.opts.Batch = 1
		d.batch = -1
		var res []Result
		for i := range imgs {
			r, err := d.run(ctx, imgs[i:i+1])
			if err != nil {
				return nil, err
			}
			res = append(res, r...)
		}
		return res, nil
	}
	in := d.eng.Input(0)
	per := d.spec.ImageBytes()
	if len(in) != n*per {
		return nil, fmt.Errorf("yolo: detect: input tensor holds %d bytes, want %d for %d images", len(in), n*per, n)
	}
	res := make([]Result, n)
	for i, img := range imgs {
		start := time.Now()
		g, err := d.lb.Letterbox(img, in[i*per:(i+1)*per])
		if err != nil {
			return nil, fmt.Errorf("yolo: detect: image %d: %w", i, err)
		}
		res[i].Geometry = g
		res[i].Timings.Preprocess = time.Since(start)
	}
	start := time.Now()
	if err := d.eng.Invoke(ctx); err != nil {
		return nil, fmt.Errorf("yolo: detect: invoke: %w", err)
	}
	inf := time.Since(start) / time.Duration(n)
	out := d.eng.Output(0)
	oper := d.head.ImageBytes()
	if len(out) != n*oper {
		return nil, fmt.Errorf("yolo: detect: output tensor holds %d bytes, want %d for %d images", len(out), n*oper, n)
	}
	for i := range res {
		start := time.Now()
		dets, err := d.dec.Decode(out[i*oper:(i+1)*oper], res[i].Geometry, nil)
		if err != nil {
			return nil, fmt.Errorf("yolo: detect: image %d: %w", i, err)
		}
		for k := range dets {
			dets[k].Label = label(d.opts.Labels, dets[k].ClassID)
		}
		res[i].Detections = dets
		res[i].Timings.Inference = inf
		res[i].Timings.Postprocess = time.Since(start)
	}
	return res, nil
}

func label(labels []string, id int) string {
	if id >= 0 && id < len(labels) && labels[id] != "" {
		return labels[id]
	}
	return strconv.Itoa(id)
}
