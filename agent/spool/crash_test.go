package spool

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"edgefleet/fleet/api"
)

// crashEnv names the spool file a re-executed test binary works on as the
// crash test's child.
const crashEnv = "EDGEFLEET_SPOOL_CRASH_CHILD"

// TestCrashChild is the child side of TestCrashRecovery; it does nothing
// unless crashEnv is set. It appends from four goroutines, acks from one and
// compacts from another, printing "P first last" after each Append returns,
// "I from to" before each Ack and "A from to" after it returns, until it is
// killed.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("child of TestCrashRecovery only")
	}
	time.AfterFunc(30*time.Second, func() { os.Exit(3) })
	s, err := Open(path, Options{MaxBytes: 64 << 20, Logger: quiet})
	if err != nil {
		fmt.Fprintf(os.Stdout, "E open: %v\n", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	say := func(format string, args ...any) {
		line := fmt.Sprintf(format, args...)
		mu.Lock()
		defer mu.Unlock()
		if _, err := io.WriteString(os.Stdout, line); err != nil {
			os.Exit(2)
		}
	}
	fail := func(err error) {
		say("E %v\n", err)
		os.Exit(2)
	}
	ctx := context.Background()
	for g := range 4 {
		go func() {
			for i := 0; ; i++ {
				batch := evs(g*1_000_000+i, 1+rand.IntN(20))
				for j := range batch {
					batch[j].Label = "crash"
				}
				first, last, err := s.Append(ctx, batch...)
				if err != nil {
					fail(err)
				}
				say("P %d %d\n", first, last)
			}
		}()
	}
	go func() {
		for {
			es, err := s.Next(ctx, 0, 500)
			if err != nil {
				fail(err)
			}
			if len(es) > 10 {
				rg := api.SeqRange{From: es[0].Seq, To: es[len(es)-11].Seq}
				say("I %d %d\n", rg.From, rg.To) // these may vanish from now on
				if err := s.Ack(ctx, rg); err != nil {
					fail(err)
				}
				say("A %d %d\n", rg.From, rg.To)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	for {
		time.Sleep(time.Duration(20+rand.IntN(60)) * time.Millisecond)
		if err := s.Compact(ctx); err != nil {
			fail(err)
		}
		say("C 0 0\n")
	}
}

// crashLog is what the children printed, over all rounds.
type crashLog struct {
	appended [][2]uint64 // Append returned
	acked    ranges      // Ack returned: must be gone
	intended ranges      // Ack called: may be gone
	maxSeq   uint64

	appends, acks, compactions int // totals, for the log
}

// ranges is a set of inclusive seq ranges.
type ranges [][2]uint64

// merge sorts and merges the ranges so has can search them.
func (rs ranges) merge() ranges {
	sort.Slice(rs, func(i, j int) bool { return rs[i][0] < rs[j][0] })
	out := rs[:0]
	for _, a := range rs {
		if n := len(out); n > 0 && a[0] <= out[n-1][1]+1 {
			out[n-1][1] = max(out[n-1][1], a[1])
			continue
		}
		out = append(out, a)
	}
	return out
}

func (rs ranges) has(seq uint64) bool {
	i := sort.Search(len(rs), func(i int) bool { return rs[i][1] >= seq })
	return i < len(rs) && rs[i][0] <= seq
}

// runChild starts the child, kills it with SIGKILL at a random moment, and
// returns the complete lines it printed.
func runChild(t *testing.T, path string, r *rand.Rand) []string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		br := bufio.NewReader(out)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return // a partial last line is not a promise
			}
			lines <- strings.TrimSuffix(line, "\n")
		}
	}()
	var got []string
	// One round in five kills during start-up (Open, schema, first commit);
	// the others once appends are flowing, after a random while.
	if r.IntN(5) == 0 {
		time.Sleep(time.Duration(r.IntN(40)) * time.Millisecond)
	} else {
		select {
		case l, ok := <-lines:
			if ok {
				got = append(got, l)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("child printed nothing for 20s")
		}
		time.Sleep(time.Duration(r.IntN(300)) * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for l := range lines {
		got = append(got, l)
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
		t.Fatalf("child ended by itself (%v): %v", err, got[max(len(got)-3, 0):])
	}
	return got
}

// TestCrashRecovery is issue 4 point 2: a real process appending (and
// acking, and compacting) is killed with SIGKILL many times; after each kill
// the spool must open, hold every event whose Append had returned (unless
// its Ack had returned too), hold none whose Ack had returned, and continue
// the seq where it left off.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test runs child processes")
	}
	path := filepath.Join(t.TempDir(), "spool.db")
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	var log crashLog
	start := time.Now()
	rounds := 0
	for ; rounds < 30 && time.Since(start) < 25*time.Second; rounds++ {
		lines := runChild(t, path, r)
		roundMin := ^uint64(0)
		for _, l := range lines {
			var kind string
			var a, b uint64
			if _, err := fmt.Sscanf(l, "%s %d %d", &kind, &a, &b); err != nil {
				t.Fatalf("round %d: child said %q", rounds, l)
			}
			switch kind {
			case "P":
				log.appended = append(log.appended, [2]uint64{a, b})
				roundMin = min(roundMin, a)
				log.appends++
			case "A":
				log.acked = append(log.acked, [2]uint64{a, b})
				log.acks++
			case "C":
				log.compactions++
			case "I":
				log.intended = append(log.intended, [2]uint64{a, b})
			default:
				t.Fatalf("round %d: child said %q", rounds, l)
			}
		}
		if roundMin != ^uint64(0) && roundMin <= log.maxSeq {
			t.Fatalf("round %d: seq %d reused (had reached %d)", rounds, roundMin, log.maxSeq)
		}
		verifyAfterCrash(t, path, &log, rounds)
	}
	if rounds < 8 {
		t.Fatalf("only %d rounds in %v", rounds, time.Since(start))
	}
	t.Logf("%d kills; %d appends, %d acks, %d compactions returned; last seq %d; %v",
		rounds, log.appends, log.acks, log.compactions, log.maxSeq, time.Since(start).Round(time.Millisecond))
}

func verifyAfterCrash(t *testing.T, path string, log *crashLog, round int) {
	t.Helper()
	ctx := context.Background()
	s, err := Open(path, Options{MaxBytes: 64 << 20, Logger: quiet})
	if err != nil {
		t.Fatalf("round %d: open after kill: %v", round, err)
	}
	defer s.Close()
	if _, err := os.Stat(path + compactSuffix); !os.IsNotExist(err) {
		t.Fatalf("round %d: compaction leftover not removed: %v", round, err)
	}
	stored := map[uint64]bool{}
	var last uint64
	for {
		es, err := s.Next(ctx, last, 1000)
		if err != nil {
			t.Fatalf("round %d: Next after %d: %v", round, last, err)
		}
		if len(es) == 0 {
			break
		}
		for _, e := range es {
			if e.Label != "crash" || e.Model != "yolov8n" {
				t.Fatalf("round %d: seq %d holds %+v", round, e.Seq, e)
			}
			stored[e.Seq] = true
			last = e.Seq
		}
	}
	st := s.Stats()
	if st.Depth != uint64(len(stored)) {
		t.Fatalf("round %d: Stats.Depth %d, but %d events readable", round, st.Depth, len(stored))
	}
	if d := s.DroppedSeqs(); d.Count() != st.Dropped() {
		t.Fatalf("round %d: dropped list counts %d, Stats.Dropped %d", round, d.Count(), st.Dropped())
	}
	log.acked = log.acked.merge()
	log.intended = log.intended.merge()
	var keep [][2]uint64
	for _, p := range log.appended {
		for seq := p[0]; seq <= p[1]; seq++ {
			switch {
			case stored[seq]:
				keep = append(keep, [2]uint64{seq, seq})
			case !log.intended.has(seq):
				t.Fatalf("round %d: seq %d was appended (Append returned) but is gone", round, seq)
			}
			log.maxSeq = max(log.maxSeq, seq)
		}
	}
	for seq := range stored {
		if log.acked.has(seq) {
			t.Fatalf("round %d: seq %d was acked (Ack returned) but is still stored", round, seq)
		}
		log.maxSeq = max(log.maxSeq, seq)
	}
	if st.NextSeq <= log.maxSeq {
		t.Fatalf("round %d: next seq %d not above %d", round, st.NextSeq, log.maxSeq)
	}
	// Seqs committed but never printed still count as used.
	log.maxSeq = st.NextSeq - 1
	// Later rounds recheck only what is still stored.
	log.appended = keep
}
