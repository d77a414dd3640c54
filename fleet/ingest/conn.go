package ingest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"edgefleet/fleet/broker"
)

// Embedded returns a Conn on fleetd's embedded broker, in process.
// Handlers run on the publishing client's goroutine, so a slow handler
// slows only that device.
func Embedded(b *broker.Broker) Conn { return embedded{b} }

type embedded struct{ b *broker.Broker }

func (c embedded) Subscribe(ctx context.Context, filter string, h func(string, []byte)) error {
	cancel, err := c.b.Subscribe(filter, func(m broker.Message) { h(m.Topic, m.Payload) })
	if err != nil {
		return fmt.Errorf("embedded subscribe %s: %w", filter, err)
	}
	context.AfterFunc(ctx, cancel)
	return nil
}

func (c embedded) Publish(ctx context.Context, topic string, retain bool, payload []byte) error {
	if err := c.b.Publish(topic, payload, retain, 1); err != nil {
		return fmt.Errorf("embedded publish %s: %w", topic, err)
	}
	return nil
}

// DialOptions configures Dial.
type DialOptions struct {
	URL      string // tcp://host:1883
	ClientID string
	Username string
	Password string
	// ConnectTimeout bounds the first connection; default 10s.
	ConnectTimeout time.Duration
}

// Dial connects to an external broker. Subscriptions are restored after a
// reconnect. Close the returned client's connection with Disconnect.
func Dial(ctx context.Context, o DialOptions) (*Paho, error) {
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 10 * time.Second
	}
	p := &Paho{subs: map[string]paho.MessageHandler{}}
	opts := paho.NewClientOptions().AddBroker(o.URL).SetClientID(o.ClientID).
		SetUsername(o.Username).SetPassword(o.Password).
		SetCleanSession(true).SetOrderMatters(false).SetAutoReconnect(true).
		SetConnectRetry(true).SetConnectRetryInterval(time.Second).SetMaxReconnectInterval(10 * time.Second).
		SetKeepAlive(30 * time.Second).SetMessageChannelDepth(10000).
		SetCustomOpenConnectionFn(openBufConn). // buffered reads, coalesced writes (bufconn.go)
		SetOnConnectHandler(func(cl paho.Client) {
			p.mu.Lock()
			defer p.mu.Unlock()
			for f, h := range p.subs {
				cl.Subscribe(f, 1, h)
			}
		})
	p.cl = paho.NewClient(opts)
	tok := p.cl.Connect()
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			return nil, fmt.Errorf("ingest: dial %s: %w", o.URL, err)
		}
	case <-time.After(o.ConnectTimeout):
		p.cl.Disconnect(0)
		return nil, fmt.Errorf("ingest: dial %s: no connection after %v", o.URL, o.ConnectTimeout)
	case <-ctx.Done():
		p.cl.Disconnect(0)
		return nil, fmt.Errorf("ingest: dial %s: %w", o.URL, ctx.Err())
	}
	if !p.cl.IsConnected() {
		// ConnectRetry makes the token succeed before the first connection; wait for it.
		deadline := time.Now().Add(o.ConnectTimeout)
		for !p.cl.IsConnectionOpen() {
			if time.Now().After(deadline) || ctx.Err() != nil {
				p.cl.Disconnect(0)
				return nil, fmt.Errorf("ingest: dial %s: no connection after %v", o.URL, o.ConnectTimeout)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return p, nil
}

// Paho is a Conn on an external broker.
type Paho struct {
	cl   paho.Client
	mu   sync.Mutex
	subs map[string]paho.MessageHandler

	unsubscribed atomic.Int64 // UNSUBACKs received, for tests
}

// Subscribe implements Conn.
func (p *Paho) Subscribe(ctx context.Context, filter string, h func(string, []byte)) error {
	mh := func(_ paho.Client, m paho.Message) { h(m.Topic(), m.Payload()) }
	p.mu.Lock()
	p.subs[filter] = mh
	p.mu.Unlock()
	if err := wait(ctx, p.cl.Subscribe(filter, 1, mh)); err != nil {
		return fmt.Errorf("subscribe %s: %w", filter, err)
	}
	context.AfterFunc(ctx, func() {
		p.mu.Lock()
		delete(p.subs, filter)
		p.mu.Unlock()
		// Best effort: a clean session forgets it at the next reconnect anyway.
		if p.cl.Unsubscribe(filter).WaitTimeout(10*time.Second) && p.cl.IsConnectionOpen() {
			p.unsubscribed.Add(1)
		}
	})
	return nil
}

// Publish implements Conn. It gives up after 10s (e.g. while disconnected).
func (p *Paho) Publish(ctx context.Context, topic string, retain bool, payload []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := wait(ctx, p.cl.Publish(topic, 1, retain, payload)); err != nil {
		return fmt.Errorf("publish %s: %w", topic, err)
	}
	return nil
}

// PublishQuick implements QuickPublisher: a QoS 0 publish, not waited
// for; it fails only when the client has no connection.
func (p *Paho) PublishQuick(topic string, payload []byte) error {
	if !p.cl.IsConnectionOpen() {
		return fmt.Errorf("publish %s: not connected", topic)
	}
	p.cl.Publish(topic, 0, false, payload)
	return nil
}

// Close disconnects; it is safe to call twice.
func (p *Paho) Close() error {
	p.cl.Disconnect(250)
	return nil
}

func wait(ctx context.Context, t paho.Token) error {
	select {
	case <-t.Done():
		return t.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

var (
	_ Conn           = (*Paho)(nil)
	_ QuickPublisher = (*Paho)(nil)
)
