package yolo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"edgefleet/models"
	"edgefleet/models/modeltest"
	"edgefleet/models/yolo/yolotest"
)

// replayEngine is a test twin of an interpreter: it "runs" one model on one
// image by checking that its input holds exactly the bytes a real runtime was
// fed and answering with what that runtime returned. Any other input gets an
// output with no detections.
type replayEngine struct {
	in, out       models.TensorInfo
	wantIn, reply []byte
	blank         []byte
	batch         int
	buf           []byte
	outBuf        []byte
	invokes       int
	matched       int
	failInvoke    error
	maxBatch      int
}

func newReplay(t *testing.T, pair string) *replayEngine {
	t.Helper()
	dir := modeltest.Path(t, "tensors", "native")
	in, out, reply := rawPair(t, dir, pair)
	wantIn, err := os.ReadFile(filepath.Join(dir, pair+".input.bin"))
	if err != nil {
		t.Fatal(err)
	}
	e := &replayEngine{in: in, out: out, wantIn: wantIn, reply: reply, blank: make([]byte, len(reply)), maxBatch: 8}
	// A blank output: every value the quantized zero, i.e. score 0.
	if out.Quant != nil {
		for i := range e.blank {
			e.blank[i] = byte(out.Quant.ZeroPoint[0])
		}
	}
	e.setBatch(1)
	return e
}

func (e *replayEngine) setBatch(n int) {
	e.batch = n
	e.buf = make([]byte, n*len(e.wantIn))
	e.outBuf = make([]byte, n*len(e.reply))
}

func (e *replayEngine) shape(t models.TensorInfo) models.TensorInfo {
	t.Shape = append([]int{e.batch}, t.Shape[1:]...)
	return t
}
func (e *replayEngine) Inputs() []models.TensorInfo  { return []models.TensorInfo{e.shape(e.in)} }
func (e *replayEngine) Outputs() []models.TensorInfo { return []models.TensorInfo{e.shape(e.out)} }
func (e *replayEngine) Input(int) []byte             { return e.buf }
func (e *replayEngine) Output(int) []byte            { return e.outBuf }
func (e *replayEngine) Info() models.EngineInfo      { return models.EngineInfo{Engine: "replay"} }
func (e *replayEngine) Close() error                 { return nil }
func (e *replayEngine) Invoke(ctx context.Context) error {
	if e.failInvoke != nil {
		return e.failInvoke
	}
	e.invokes++
	n := len(e.wantIn)
	for i := 0; i < e.batch; i++ {
		o := e.outBuf[i*len(e.reply) : (i+1)*len(e.reply)]
		if bytes.Equal(e.buf[i*n:(i+1)*n], e.wantIn) {
			e.matched++
			copy(o, e.reply)
		} else {
			copy(o, e.blank)
		}
	}
	return nil
}

// batchReplay adds models.Batcher.
type batchReplay struct{ *replayEngine }

func (b batchReplay) SetBatch(n int) error {
	if n < 1 || n > b.maxBatch {
		return fmt.Errorf("batch %d out of range", n)
	}
	b.setBatch(n)
	return nil
}

func labels80() []string {
	l := make([]string, 80)
	l[15], l[16], l[41], l[60], l[74] = "cat", "dog", "cup", "dining table", "clock"
	return l
}

// TestDetectorReplay runs the whole pipeline but the interpreter on every
// pair with native tensors: the detector must feed the runtime's exact input
// and report the reference detections.
func TestDetectorReplay(t *testing.T) {
	for _, p := range modeltest.Glob(t, "tensors/native/*.input.bin") {
		pair := strings.TrimSuffix(filepath.Base(p), ".input.bin")
		t.Run(pair, func(t *testing.T) {
			ref, err := yolotest.ReadReference(modeltest.Path(t, "reference", pair+".json"))
			if err != nil {
				t.Fatal(err)
			}
			img := testImage(t, ref.Image)
			eng := newReplay(t, pair)
			d, err := NewDetector(eng, Options{Labels: labels80(), Workers: 2})
			if err != nil {
				t.Fatal(err)
			}
			res, err := d.DetectResults(context.Background(), []image.Image{img})
			if err != nil {
				t.Fatal(err)
			}
			if eng.matched != 1 {
				t.Fatal("the detector did not feed the runtime's input bytes")
			}
			sameDetections(t, ref.Dets(), res[0].Detections)
			for _, det := range res[0].Detections {
				if want := labels80()[det.ClassID]; det.Label != want {
					t.Errorf("label %q, want %q", det.Label, want)
				}
			}
			if tm := res[0].Timings; tm.Preprocess <= 0 || tm.Postprocess <= 0 {
				t.Errorf("timings %+v", tm)
			}
		})
	}
}

