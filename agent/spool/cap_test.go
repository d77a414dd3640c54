package spool

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"edgefleet/fleet/api"
	"edgefleet/internal/testutil"
)

func fileSize(t testing.TB, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// appendMany appends n events in calls of batch, checking after each call
// that the file on disk stays within limit; it returns the largest size seen.
func appendMany(t *testing.T, s *Spool, n, batch int, limit int64) (peak int64) {
	return appendMeasured(t, s, n, batch, limit, fileSize)
}

// diskBytes is the space the file takes on disk (its blocks), which is what
// counts on a filesystem where bbolt's truncate leaves sparse tails.
func diskBytes(t testing.TB, path string) int64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

func appendMeasured(t *testing.T, s *Spool, n, batch int, limit int64, size func(testing.TB, string) int64) (peak int64) {
	t.Helper()
	ctx := context.Background()
	for i := 0; i < n; i += batch {
		if _, _, err := s.Append(ctx, evs(i, batch)...); err != nil {
			t.Fatalf("Append %d: %v (the spool must keep accepting)", i, err)
		}
		size := size(t, s.Path())
		peak = max(peak, size)
		if size > limit {
			t.Fatalf("after %d events the file is %d bytes, over %d; %+v", i+batch, size, limit, s.Stats())
		}
	}
	return peak
}

// checkNewest checks that the newest events are all there, in order.
func checkNewest(t *testing.T, s *Spool, n int) {
	t.Helper()
	st := s.Stats()
	got, err := s.Next(context.Background(), st.NextSeq-1-uint64(n), n)
	if err != nil || len(got) != n {
		t.Fatalf("Next of the newest %d: %d events, %v", n, len(got), err)
	}
	for i, e := range got {
		if want := st.NextSeq - uint64(n-i); e.Seq != want {
			t.Fatalf("newest events: seq %d at %d, want %d", e.Seq, i, want)
		}
	}
}

// TestByteCapBoundsFile is issue 4 point 3: with a small cap, a long run of
// appends keeps the file under the cap, counts what it drops, and keeps
// accepting.
func TestByteCapBoundsFile(t *testing.T) {
	const maxBytes = 1 << 20
	s := open(t, filepath.Join(t.TempDir(), "spool.db"), Options{MaxBytes: maxBytes})
	const n = 60_000 // about 6 MB of events through a 1 MiB file
	peak := appendMany(t, s, n, 100, maxBytes)
	st := s.Stats()
	if st.DroppedCap == 0 || st.Depth+st.DroppedCap != n || st.Dropped() != st.DroppedCap {
		t.Fatalf("Stats = %+v; want depth + dropped_cap = %d", st, n)
	}
	if st.Bytes > st.BudgetBytes || st.BudgetBytes != maxBytes/2 {
		t.Fatalf("stored %d bytes, budget %d", st.Bytes, st.BudgetBytes)
	}
	if v := value(s.m.dropped.WithLabelValues("cap")); v != float64(st.DroppedCap) {
		t.Fatalf("dropped{reason=cap} = %v, Stats %d", v, st.DroppedCap)
	}
	checkNewest(t, s, 500)
	t.Logf("peak file %d bytes for cap %d; kept %d events, dropped %d", peak, maxBytes, st.Depth, st.DroppedCap)
}

// TestMaxSizeIsHard lifts the byte budget past the file cap, so only bbolt's
// MaxSize stops growth: appends must still succeed by dropping the oldest.
func TestMaxSizeIsHard(t *testing.T) {
	const maxBytes = 1 << 20
	s := open(t, filepath.Join(t.TempDir(), "spool.db"), Options{MaxBytes: maxBytes})
	s.budget = 1 << 40 // read by the committer only after the first request is sent
	appendMany(t, s, 60_000, 200, maxBytes)
	st := s.Stats()
	if st.DroppedFull == 0 || st.Depth+st.Dropped() != 60_000 {
		t.Fatalf("Stats = %+v; want drops for a full file", st)
	}
	if st.BudgetBytes >= maxBytes {
		t.Fatalf("budget %d not lowered after the file filled", st.BudgetBytes)
	}
	checkNewest(t, s, 200)
}

// TestCompactAfterDrain fills the spool (a long outage), acks everything,
// and checks the file shrinks back: bbolt never shrinks on its own.
func TestCompactAfterDrain(t *testing.T) {
	ctx := context.Background()
	const maxBytes = 4 << 20
	path := filepath.Join(t.TempDir(), "spool.db")
	s := open(t, path, Options{MaxBytes: maxBytes})
	appendMany(t, s, 18_000, 500, maxBytes)
	full := fileSize(t, path)
	if full < 1<<20 {
		t.Fatalf("file only %d bytes after the fill; test needs it past a quarter of the cap", full)
	}
	st := s.Stats()
	if err := s.Ack(ctx, api.SeqRange{From: 1, To: st.NextSeq - 1}); err != nil {
		t.Fatal(err)
	}
	// The Ack returns before the compaction it triggers; wait for it.
	testutil.WaitFor(t, "the compaction", 10*time.Second, func() bool { return s.Stats().Compactions > 0 })
	small := fileSize(t, path)
	if st := s.Stats(); st.Compactions != 1 || st.Depth != 0 || st.FileBytes != small {
		t.Fatalf("after draining: %+v, file %d", st, small)
	}
	if small > 256<<10 {
		t.Fatalf("file is %d bytes after draining and compaction (was %d)", small, full)
	}
	if _, err := os.Stat(path + compactSuffix); !os.IsNotExist(err) {
		t.Fatalf("temporary compaction file left: %v", err)
	}
	first, _, err := s.Append(ctx, ev(1))
	if err != nil || first != st.NextSeq {
		t.Fatalf("Append after compaction = %d, %v; want seq %d", first, err, st.NextSeq)
	}
	// Explicit compaction, then a restart, keep everything.
	if err := s.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, path, Options{MaxBytes: maxBytes})
	got, err := s.Next(ctx, 0, 10)
	if err != nil || len(got) != 1 || got[0].Seq != first {
		t.Fatalf("after compaction and reopen: %v, %v", seqs(got), err)
	}
	t.Logf("file %d bytes full, %d after drain", full, small)
}

