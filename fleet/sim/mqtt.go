package sim

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// A minimal MQTT 3.1.1 client for the simulator: QoS 0 and 1 publish,
// subscribe, will, no reconnect, no keepalive pings (keepalive 0). One read
// goroutine per connection and direct writes keep the simulator cheap, so
// that it measures fleetd rather than itself. Agents use a full client.

// Packet types.
const (
	pktConnect    = 1
	pktConnack    = 2
	pktPublish    = 3
	pktPuback     = 4
	pktSubscribe  = 8
	pktSuback     = 9
	pktPingreq    = 12
	pktPingresp   = 13
	pktDisconnect = 14
)

// maxPacket bounds what the client reads.
const maxPacket = 2 << 20

type mqttConn struct {
	c  net.Conn
	br *bufio.Reader

	wmu sync.Mutex
	bw  *bufio.Writer
	id  uint16

	rbuf      []byte                             // read's buffer, reused
	onPublish func(topic string, payload []byte) // must not keep payload
	inflight  atomic.Int64                       // QoS 1 publishes not yet acknowledged
	suback    chan struct{}
	done      chan struct{}
	err       error
}

type will struct {
	topic   string
	payload []byte
	retain  bool
	qos     byte
}

// dialMQTT connects and logs in; broker is tcp://host:port.
func dialMQTT(ctx context.Context, broker, clientID, user, pass string, w *will, onPublish func(string, []byte)) (*mqttConn, error) {
	u, err := url.Parse(broker)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("broker %q is not like tcp://host:port", broker)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, err
	}
	m := &mqttConn{c: c, br: bufio.NewReaderSize(c, 4096), bw: bufio.NewWriterSize(c, 4096), onPublish: onPublish,
		suback: make(chan struct{}, 1), done: make(chan struct{})}
	// CONNECT
	var body []byte
	body = appendString(body, "MQTT")
	body = append(body, 4) // 3.1.1
	flags := byte(0x02)    // clean session
	if user != "" {
		flags |= 0x80
	}
	if pass != "" {
		flags |= 0x40
	}
	if w != nil {
		flags |= 0x04 | w.qos<<3
		if w.retain {
			flags |= 0x20
		}
	}
	body = append(body, flags, 0, 0) // keepalive 0
	body = appendString(body, clientID)
	if w != nil {
		body = appendString(body, w.topic)
		body = appendBytes(body, w.payload)
	}
	if user != "" {
		body = appendString(body, user)
	}
	if pass != "" {
		body = appendString(body, pass)
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	} else {
		c.SetDeadline(time.Now().Add(30 * time.Second))
	}
	if err := m.write(pktConnect<<4, body); err != nil {
		c.Close()
		return nil, err
	}
	typ, b, err := m.read()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("connack: %w", err)
	}
	if typ>>4 != pktConnack || len(b) < 2 {
		c.Close()
		return nil, fmt.Errorf("expected CONNACK, got packet type %d", typ)
	}
	if b[1] != 0 {
		c.Close()
		return nil, fmt.Errorf("connection refused, return code %d", b[1])
	}
	c.SetDeadline(time.Time{})
	go m.readLoop()
	return m, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func appendBytes(b []byte, p []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(p)))
	return append(b, p...)
}

// write sends one packet: fixed header byte, remaining length, body.
func (m *mqttConn) write(first byte, body []byte) error {
	var hdr [5]byte
	n := putHeader(hdr[:], first, len(body))
	m.wmu.Lock()
	defer m.wmu.Unlock()
	m.bw.Write(hdr[:n])
	m.bw.Write(body)
	return m.bw.Flush()
}

// putHeader writes a packet's fixed header (first byte, remaining length
// l) into hdr, which has room for 5 bytes, and returns its length.
func putHeader(hdr []byte, first byte, l int) int {
	hdr[0] = first
	n := 1
	for {
		b := byte(l % 128)
		l /= 128
		if l > 0 {
			b |= 0x80
		}
		hdr[n] = b
		n++
		if l == 0 {
			return n
		}
	}
}

// read reads the next packet; its body is valid until the next read.
func (m *mqttConn) read() (byte, []byte, error) {
	first, err := m.br.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	l, mult := 0, 1
	for i := 0; ; i++ {
		b, err := m.br.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		l += int(b&0x7f) * mult
		if b&0x80 == 0 {
			break
		}
		if mult *= 128; i >= 3 {
			return 0, nil, errors.New("malformed remaining length")
		}
	}
	if l > maxPacket {
		return 0, nil, fmt.Errorf("packet of %d bytes", l)
	}
	if cap(m.rbuf) < l {
		m.rbuf = make([]byte, l)
	}
	b := m.rbuf[:l]
	if _, err := io.ReadFull(m.br, b); err != nil {
		return 0, nil, err
	}
	return first, b, nil
}

func (m *mqttConn) readLoop() {
	defer close(m.done)
	for {
		first, b, err := m.read()
		if err != nil {
			m.err = err
			return
		}
		switch first >> 4 {
		case pktPublish:
			qos := (first >> 1) & 3
			if len(b) < 2 {
				continue
			}
			tl := int(binary.BigEndian.Uint16(b))
			if len(b) < 2+tl {
				continue
			}
			topic := string(b[2 : 2+tl])
			rest := b[2+tl:]
			if qos > 0 {
				if len(rest) < 2 {
					continue
				}
				m.write(pktPuback<<4, rest[:2])
				rest = rest[2:]
			}
			if m.onPublish != nil {
				m.onPublish(topic, rest)
			}
		case pktPuback:
			m.inflight.Add(-1)
		case pktSuback:
			select {
			case m.suback <- struct{}{}:
			default:
			}
		}
	}
}

func (m *mqttConn) nextID() uint16 {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	m.id++
	if m.id == 0 {
		m.id = 1
	}
	return m.id
}

// subscribe subscribes to filters at QoS 1 and waits for the SUBACK.
func (m *mqttConn) subscribe(ctx context.Context, filters ...string) error {
	body := binary.BigEndian.AppendUint16(nil, m.nextID())
	for _, f := range filters {
		body = appendString(body, f)
		body = append(body, 1)
	}
	if err := m.write(pktSubscribe<<4|0x02, body); err != nil {
		return err
	}
	select {
	case <-m.suback:
		return nil
	case <-m.done:
		return fmt.Errorf("connection closed: %v", m.err)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// publish sends a message; at QoS 1 the PUBACK is counted in inflight.
// The packet goes from its parts into the connection's buffer, not
// through a body of its own.
func (m *mqttConn) publish(topic string, qos byte, retain bool, payload []byte) error {
	first := byte(pktPublish<<4) | qos<<1
	if retain {
		first |= 1
	}
	l := 2 + len(topic) + len(payload)
	if qos > 0 {
		l += 2
	}
	var hdr [9]byte
	n := putHeader(hdr[:], first, l)
	hdr[n], hdr[n+1] = byte(len(topic)>>8), byte(len(topic))
	m.wmu.Lock()
	defer m.wmu.Unlock()
	m.bw.Write(hdr[:n+2])
	m.bw.WriteString(topic)
	if qos > 0 {
		if m.id++; m.id == 0 {
			m.id = 1
		}
		m.bw.WriteByte(byte(m.id >> 8))
		m.bw.WriteByte(byte(m.id))
		m.inflight.Add(1)
	}
	m.bw.Write(payload)
	return m.bw.Flush()
}

// close sends DISCONNECT (so no will is published) and closes.
func (m *mqttConn) close() {
	m.write(pktDisconnect<<4, nil)
	m.c.Close()
	<-m.done
}