// TestDetectorBatch checks that a Batcher engine gets several images in one
// tensor, in order, and each result goes back to its image.
func TestDetectorBatch(t *testing.T) {
	const pair = "yolov8n_full_integer_quant__chelsea"
	ref, err := yolotest.ReadReference(modeltest.Path(t, "reference", pair+".json"))
	if err != nil {
		t.Fatal(err)
	}
	cat := testImage(t, "chelsea.png")
	grey := image.NewGray(image.Rect(0, 0, 200, 100))
	imgs := []image.Image{cat, grey, cat, cat, grey}
	for _, batch := range []int{1, 2, 4, 8} {
		t.Run(fmt.Sprint("batch", batch), func(t *testing.T) {
			eng := batchReplay{newReplay(t, pair)}
			d, err := NewDetector(eng, Options{Batch: batch})
			if err != nil {
				t.Fatal(err)
			}
			res, err := d.DetectResults(context.Background(), imgs)
			if err != nil {
				t.Fatal(err)
			}
			if want := (len(imgs) + batch - 1) / batch; eng.invokes != want {
				t.Errorf("%d invokes, want %d", eng.invokes, want)
			}
			if eng.matched != 3 {
				t.Errorf("%d images fed exactly, want 3", eng.matched)
			}
			for i, r := range res {
				if imgs[i] == cat {
					sameDetections(t, ref.Dets(), r.Detections)
				} else if len(r.Detections) != 0 {
					t.Errorf("image %d: %d detections on a blank output", i, len(r.Detections))
				}
			}
		})
	}
}

// TestDetectorBatchRefused: an engine that cannot take the batch (a graph
// with the batch fixed inside) runs one image per invoke instead.
func TestDetectorBatchRefused(t *testing.T) {
	const pair = "yolov8n_full_integer_quant__chelsea"
	ref, err := yolotest.ReadReference(modeltest.Path(t, "reference", pair+".json"))
	if err != nil {
		t.Fatal(err)
	}
	cat := testImage(t, "chelsea.png")
	eng := batchReplay{newReplay(t, pair)}
	eng.maxBatch = 1
	d, err := NewDetector(eng, Options{Batch: 4})
	if err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 2; round++ {
		res, err := d.DetectResults(context.Background(), []image.Image{cat, cat, cat})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			sameDetections(t, ref.Dets(), r.Detections)
		}
	}
	if eng.invokes != 6 || eng.matched != 6 {
		t.Errorf("%d invokes, %d exact inputs; want 6 and 6", eng.invokes, eng.matched)
	}
	if d.BatchError() == nil {
		t.Error("BatchError is nil after a refused batch")
	}
}

// TestDetectorFixedBatch: a model exported with batch 2 and an engine that
// cannot change it get two images per invoke, the last group padded.
func TestDetectorFixedBatch(t *testing.T) {
	const pair = "yolov8n_full_integer_quant__chelsea"
	ref, err := yolotest.ReadReference(modeltest.Path(t, "reference", pair+".json"))
	if err != nil {
		t.Fatal(err)
	}
	cat := testImage(t, "chelsea.png")
	grey := image.NewGray(image.Rect(0, 0, 20, 10))
	eng := newReplay(t, pair)
	eng.setBatch(2)
	d, err := NewDetector(eng, Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := d.DetectResults(context.Background(), []image.Image{grey, cat, cat})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 3 || eng.invokes != 2 {
		t.Fatalf("%d results in %d invokes, want 3 in 2", len(res), eng.invokes)
	}
	if len(res[0].Detections) != 0 {
		t.Errorf("blank image: %v", res[0].Detections)
	}
	sameDetections(t, ref.Dets(), res[1].Detections)
	sameDetections(t, ref.Dets(), res[2].Detections)
}

func TestDetectorErrors(t *testing.T) {
	const pair = "yolov8n_full_integer_quant__chelsea"
	// Without models.Batcher, a batch option runs images one at a time.
	eng := newReplay(t, pair)
	d, err := NewDetector(eng, Options{Batch: 4})
	if err != nil {
		t.Fatal(err)
	}
	img := image.NewRGBA(image.Rect(0, 0, 64, 48))
	if _, err := d.Detect(context.Background(), []image.Image{img, img}); err != nil {
		t.Fatal(err)
	}
	if eng.invokes != 2 {
		t.Errorf("%d invokes, want 2", eng.invokes)
	}
	boom := errors.New("boom")
	eng.failInvoke = boom
	if _, err := d.Detect(context.Background(), []image.Image{img}); !errors.Is(err, boom) {
		t.Errorf("invoke error %v, want it wrapped", err)
	}
	// An engine whose output is no detection head.
	bad := newReplay(t, pair)
	bad.out.Shape = []int{1, 1000}
	if _, err := NewDetector(bad, Options{}); !errors.Is(err, ErrOutput) {
		t.Errorf("NewDetector on a classifier: %v, want ErrOutput", err)
	}
	bad = newReplay(t, pair)
	bad.in.Shape = []int{1, 640, 640, 1}
	if _, err := NewDetector(bad, Options{}); !errors.Is(err, ErrInput) {
		t.Errorf("NewDetector on a grey input: %v, want ErrInput", err)
	}
}
