package tflite

import (
	"bytes"
	"context"
	"os"
	"testing"

	"edgefleet/models"
	"edgefleet/models/modeltest"
)

// TestBatchMatchesSingle: a batch of different images gives, for each image,
// the same output bytes as running it alone.
func TestBatchMatchesSingle(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	mb, err := os.ReadFile(modeltest.Path(t, "models", "yolov8n_full_integer_quant.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	in, err := os.ReadFile(modeltest.Path(t, "tensors", "native", "yolov8n_full_integer_quant__chelsea.input.bin"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	e, err := Open(ctx, mb, models.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	// Second image: the same picture flipped upside down.
	flipped := make([]byte, len(in))
	row := 640 * 3
	for y := 0; y < 640; y++ {
		copy(flipped[y*row:(y+1)*row], in[(639-y)*row:(640-y)*row])
	}
	single := func(x []byte) []byte {
		copy(e.Input(0), x)
		if err := e.Invoke(ctx); err != nil {
			t.Fatal(err)
		}
		return append([]byte(nil), e.Output(0)...)
	}
	want0, want1 := single(in), single(flipped)
	if bytes.Equal(want0, want1) {
		t.Fatal("flipped image gave identical output; test cannot tell images apart")
	}
	if err := e.(models.Batcher).SetBatch(2); err != nil {
		t.Fatal(err)
	}
	if got := e.Inputs()[0].Shape; got[0] != 2 {
		t.Fatalf("input shape after SetBatch(2) = %v", got)
	}
	copy(e.Input(0), in)
	copy(e.Input(0)[len(in):], flipped)
	if err := e.Invoke(ctx); err != nil {
		t.Fatal(err)
	}
	out := e.Output(0)
	if len(out) != 2*len(want0) {
		t.Fatalf("batched output %d bytes, want %d", len(out), 2*len(want0))
	}
	if !bytes.Equal(out[:len(want0)], want0) || !bytes.Equal(out[len(want0):], want1) {
		t.Fatal("batched outputs differ from single-image outputs")
	}
	if err := e.(models.Batcher).SetBatch(1); err != nil {
		t.Fatal(err)
	}
	if got := single(in); !bytes.Equal(got, want0) {
		t.Fatal("output after returning to batch 1 differs")
	}
}
