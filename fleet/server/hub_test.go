package server

import "testing"

func TestHubWatched(t *testing.T) {
	h := NewHub()
	if h.Watched() {
		t.Fatal("an empty hub is watched")
	}
	a, b := h.Subscribe(Filter{}), h.Subscribe(Filter{Device: "cam-1"})
	for _, step := range []struct {
		unsubscribe *Sub
		want        bool
	}{{nil, true}, {a, true}, {b, false}} {
		if step.unsubscribe != nil {
			h.Unsubscribe(step.unsubscribe)
		}
		if got := h.Watched(); got != step.want {
			t.Fatalf("Watched() = %v, want %v", got, step.want)
		}
	}
}
