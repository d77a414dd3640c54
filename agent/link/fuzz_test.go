package link

import (
	"testing"

	paho "github.com/eclipse/paho.mqtt.golang"

	"edgefleet/fleet/api"
)

// message is a paho.Message from the fuzzer.
type message struct {
	topic   string
	payload []byte
}

func (m message) Duplicate() bool   { return false }
func (m message) Qos() byte         { return 1 }
func (m message) Retained() bool    { return false }
func (m message) Topic() string     { return m.topic }
func (m message) MessageID() uint16 { return 1 }
func (m message) Payload() []byte   { return m.payload }
func (m message) Ack()              {}

var _ paho.Message = message{}

// FuzzIncoming feeds arbitrary topics and payloads to the link's message
// handler: it never panics, and whatever it hands on is valid and meant for
// this device; everything else is counted.
func FuzzIncoming(f *testing.F) {
	f.Add(api.AcksTopic(devID), []byte(`{"device_id":"cam-box-1","ranges":[{"from":1,"to":2}]}`))
	f.Add(api.AcksTopic(devID), []byte(`{"device_id":"cam-box-2","ranges":[]}`))
	f.Add(api.CommandsTopic(devID), []byte(`{"job_id":"j","kind":"rollback"}`))
	f.Add(api.CommandsTopic(devID), []byte(`{"job_id":"j","kind":"model_update","artifact":{"kind":"model"}}`))
	f.Add(api.StateTopic(devID), []byte(`{}`))
	f.Add("elsewhere", []byte(`null`))
	l, err := New(Options{Brokers: []string{"tcp://127.0.0.1:1"}, DeviceID: devID, Logger: quiet, QueueLen: 1})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		l.onMessage(nil, message{topic, payload})
		select {
		case a := <-l.Acks():
			if a.DeviceID != devID || a.Validate() != nil {
				t.Fatalf("handed on ack %+v from %q", a, payload)
			}
		case c := <-l.Commands():
			if c.Validate() != nil {
				t.Fatalf("handed on command %+v from %q", c, payload)
			}
		default:
		}
	})
}
