package memlimit

import (
	"context"
	"io"
	"log/slog"
	"math"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"edgefleet/internal/testutil"
)

func TestLimit(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name        string
		live, other uint64
		want        int64
	}{
		{"small heap gets the minimum headroom", 10 * mib, 2 * mib, 20 * mib},
		{"yolov8n agent", 22 * mib, 3 * mib, 33 * mib},
		{"large heap gets a quarter", 100 * mib, 4 * mib, 129 * mib},
		{"empty", 0, 0, MinHeadroom},
		{"saturates", math.MaxUint64 / 2, math.MaxUint64 / 2, math.MaxInt64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Limit(tt.live, tt.other); got != tt.want {
				t.Errorf("Limit(%d, %d) = %d, want %d", tt.live, tt.other, got, tt.want)
			}
		})
	}
}

func TestUsage(t *testing.T) {
	keep := make([]byte, 8<<20)
	runtime.GC()
	live, other := Usage()
	if live == 0 || other == 0 {
		t.Errorf("Usage() = %d live, %d other; want both above 0", live, other)
	}
	_ = keep[len(keep)-1]
}

// TestFollow checks that Follow sets a limit above the live heap while it
// runs and restores the previous limit when it returns.
func TestFollow(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	prev := debug.SetMemoryLimit(-1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Follow(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	testutil.WaitFor(t, "a memory limit", 10*time.Second, func() bool {
		return debug.SetMemoryLimit(-1) != prev
	})
	lim := debug.SetMemoryLimit(-1)
	if live, _ := Usage(); lim < int64(live)+MinHeadroom {
		t.Errorf("limit %d is below the live heap %d + %d", lim, live, MinHeadroom)
	}
	cancel()
	<-done
	if got := debug.SetMemoryLimit(-1); got != prev {
		t.Errorf("limit after Follow returned = %d, want the previous %d", got, prev)
	}
}

// TestFollowLeavesGOMEMLIMIT checks that an operator's GOMEMLIMIT wins.
func TestFollowLeavesGOMEMLIMIT(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "1GiB")
	prev := debug.SetMemoryLimit(-1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	Follow(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if got := debug.SetMemoryLimit(-1); got != prev {
		t.Errorf("limit = %d, want it left at %d", got, prev)
	}
}
