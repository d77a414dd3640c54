package ingest

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// bufConn is the connection Dial's client uses to the broker. paho reads a
// packet in three or four small reads and writes each packet (every ack
// and every PUBACK) with a write of its own: one system call each, on
// fleetd's and on the broker's side. bufConn buffers the reads, and its
// writes are coalesced: Write copies the packet into a buffer that one
// goroutine writes out while the next packets accumulate, so a burst of
// packets costs one system call. Nothing waits for a timer: a lone packet
// goes out at once.
//
// A failed write closes the connection, so paho's reader fails and paho
// reconnects; Write returns the error from then on. Close writes what is
// buffered (for at most closeFlush) before it closes.
type bufConn struct {
	net.Conn
	r *bufio.Reader

	mu       sync.Mutex
	wake     *sync.Cond // the buffer has room again, or the writer has finished
	buf      []byte     // waiting to be written
	writing  bool       // the writer goroutine is writing a buffer out
	err      error      // sticky write error
	closed   bool
	finished chan struct{} // the writer goroutine has returned
	kick     chan struct{} // cap 1: buf has data
}

const (
	bufConnRead = 64 << 10 // read buffer
	bufConnMax  = 4 << 20  // Write waits while this much is buffered
	closeFlush  = time.Second
)

func newBufConn(c net.Conn) *bufConn {
	b := &bufConn{Conn: c, r: bufio.NewReaderSize(c, bufConnRead), finished: make(chan struct{}), kick: make(chan struct{}, 1)}
	b.wake = sync.NewCond(&b.mu)
	go b.writer()
	return b
}

// Read reads through the buffer; paho reads from one goroutine.
func (b *bufConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// Write queues p; it blocks only while bufConnMax bytes are queued.
func (b *bufConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.err == nil && !b.closed && len(b.buf) >= bufConnMax {
		b.wake.Wait()
	}
	switch {
	case b.err != nil:
		return 0, b.err
	case b.closed:
		return 0, net.ErrClosed
	}
	b.buf = append(b.buf, p...)
	select {
	case b.kick <- struct{}{}:
	default:
	}
	return len(p), nil
}

// writer writes the buffer out whenever it has data, until Close.
func (b *bufConn) writer() {
	defer close(b.finished)
	var spare []byte
	for {
		b.mu.Lock()
		for len(b.buf) == 0 && !b.closed && b.err == nil {
			b.mu.Unlock()
			<-b.kick
			b.mu.Lock()
		}
		if len(b.buf) == 0 || b.err != nil {
			b.mu.Unlock()
			return // closed with nothing left, or broken
		}
		out := b.buf
		b.buf, spare = spare[:0], nil
		b.writing = true
		b.mu.Unlock()

		_, err := b.Conn.Write(out)

		b.mu.Lock()
		b.writing = false
		spare = out
		if err != nil {
			b.err = fmt.Errorf("mqtt connection: %w", err)
			b.Conn.Close() // paho's reader fails and reconnects
		}
		b.wake.Broadcast()
		b.mu.Unlock()
	}
}

// Close writes what is queued (for at most closeFlush) and closes the connection.
func (b *bufConn) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.wake.Broadcast()
	b.mu.Unlock()
	select {
	case b.kick <- struct{}{}:
	default:
	}
	b.Conn.SetWriteDeadline(time.Now().Add(closeFlush))
	<-b.finished
	err := b.Conn.Close()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// openBufConn is Dial's paho.OpenConnectionFunc: a TCP (tcp://, mqtt://)
// or TLS (ssl://, tls://, mqtts://) connection wrapped in a bufConn.
func openBufConn(uri *url.URL, o paho.ClientOptions) (net.Conn, error) {
	d := &net.Dialer{Timeout: o.ConnectTimeout}
	var c net.Conn
	var err error
	switch uri.Scheme {
	case "tcp", "mqtt":
		c, err = d.DialContext(context.Background(), "tcp", uri.Host)
	case "ssl", "tls", "mqtts":
		c, err = tls.DialWithDialer(d, "tcp", uri.Host, o.TLSConfig)
	default:
		return nil, fmt.Errorf("mqtt connection: scheme %q is not tcp, mqtt, ssl, tls or mqtts", uri.Scheme)
	}
	if err != nil {
		return nil, err
	}
	return newBufConn(c), nil
}
