package spool_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"edgefleet/agent/spool"
	"edgefleet/fleet/api"
)

func Example() {
	dir, _ := os.MkdirTemp("", "spool-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()

	s, err := spool.Open(filepath.Join(dir, "spool.db"), spool.Options{MaxBytes: 64 << 20, MaxAge: 7 * 24 * time.Hour})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	// The pipeline appends; the events are on disk when Append returns.
	first, last, err := s.Append(ctx,
		api.Event{CameraID: "dock-1", Label: "person", Score: 0.91},
		api.Event{CameraID: "dock-1", Label: "forklift", Score: 0.77},
	)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("appended", first, "to", last)

	// The sender reads a batch, publishes it, and acks what the fleet stored.
	batch, err := s.Next(ctx, 0, 100)
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range batch {
		fmt.Println(e.Seq, e.CameraID, e.Label)
	}
	if err := s.Ack(ctx, api.SeqRange{From: batch[0].Seq, To: batch[len(batch)-1].Seq}); err != nil {
		log.Fatal(err)
	}
	fmt.Println("depth", s.Stats().Depth)
	// Output:
	// appended 1 to 2
	// 1 dock-1 person
	// 2 dock-1 forklift
	// depth 0
}
