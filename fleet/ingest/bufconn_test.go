package ingest

import (
	"bytes"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"

	paho "github.com/eclipse/paho.mqtt.golang"

	"edgefleet/internal/testutil"
)

// loopbackPair returns a bufConn and the other end of its TCP connection.
func loopbackPair(t *testing.T) (*bufConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	b := newBufConn(c)
	t.Cleanup(func() { b.Close(); peer.Close() })
	return b, peer
}

func TestBufConn(t *testing.T) {
	tests := []struct {
		name    string
		writers int
		packets int // per writer
		size    int
	}{
		{"one small packet", 1, 1, 10},
		{"many small packets", 1, 5000, 40},
		{"concurrent writers", 8, 500, 100},
		{"packets past the buffer cap", 1, 12, bufConnMax / 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, peer := loopbackPair(t)
			var want bytes.Buffer
			var mu sync.Mutex
			var wg sync.WaitGroup
			for w := range tc.writers {
				wg.Go(func() {
					for i := range tc.packets {
						p := bytes.Repeat([]byte{byte('a' + (w+i)%26)}, tc.size)
						mu.Lock() // packets are whole and in the order written
						want.Write(p)
						_, err := b.Write(p)
						mu.Unlock()
						if err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			got := make(chan []byte, 1)
			go func() { all, _ := io.ReadAll(peer); got <- all }()
			wg.Wait()
			if err := b.Close(); err != nil { // writes out what is queued
				t.Fatal(err)
			}
			if g := <-got; !bytes.Equal(g, want.Bytes()) {
				t.Fatalf("peer read %d bytes, want %d (or the order differs)", len(g), want.Len())
			}
		})
	}
}

func TestBufConnReads(t *testing.T) {
	b, peer := loopbackPair(t)
	msg := []byte("0123456789")
	go peer.Write(msg)
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(b, got[:1]); err != nil { // paho reads the first byte alone
		t.Fatal(err)
	}
	if _, err := io.ReadFull(b, got[1:]); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("read %q, want %q", got, msg)
	}
}

func TestBufConnBrokenAndClosed(t *testing.T) {
	b, peer := loopbackPair(t)
	peer.(*net.TCPConn).SetLinger(0)
	peer.Close() // a reset: the next writes fail
	testutil.Eventually(t, "a write fails once the peer is gone", func() bool {
		_, err := b.Write([]byte("x"))
		return err != nil
	})
	if _, err := b.Read(make([]byte, 1)); err == nil {
		t.Fatal("read succeeded on a broken connection")
	}
	if err := b.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if _, err := b.Write([]byte("x")); err == nil {
		t.Fatal("write after close succeeded")
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

func TestOpenBufConnSchemes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	for _, tc := range []struct {
		url   string
		isBuf bool
		err   bool
	}{
		{"tcp://" + ln.Addr().String(), true, false},
		{"mqtt://" + ln.Addr().String(), true, false},
		{"ws://" + ln.Addr().String(), false, true},
	} {
		t.Run(tc.url, func(t *testing.T) {
			u, err := url.Parse(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			c, err := openBufConn(u, *paho.NewClientOptions())
			if (err != nil) != tc.err {
				t.Fatalf("err = %v, want error: %v", err, tc.err)
			}
			if c != nil {
				defer c.Close()
			}
			if _, ok := c.(*bufConn); ok != tc.isBuf {
				t.Fatalf("got %T", c)
			}
		})
	}
}
