// Package faultnet is a TCP fault proxy for tests and the soak run: it
// forwards one loopback listener to one target and can, at run time, add
// latency and jitter, cap bandwidth, drop every connection, leave
// connections half-open (open, but nothing forwarded) and partition the
// link (nothing forwarded, new connections hang) until healed.
//
// It is a small package of our own rather than toxiproxy: the module proxy
// this project builds from does not serve github.com/Shopify/toxiproxy/v2,
// and the soak needs only these faults, driven in process.
//
// One Proxy per link (one device to the broker, one device to fleetd's
// HTTP) makes a partition of chosen devices a Set on their proxies.
package faultnet

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// Faults are the link conditions a Proxy applies to every byte it forwards.
// The zero value forwards without fault.
type Faults struct {
	// Latency delays each chunk read from either side before it is written
	// to the other; Jitter adds a uniform random delay in [0, Jitter).
	Latency, Jitter time.Duration
	// BytesPerSec caps each direction of each connection; 0 is no cap.
	BytesPerSec int
	// Partition forwards nothing while set: open connections stall (their
	// bytes wait, as on a cut cable), new ones are accepted but the target
	// is not dialled. Clearing it lets everything go on.
	Partition bool
}

// Stats count what a Proxy did since Listen.
type Stats struct {
	Accepted int64 // connections accepted
	Dropped  int64 // connections closed by Drop
	HalfOpen int64 // connections frozen by HalfOpen
	Bytes    int64 // bytes forwarded, both directions
}

// Proxy forwards connections from its listener to its target, applying the
// current Faults. It is safe for concurrent use.
type Proxy struct {
	ln     net.Listener
	target string
	rng    *rand.Rand

	mu     sync.Mutex
	cond   *sync.Cond
	faults Faults
	links  map[*link]struct{}
	stats  Stats
	closed bool
	wg     sync.WaitGroup
}

// link is one proxied connection pair.
type link struct {
	client, server net.Conn
	frozen         bool // half-open: nothing forwarded until closed
	closed         bool
}

// Listen starts a proxy on a free loopback port that forwards to target
// (host:port). seed makes its jitter reproducible.
func Listen(ctx context.Context, target string, seed uint64) (*Proxy, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultnet: listen for %s: %w", target, err)
	}
	p := &Proxy{ln: ln, target: target, links: map[*link]struct{}{}, rng: rand.New(rand.NewPCG(seed, 0x5eed))}
	p.cond = sync.NewCond(&p.mu)
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's listening address (127.0.0.1:port).
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target is the address the proxy forwards to.
func (p *Proxy) Target() string { return p.target }

// SetTarget changes where new connections go (a restarted server on a new
// port); open connections keep theirs.
func (p *Proxy) SetTarget(target string) {
	p.mu.Lock()
	p.target = target
	p.mu.Unlock()
}

// Set replaces the faults; it applies to open connections at once.
func (p *Proxy) Set(f Faults) {
	p.mu.Lock()
	p.faults = f
	p.cond.Broadcast()
	p.mu.Unlock()
}

// Faults returns the faults in force.
func (p *Proxy) Faults() Faults {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.faults
}

// Stats returns the counters.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// Conns is the number of open proxied connections.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.links)
}

// Drop closes every open connection (both sides see a reset or EOF) and
// returns how many it closed.
func (p *Proxy) Drop() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for l := range p.links {
		if !l.closed {
			p.closeLocked(l)
			n++
		}
	}
	p.stats.Dropped += int64(n)
	return n
}

// HalfOpen freezes every open connection: both ends stay open but nothing
// more is forwarded, as when a peer loses power behind a NAT. After d the
// frozen connections are closed (the NAT forgets them), so a client that
// never notices does not hold them for ever. It returns how many it froze.
func (p *Proxy) HalfOpen(d time.Duration) int {
	p.mu.Lock()
	var frozen []*link
	for l := range p.links {
		if !l.closed && !l.frozen {
			l.frozen = true
			frozen = append(frozen, l)
		}
	}
	p.stats.HalfOpen += int64(len(frozen))
	p.mu.Unlock()
	if len(frozen) > 0 {
		time.AfterFunc(d, func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			for _, l := range frozen {
				p.closeLocked(l)
			}
		})
	}
	return len(frozen)
}

// Close stops the listener, closes every connection and waits for the
// proxy's goroutines. It is safe to call twice.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	err := p.ln.Close()
	for l := range p.links {
		p.closeLocked(l)
	}
	p.cond.Broadcast()
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *Proxy) closeLocked(l *link) {
	if l.closed {
		return
	}
	l.closed = true
	l.client.Close()
	if l.server != nil {
		l.server.Close()
	}
	delete(p.links, l)
	p.cond.Broadcast()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		l := &link{client: c}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			return
		}
		p.links[l] = struct{}{}
		p.stats.Accepted++
		p.wg.Add(1)
		p.mu.Unlock()
		go p.serve(l)
	}
}

// serve dials the target once no partition is in force and pipes both ways.
func (p *Proxy) serve(l *link) {
	defer p.wg.Done()
	if !p.gate(l) {
		return
	}
	p.mu.Lock()
	target := p.target
	p.mu.Unlock()
	s, err := net.DialTimeout("tcp", target, 5*time.Second)
	p.mu.Lock()
	if err != nil || l.closed {
		p.closeLocked(l)
		p.mu.Unlock()
		if s != nil {
			s.Close()
		}
		return
	}
	l.server = s
	p.wg.Add(2)
	p.mu.Unlock()
	go p.pipe(l, l.server, l.client)
	go p.pipe(l, l.client, l.server)
}

// gate waits while the link may not forward; false means it was closed.
func (p *Proxy) gate(l *link) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for !l.closed && (l.frozen || p.faults.Partition) {
		p.cond.Wait()
	}
	return !l.closed
}

// delay is how long to hold a chunk of n bytes under the current faults.
func (p *Proxy) delay(n int) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := p.faults.Latency
	if p.faults.Jitter > 0 {
		d += time.Duration(p.rng.Int64N(int64(p.faults.Jitter)))
	}
	if bps := p.faults.BytesPerSec; bps > 0 {
		d += time.Duration(int64(n) * int64(time.Second) / int64(bps))
	}
	return d
}

// chunk is the most bytes read at once: small under a bandwidth cap so the
// cap is smooth.
func (p *Proxy) chunk() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if bps := p.faults.BytesPerSec; bps > 0 {
		return min(max(bps/20, 64), 32<<10)
	}
	return 32 << 10
}

func (p *Proxy) pipe(l *link, dst, src net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf[:p.chunk()])
		if n > 0 {
			if d := p.delay(n); d > 0 {
				time.Sleep(d) // the injected latency itself
			}
			if !p.gate(l) {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				err = werr
			} else {
				p.mu.Lock()
				p.stats.Bytes += int64(n)
				p.mu.Unlock()
			}
		}
		if err != nil {
			// A frozen link stays open on the other side until HalfOpen's
			// timer closes it: the far end must not learn of the close.
			p.mu.Lock()
			if !l.frozen {
				p.closeLocked(l)
			}
			p.mu.Unlock()
			return
		}
	}
}
