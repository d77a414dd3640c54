package main

import (
	"bufio"
	"context"
	"fmt"
	"image"
	"os"
	"strconv"
	"strings"
	"testing"

	"edgefleet/models"
	"edgefleet/models/backend"
	"edgefleet/models/imageio"
	"edgefleet/models/modeltest"
	"edgefleet/models/yolo"
)

// peakRSSMiB is the process's peak resident set (VmHWM), or 0 where /proc
// does not say.
func peakRSSMiB() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// BenchmarkDetect runs the whole detect pipeline (letterbox, invoke, decode)
// of yolov8n int8 at 640 on the four test photos, per image, with 1 and 2
// threads and batches of 1 and 4.
func BenchmarkDetect(b *testing.B) {
	mb, err := os.ReadFile(modeltest.Path(b, "models", "yolov8n_full_integer_quant.tflite"))
	if err != nil {
		b.Fatal(err)
	}
	var imgs []image.Image
	for _, name := range []string{"astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png"} {
		img, err := imageio.Load(modeltest.Path(b, "images", name))
		if err != nil {
			b.Fatal(err)
		}
		imgs = append(imgs, img)
	}
	for _, c := range []struct{ threads, batch int }{{1, 1}, {2, 1}, {2, 4}} {
		b.Run(fmt.Sprintf("yolov8n_int8_640/threads=%d/batch=%d", c.threads, c.batch), func(b *testing.B) {
			ctx := context.Background()
			eng, err := backend.Open(ctx, backend.Go, mb, models.Options{Threads: c.threads})
			if err != nil {
				b.Fatal(err)
			}
			defer eng.Close()
			det, err := yolo.NewDetector(eng, yolo.Options{Batch: c.batch, Workers: c.threads})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := det.Detect(ctx, imgs); err != nil { // warm up
				b.Fatal(err)
			}
			if err := det.BatchError(); err != nil {
				b.Fatal(err)
			}
			var pre, inf, post float64
			b.ResetTimer()
			for b.Loop() {
				res, err := det.DetectResults(ctx, imgs)
				if err != nil {
					b.Fatal(err)
				}
				for _, r := range res {
					pre += float64(r.Timings.Preprocess.Microseconds()) / 1000
					inf += float64(r.Timings.Inference.Microseconds()) / 1000
					post += float64(r.Timings.Postprocess.Microseconds()) / 1000
				}
			}
			n := float64(b.N * len(imgs))
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/n, "ms/image")
			b.ReportMetric(pre/n, "pre-ms")
			b.ReportMetric(inf/n, "infer-ms")
			b.ReportMetric(post/n, "post-ms")
			b.ReportMetric(peakRSSMiB(), "peak-RSS-MiB")
		})
	}
}
