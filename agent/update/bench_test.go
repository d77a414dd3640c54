package update

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"edgefleet/models"
	"edgefleet/models/tflite"
	"edgefleet/models/yolo"
)

// BenchmarkDownload measures the download path over loopback: HTTP, the
// partial file (fsync'd), then the sha256 check, for an 8 MiB artifact.
func BenchmarkDownload(b *testing.B) {
	data := make([]byte, 8<<20)
	rand.Read(data)
	sum := sum256(data)
	art := newArtServer(b)
	url := art.put(sum, data)
	d := NewDownloader(DownloadOptions{Client: art.srv.Client(), MaxAttempts: 3, RetryBase: time.Millisecond, RetryMax: time.Millisecond,
		StallTimeout: 10 * time.Second, Logger: discardLogger()})
	dir := b.TempDir()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		part := filepath.Join(dir, "x.part")
		os.Remove(part)
		f := Fetch{URL: url, Part: part, SHA256: sum, Size: int64(len(data))}
		if err := d.Download(context.Background(), f); err != nil {
			b.Fatal(err)
		}
		if _, got, err := readSum(part); err != nil || got != sum {
			b.Fatalf("sha256 %s, err %v", got, err)
		}
	}
	b.ReportMetric(float64(len(data))*float64(b.N)/b.Elapsed().Seconds()/(1<<20), "MiB/s")
}

// BenchmarkSwap measures how long the pipeline is held up by a hot swap:
// one Serving.Swap (it waits for the frame in flight) of two tiny engines.
func BenchmarkSwap(b *testing.B) {
	ctx := context.Background()
	open := func(score float32) models.Engine {
		e, err := tflite.Open(ctx, tinyE2E(score), models.Options{})
		if err != nil {
			b.Fatal(err)
		}
		return e
	}
	a, c := open(0.9), open(0.8)
	defer a.Close()
	defer c.Close()
	s, err := NewServing(a, nil, yolo.Options{})
	if err != nil {
		b.Fatal(err)
	}
	next := c
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		old, err := s.Swap(ctx, next, nil)
		if err != nil {
			b.Fatal(err)
		}
		next = old
	}
}
