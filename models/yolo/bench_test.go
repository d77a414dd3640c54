package yolo

import (
	"image"
	"math/rand/v2"
	"testing"
	"time"

	"edgefleet/models"
	"edgefleet/models/modeltest"
)

func frame(w, h int) *image.RGBA {
	r := rand.New(rand.NewPCG(5, 6))
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = uint8(r.IntN(256))
	}
	return img
}

// BenchmarkLetterbox1080p letterboxes a 1920×1080 RGBA frame into a
// 640×640 int8 NHWC input (yolov8n's), on one goroutine. 1920/640 is exactly
// 3, so every bilinear tap has weight 0 on its second pixel and takes the
// exact shortcut; BenchmarkLetterboxGeneric measures a size that does not.
func BenchmarkLetterbox1080p(b *testing.B) {
	benchLetterbox(b, frame(1920, 1080))
}

// BenchmarkLetterboxGeneric letterboxes a 1366×768 RGBA frame, where every
// output pixel blends four source pixels.
func BenchmarkLetterboxGeneric(b *testing.B) {
	benchLetterbox(b, frame(1366, 768))
}

// BenchmarkLetterbox1080pYCbCr letterboxes a 1080p 4:2:0 frame, as a JPEG
// camera delivers it.
func BenchmarkLetterbox1080pYCbCr(b *testing.B) {
	r := rand.New(rand.NewPCG(5, 6))
	img := image.NewYCbCr(image.Rect(0, 0, 1920, 1080), image.YCbCrSubsampleRatio420)
	for _, p := range [][]uint8{img.Y, img.Cb, img.Cr} {
		for i := range p {
			p[i] = uint8(r.IntN(256))
		}
	}
	benchLetterbox(b, img)
}

func benchLetterbox(b *testing.B, img image.Image) {
	spec := InputSpec{W: 640, H: 640, Layout: NHWC, Type: models.Int8, Scale: 1.0 / 255, ZeroPoint: -128}
	l, err := NewLetterboxer(spec)
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]byte, spec.ImageBytes())
	if _, err := l.Letterbox(img, dst); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	cpu := cpuTime()
	for b.Loop() {
		if _, err := l.Letterbox(img, dst); err != nil {
			b.Fatal(err)
		}
	}
	reportTimes(b, cpu)
}

// BenchmarkDecodeNMS decodes yolov8n's real int8 [1,84,8400] output (chelsea
// through the native runtime) with thresholds 0.25/0.45.
func BenchmarkDecodeNMS(b *testing.B) {
	benchDecode(b, "yolov8n_full_integer_quant__chelsea")
}

// BenchmarkDecodeNMSFloat decodes the float32 model's output (yolov8n_int8,
// float32 [1,84,8400]).
func BenchmarkDecodeNMSFloat(b *testing.B) {
	benchDecode(b, "yolov8n_int8__chelsea")
}

// BenchmarkDecodeNMSv5 decodes YOLOv5's uint8 [1,25200,85] output.
func BenchmarkDecodeNMSv5(b *testing.B) {
	benchDecode(b, "yolov5n-int8__chelsea")
}

func benchDecode(b *testing.B, pair string) {
	dir := modeltest.Path(b, "tensors", "native")
	inT, outT, data := rawPairB(b, dir, pair)
	spec, err := InputSpecOf(inT)
	if err != nil {
		b.Fatal(err)
	}
	head, err := HeadOf(outT, spec)
	if err != nil {
		b.Fatal(err)
	}
	dec, err := NewDecoder(head, spec, Params{})
	if err != nil {
		b.Fatal(err)
	}
	g, _ := NewGeometry(451, 300, spec.W, spec.H)
	var dets []models.Detection
	cpu := cpuTime()
	for b.Loop() {
		if dets, err = dec.Decode(data, g, dets[:0]); err != nil {
			b.Fatal(err)
		}
	}
	reportTimes(b, cpu)
	if len(dets) == 0 {
		b.Fatal("no detections")
	}
}

// reportTimes reports wall and CPU milliseconds per op; cpu is cpuTime() at
// the start of the loop.
func reportTimes(b *testing.B, cpu time.Duration) {
	used := cpuTime() - cpu
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/1e6/float64(b.N), "ms/op")
	if used > 0 {
		b.ReportMetric(float64(used.Nanoseconds())/1e6/float64(b.N), "cpu-ms/op")
	}
}