// TestWeeksOfChurn runs many fill-and-drain cycles and checks the file never
// ratchets up beyond what one fill needs.
func TestWeeksOfChurn(t *testing.T) {
	ctx := context.Background()
	const maxBytes = 4 << 20
	s := open(t, filepath.Join(t.TempDir(), "spool.db"), Options{MaxBytes: maxBytes, CompactInterval: -1})
	var peak int64
	for round := range 12 {
		n := 2000 + 1000*(round%5)
		peak = max(peak, appendMany(t, s, n, 250, maxBytes))
		st := s.Stats()
		// The fleet acks all but the last 100.
		if err := s.Ack(ctx, api.SeqRange{From: 0, To: st.NextSeq - 101}); err != nil {
			t.Fatal(err)
		}
	}
	// Without compaction, pages freed by acks are reused: the file stays
	// at about the high-water mark of one fill (6000 events, ~600 KB).
	if peak > 1<<20 {
		t.Fatalf("file grew to %d bytes over 12 fill/drain cycles", peak)
	}
	t.Logf("peak %d bytes", peak)
}

// TestDiskFull runs the spool on a 1 MiB tmpfs, far below its MaxBytes, so
// the disk fills first (ENOSPC). Needs root for mount; skipped otherwise.
func TestDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	dir := filepath.Join(t.TempDir(), "small")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, 0) })
	s, err := Open(filepath.Join(dir, "spool.db"), Options{MaxBytes: 64 << 20, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	appendMeasured(t, s, 60_000, 200, 1<<20, diskBytes)
	st := s.Stats()
	if st.DroppedFull == 0 || st.Depth+st.Dropped() != 60_000 {
		t.Fatalf("Stats = %+v; want drops for a full disk", st)
	}
	checkNewest(t, s, 200)
	t.Logf("on a 1 MiB disk: %+v", st)
}
