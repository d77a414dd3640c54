package registry

import (
	"slices"
	"sync"
	"testing"
	"time"

	"edgefleet/internal/testutil"
)

// TestGroupCommitLinger: after a batch that grouped several updates the
// next one waits for more telemetry (here: an hour), and an urgent update
// (state, job) ends the wait at once and goes with what gathered.
func TestGroupCommitLinger(t *testing.T) {
	g := &groupCommit{linger: time.Hour, urgent: make(chan struct{}, 1)}
	release := make(chan struct{})
	var mu sync.Mutex
	var sizes []int
	commit := func(batch []*updateReq) {
		mu.Lock()
		first := len(sizes) == 0
		sizes = append(sizes, len(batch))
		mu.Unlock()
		if first {
			<-release
		}
		for _, r := range batch {
			close(r.done)
		}
	}
	queued := func(n int) func() bool {
		return func() bool { g.mu.Lock(); defer g.mu.Unlock(); return len(g.queue) == n }
	}
	committed := func(n int) func() bool {
		return func() bool { mu.Lock(); defer mu.Unlock(); return len(sizes) == n }
	}
	var wg sync.WaitGroup
	send := func(id string, urgent bool) { wg.Go(func() { g.run(&updateReq{id: id}, urgent, commit) }) }
	send("a", false)
	testutil.Eventually(t, "the first commit", committed(1))
	send("b", false)
	send("c", false)
	testutil.Eventually(t, "two queued", queued(2))
	close(release) // b and c go together: the next batch lingers
	testutil.Eventually(t, "the second commit", committed(2))
	send("d", false)
	testutil.Eventually(t, "d queued", queued(1))
	send("e", true)
	testutil.WaitFor(t, "the urgent update's commit", 10*time.Second, committed(3))
	wg.Wait()
	g.urgent <- struct{}{} // end the last linger: the drain finds nothing and returns
	if want := []int{1, 2, 2}; !slices.Equal(sizes, want) {
		t.Errorf("batches of %v, want %v", sizes, want)
	}
}
