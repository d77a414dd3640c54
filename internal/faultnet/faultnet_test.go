package faultnet

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"edgefleet/internal/testutil"
)

// echo is a loopback echo server counting the connections it accepted.
type echo struct {
	ln       net.Listener
	accepted atomic.Int64
}

func startEcho(t *testing.T) *echo {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echo{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.accepted.Add(1)
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return e
}

func startProxy(t *testing.T, target string) *Proxy {
	t.Helper()
	p, err := Listen(context.Background(), target, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func dial(t *testing.T, p *Proxy) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes msg and reads it back, failing after 10 s.
func roundTrip(t *testing.T, c net.Conn, msg []byte) {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read back: %v", err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo differs")
	}
}

// TestDelays checks that latency and a bandwidth cap hold bytes back at
// least as long as they say (a lower bound: the machine may add more).
func TestDelays(t *testing.T) {
	cases := []struct {
		name   string
		faults Faults
		size   int
		least  time.Duration
	}{
		{"none", Faults{}, 1000, 0},
		{"latency", Faults{Latency: 150 * time.Millisecond}, 10, 300 * time.Millisecond}, // there and back
		{"jitter", Faults{Latency: 50 * time.Millisecond, Jitter: 50 * time.Millisecond}, 10, 100 * time.Millisecond},
		{"bandwidth", Faults{BytesPerSec: 8 << 10}, 4 << 10, 450 * time.Millisecond}, // 4 KiB at 8 KiB/s (the echo overlaps)
	}
	e := startEcho(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := startProxy(t, e.ln.Addr().String())
			p.Set(tc.faults)
			c := dial(t, p)
			start := time.Now()
			roundTrip(t, c, bytes.Repeat([]byte("x"), tc.size))
			if took := time.Since(start); took < tc.least {
				t.Fatalf("round trip took %v, want at least %v", took, tc.least)
			}
			testutil.WaitFor(t, "both directions counted", 5*time.Second, func() bool { return p.Stats().Bytes == int64(2*tc.size) })
		})
	}
}

func TestDrop(t *testing.T) {
	e := startEcho(t)
	p := startProxy(t, e.ln.Addr().String())
	c := dial(t, p)
	roundTrip(t, c, []byte("hello"))
	if n := p.Drop(); n != 1 {
		t.Fatalf("Drop closed %d connections, want 1", n)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read after Drop: %v, want EOF or reset", err)
	}
	roundTrip(t, dial(t, p), []byte("again")) // new connections still work
	if s := p.Stats(); s.Dropped != 1 || s.Accepted != 2 {
		t.Fatalf("stats %+v", s)
	}
}

func TestHalfOpen(t *testing.T) {
	e := startEcho(t)
	p := startProxy(t, e.ln.Addr().String())
	c := dial(t, p)
	roundTrip(t, c, []byte("hello"))
	if n := p.HalfOpen(time.Second); n != 1 {
		t.Fatalf("HalfOpen froze %d, want 1", n)
	}
	if _, err := c.Write([]byte("lost")); err != nil {
		t.Fatalf("write to a half-open link: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := c.Read(make([]byte, 8)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("half-open link forwarded: n=%d err=%v", n, err)
	}
	// After the hold the proxy closes it.
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 8)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("half-open link not closed after its hold: %v", err)
	}
	roundTrip(t, dial(t, p), []byte("new")) // new connections are not frozen
}

func TestPartition(t *testing.T) {
	e := startEcho(t)
	p := startProxy(t, e.ln.Addr().String())
	old := dial(t, p)
	roundTrip(t, old, []byte("before"))
	p.Set(Faults{Partition: true})

	if _, err := old.Write([]byte("held")); err != nil {
		t.Fatal(err)
	}
	fresh := dial(t, p)
	fresh.Write([]byte("new"))
	for _, c := range []net.Conn{old, fresh} {
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if n, err := c.Read(make([]byte, 8)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("partitioned link forwarded: n=%d err=%v", n, err)
		}
	}
	if n := e.accepted.Load(); n != 1 {
		t.Fatalf("target saw %d connections during the partition, want only the first", n)
	}

	p.Set(Faults{}) // heal: what waited goes through, on both connections
	for c, want := range map[net.Conn]string{old: "held", fresh: "new"} {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		got := make([]byte, len(want))
		if _, err := io.ReadFull(c, got); err != nil || string(got) != want {
			t.Fatalf("after heal got %q, %v; want %q", got, err, want)
		}
	}
	testutil.WaitFor(t, "second connection at the target", 5*time.Second, func() bool { return e.accepted.Load() == 2 })
}

func TestSetTargetAndClose(t *testing.T) {
	a, b := startEcho(t), startEcho(t)
	p := startProxy(t, a.ln.Addr().String())
	roundTrip(t, dial(t, p), []byte("a"))
	p.SetTarget(b.ln.Addr().String())
	roundTrip(t, dial(t, p), []byte("b"))
	if a.accepted.Load() != 1 || b.accepted.Load() != 1 {
		t.Fatalf("accepted a=%d b=%d, want 1 and 1", a.accepted.Load(), b.accepted.Load())
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		t.Fatal("proxy still listening after Close")
	}
}
