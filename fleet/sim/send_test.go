package sim

import (
	"slices"
	"testing"

	"edgefleet/fleet/api"
)

// FuzzParseAck: what parseAck reads, api.Decode reads the same; acks in
// fleetd's form are read.
func FuzzParseAck(f *testing.F) {
	for _, s := range []string{
		`{"device_id":"sim-1","ranges":[{"from":1,"to":3}]}`,
		`{"device_id":"sim-1","ranges":[{"from":1,"to":3},{"from":5,"to":18446744073709551615}]}`,
		`{"device_id":"sim-1","ranges":[{"from":01,"to":3}]}`,
		`{"device_id":"sim-1","ranges":[{"from":1,"to":3}]} `,
		`{"device_id":"sim-1","ranges":[{"from":1,"to":18446744073709551616}]}`,
		`{"device_id":"sim-1","ranges":[]}`,
		`{"ranges":[{"from":1,"to":3}],"device_id":"sim-1"}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseAck(nil, []byte(s), "sim-1")
		if !ok {
			return
		}
		var a api.Ack
		if err := api.Decode([]byte(s), &a); err != nil {
			t.Fatalf("parseAck read %s, api.Decode: %v", s, err)
		}
		if a.DeviceID != "sim-1" || !slices.Equal(got, a.Ranges) {
			t.Fatalf("parseAck(%s) = %v, api.Decode %+v", s, got, a)
		}
	})
}

// TestParseAck: fleetd's acks are read without api.Decode.
func TestParseAck(t *testing.T) {
	tests := []struct {
		ack  string
		want []api.SeqRange
		ok   bool
	}{
		{`{"device_id":"sim-1","ranges":[{"from":1,"to":3}]}`, []api.SeqRange{{From: 1, To: 3}}, true},
		{`{"device_id":"sim-1","ranges":[{"from":1,"to":3},{"from":5,"to":5}]}`, []api.SeqRange{{From: 1, To: 3}, {From: 5, To: 5}}, true},
		{`{"device_id":"sim-12","ranges":[{"from":1,"to":3}]}`, nil, false},
		{`{"device_id":"sim-1","ranges":[{"from":1,"to":3}]}x`, nil, false},
		{`{"device_id":"sim-1", "ranges":[{"from":1,"to":3}]}`, nil, false},
	}
	for _, tt := range tests {
		got, ok := parseAck(nil, []byte(tt.ack), "sim-1")
		if ok != tt.ok || !slices.Equal(got, tt.want) {
			t.Errorf("parseAck(%s) = %v, %v; want %v, %v", tt.ack, got, ok, tt.want, tt.ok)
		}
	}
}
