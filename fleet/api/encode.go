package api

import (
	"encoding/json"
	"math"
	"strconv"
)

// Encoders for the messages fleetd and the simulator write most: what
// json.Marshal writes, byte for byte, without reflection; where
// json.Marshal fails (a NaN or infinite number) they append nothing.

// AppendBatch appends the JSON of a DetectionBatch, byte for byte what
// json.Marshal writes, without reflection. Events other than plain
// detections go through json.Marshal.
func AppendBatch(b []byte, device string, events []Event) []byte {
	for i := range events {
		if !plain(&events[i]) {
			p, _ := json.Marshal(&DetectionBatch{DeviceID: device, Events: events})
			return append(b, p...)
		}
	}
	b = append(b, `{"device_id":`...)
	b = appendJSONString(b, device)
	b = append(b, `,"events":`...)
	if events == nil {
		return append(b, "null}"...)
	}
	b = append(b, '[')
	for i := range events {
		e := &events[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		b = appendMembers(b, e)
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

// appendJSONString appends s as a JSON string as json.Marshal writes it: plain
// printable ASCII as it is, anything else through json.Marshal.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			p, _ := json.Marshal(s)
			return append(b, p...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendFloat32 appends f as json.Marshal writes a float32: the shortest
// decimal form where json.Marshal uses it, json.Marshal otherwise
// (exponents; NaN and infinities, which it refuses, append nothing).
func appendFloat32(b []byte, f float32) []byte {
	if a := math.Abs(float64(f)); a != 0 && (a < 1e-6 || a >= 1e21) || math.IsNaN(float64(f)) {
		p, _ := json.Marshal(f)
		return append(b, p...)
	}
	return strconv.AppendFloat(b, float64(f), 'f', -1, 32)
}

// appendMembers appends a plain detection's members, as json.Marshal
// writes them, without the braces.
func appendMembers(b []byte, e *Event) []byte {
	b = append(b, `"seq":`...)
	b = strconv.AppendUint(b, e.Seq, 10)
	b = append(b, `,"camera_id":`...)
	b = appendJSONString(b, e.CameraID)
	b = append(b, `,"time_us":`...)
	b = strconv.AppendInt(b, e.Time, 10)
	if e.Model != "" {
		b = append(b, `,"model":`...)
		b = appendJSONString(b, e.Model)
	}
	if e.ModelVersion != "" {
		b = append(b, `,"model_version":`...)
		b = appendJSONString(b, e.ModelVersion)
	}
	b = append(b, `,"class_id":`...)
	b = strconv.AppendInt(b, int64(e.ClassID), 10)
	b = append(b, `,"label":`...)
	b = appendJSONString(b, e.Label)
	b = append(b, `,"score":`...)
	b = appendFloat32(b, e.Score)
	b = append(b, `,"box":[`...)
	for j, f := range e.Box {
		if j > 0 {
			b = append(b, ',')
		}
		b = appendFloat32(b, f)
	}
	return append(b, ']')
}

// AppendRecord appends {"device_id":device, e's members...}: the JSON of
// a store record (device and event), byte for byte what json.Marshal
// writes. Events other than plain detections go through json.Marshal.
func AppendRecord(b []byte, device string, e *Event) []byte {
	if !plain(e) {
		p, _ := json.Marshal(&struct {
			Device string `json:"device_id"`
			Event
		}{device, *e})
		return append(b, p...)
	}
	b = append(b, `{"device_id":`...)
	b = appendJSONString(b, device)
	b = append(b, ',')
	b = appendMembers(b, e)
	return append(b, '}')
}

// plain reports whether e is a detection without analytics fields, its
// numbers finite (json.Marshal refuses NaN and infinities).
func plain(e *Event) bool {
	return e.Type == "" && e.V == 0 && e.Track == nil && e.Line == nil && e.Zone == nil && e.Snapshot == nil &&
		finite(e.Score) && finite(e.Box[0]) && finite(e.Box[1]) && finite(e.Box[2]) && finite(e.Box[3])
}
