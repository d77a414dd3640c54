package update_test

import (
	"context"
	"log"
	"os"

	"edgefleet/agent/update"
	"edgefleet/fleet/api"
	"edgefleet/models"
	"edgefleet/models/backend"
	"edgefleet/models/manifest"
	"edgefleet/models/yolo"
)

// This is how an agent wires the executor: open the model Current names
// (else the configured one, adopted with Seed), serve it through a Serving
// given to the pipeline as its detector, and feed the fleet's commands to
// Handle.
func Example() {
	ctx := context.Background()
	keys, err := manifest.LoadKeySet("/etc/edgefleet/keys")
	if err != nil {
		log.Fatal(err)
	}
	x, err := update.New(update.Options{
		Dir: "/var/lib/edgefleet/update", DeviceID: "cam-box-1", Token: os.Getenv("EDGEFLEET_TOKEN"),
		Keys: keys, BaseURL: "https://fleet.example:8443",
		Reporter: update.ReporterFunc(func(ctx context.Context, s api.JobStatus) error {
			return nil // link.PublishJob(ctx, &s)
		}),
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := x.Seed(ctx, "/opt/models/yolov8n_int8.tflite", "yolov8n", "1"); err != nil {
		log.Fatal(err)
	}
	cur, path, _ := x.Current()
	data, err := os.ReadFile(path)
	if err != nil {
		log.Fatal(err)
	}
	eng, err := backend.Open(ctx, backend.Auto, data, models.Options{Threads: 2})
	if err != nil {
		log.Fatal(err)
	}
	serving, err := update.NewServing(eng, cur.Signed(), yolo.Options{Labels: update.Labels(cur.Signed(), data)})
	if err != nil {
		log.Fatal(err)
	}
	x.Attach(serving, serving)
	// The pipeline detects with serving; commands from the link go to x.Handle.
	var commands <-chan api.Command
	go func() {
		for c := range commands {
			if err := x.Handle(ctx, c); err != nil {
				log.Print(err)
			}
		}
	}()
	log.Fatal(x.Run(ctx))
}
