package broker

import (
	"bytes"
	"context"
	"errors"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// hook plugs authentication, the ACL and the counters into mochi.
type hook struct {
	mqtt.HookBase
	b *Broker
}

func (h *hook) ID() string { return "edgefleet-auth-acl" }

func (h *hook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnDisconnect}, []byte{b})
}

func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	b := h.b
	user := string(pk.Connect.Username)
	ctx, cancel := context.WithTimeout(context.Background(), b.authTimeout)
	defer cancel()
	id, ok := b.identify(ctx, cl, user, pk.Connect.Password)
	if !ok {
		return false
	}
	if id.Role == RoleDevice {
		// A device must use its own id as client id, or it could take over
		// another client's session.
		if cl.ID != id.DeviceID {
			b.metrics.authRefused.WithLabelValues("client_id").Inc()
			b.log.Info("login refused", "user", user, "client_id", cl.ID, "remote", cl.Net.Remote, "reason", "client id differs from device id")
			return false
		}
		if w := cl.Properties.Will; w.Flag == 1 && !Allow(id, w.TopicName, true) {
			b.metrics.aclRefused.WithLabelValues("will").Inc()
			b.log.Info("login refused", "user", user, "remote", cl.Net.Remote, "reason", "last will on a foreign topic", "topic", w.TopicName)
			return false
		}
	}
	b.ids.Store(cl, id)
	b.awaitEarlierSession(cl)
	return true
}

// awaitEarlierSession takes down an earlier clean-session connection with
// the same client id and waits until mochi has finished cleaning it up.
// Without this, that clean-up can run after the new connection registered
// and erase the new connection's subscriptions and registration, so a
// device that reconnects at once silently stops receiving (seen for 18% of
// 1,000 quick reconnects; TestQuickReconnectKeepsSubscriptions).
func (b *Broker) awaitEarlierSession(cl *mqtt.Client) {
	old, ok := b.srv.Clients.Get(cl.ID)
	if !ok || old == cl {
		return
	}
	p := old.Properties
	clean := (p.ProtocolVersion < 5 && p.Clean) || (p.ProtocolVersion == 5 && p.Props.SessionExpiryInterval == 0)
	if !clean {
		return // a persistent session is inherited by mochi, never deleted
	}
	if !old.Closed() {
		_ = b.srv.DisconnectClient(old, packets.ErrSessionTakenOver)
	}
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		if cur, ok := b.srv.Clients.Get(cl.ID); !ok || cur != old {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	b.log.Warn("earlier session not cleaned up in time", "client_id", cl.ID)
}

func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if cl.Net.Inline {
		return true
	}
	v, ok := h.b.ids.Load(cl)
	if ok && Allow(v.(Identity), topic, write) {
		return true
	}
	op := "subscribe"
	if write {
		op = "publish"
	}
	h.b.metrics.aclRefused.WithLabelValues(op).Inc()
	return false
}

func (h *hook) OnDisconnect(cl *mqtt.Client, err error, _ bool) {
	h.b.ids.Delete(cl)
	if errors.Is(err, packets.ErrPacketTooLarge) {
		h.b.metrics.tooLarge.Inc()
	}
}
