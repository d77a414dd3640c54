package feed_test

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"edgefleet/fleet/api"
	"edgefleet/fleet/broker"
	"edgefleet/fleet/broker/brokertest"
	"edgefleet/fleet/database"
	"edgefleet/fleet/feed"
	"edgefleet/fleet/ingest"
	"edgefleet/fleet/registry"
	"edgefleet/fleet/server"
	"edgefleet/fleet/store"
	"edgefleet/internal/testutil"
)

const token = "operator-token-0123456789"

// replica is the part of a fleetd that the live feed crosses: its own
// broker and ingest, the shared store and registry, its server and feed.
type replica struct {
	in   *ingest.Ingest
	http string
}

func startReplica(t *testing.T, dsn string) replica {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.DiscardHandler)
	db, err := database.Open(ctx, dsn, database.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenPostgres(ctx, db.Pool, store.PostgresOptions{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.OpenPostgres(ctx, db.Pool, registry.PostgresOptions{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Options{Store: st, Registry: reg, Tokens: map[string]string{token: "test"}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	fd, err := feed.NewPostgres(db.Pool, feed.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	b := brokertest.Start(t, broker.Options{Logger: log})
	in, err := ingest.New(ingest.Embedded(b), ingest.Options{Store: st, Devices: reg, OnStored: fd.Publish, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	var wg sync.WaitGroup
	wg.Go(func() { fd.Run(ctx, srv.Hub().Publish) })
	wg.Go(func() { in.Run(ctx) })
	t.Cleanup(func() {
		hs.Close()
		cancel()
		wg.Wait()
		reg.Close()
		st.Close()
		db.Close()
	})
	<-in.Ready()
	select {
	case <-fd.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("feed not listening")
	}
	return replica{in: in, http: hs.URL}
}

// TestLiveFeedAcrossReplicas: a detection ingested through replica A
// appears on replica B's SSE stream (and on A's own).
func TestLiveFeedAcrossReplicas(t *testing.T) {
	dsn := testutil.Postgres(t)
	a, b := startReplica(t, dsn), startReplica(t, dsn)
	streams := map[string]<-chan store.Record{"A": stream(t, a.http), "B": stream(t, b.http)}

	batch := api.DetectionBatch{DeviceID: "cam-7", Events: []api.Event{
		{Seq: 1, CameraID: "cam0", Time: time.Now().UnixMicro(), ClassID: 2, Label: "car", Score: 0.8, Box: [4]float32{1, 2, 3, 4}},
		{Seq: 2, CameraID: "cam0", Time: time.Now().UnixMicro(), ClassID: 0, Label: "person", Score: 0.6, Box: [4]float32{5, 6, 7, 8}},
	}}
	payload, _ := json.Marshal(&batch)
	a.in.Handle(api.DetectionsTopic("cam-7"), payload)

	for name, ch := range streams {
		var got []store.Record
		timeout := time.After(15 * time.Second)
		for len(got) < 2 {
			select {
			case r := <-ch:
				got = append(got, r)
			case <-timeout:
				t.Fatalf("replica %s's stream: %d of 2 records", name, len(got))
			}
		}
		for i, r := range got {
			if r.Device != "cam-7" || r.Event != batch.Events[i] {
				t.Errorf("replica %s: record %d = %+v, want %+v", name, i, r, batch.Events[i])
			}
		}
	}
}

// stream opens the live feed at base and returns its records; it is
// subscribed when stream returns.
func stream(t *testing.T, base string) <-chan store.Record {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/detections/stream", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("stream: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), ": edgefleet live detections") {
		t.Fatalf("stream: first line %q", sc.Text())
	}
	ch := make(chan store.Record, 100)
	go func() {
		defer resp.Body.Close()
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var r store.Record
				if json.Unmarshal([]byte(data), &r) == nil {
					ch <- r
				}
			}
		}
	}()
	return ch
}
