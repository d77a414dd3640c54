package server

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"edgefleet/fleet/api/rest"
	"edgefleet/fleet/registry"
	"edgefleet/fleet/rollout"
	"edgefleet/fleet/store"
	"edgefleet/models/manifest"
)

// fill sets every field reachable from v to a non-zero value, so that a
// field the REST contract forgets shows up as a difference in the JSON.
func fill(v reflect.Value, depth int) {
	if depth > 6 {
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString("s-" + v.Type().Name())
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(7)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(9)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(0.5)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fill(p.Elem(), depth+1)
		v.Set(p)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			fill(s.Index(i), depth+1)
		}
		v.Set(s)
	case reflect.Array:
		for i := range v.Len() {
			fill(v.Index(i), depth+1)
		}
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k, depth+1)
		fill(e, depth+1)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Date(2026, 12, 2, 15, 4, 5, 6000, time.UTC)))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), depth+1)
			}
		}
	}
}

func filled[T any]() T {
	var v T
	fill(reflect.ValueOf(&v).Elem(), 0)
	return v
}

func sameJSON(t *testing.T, what string, old, contract any) {
	t.Helper()
	var a, b any
	ja, _ := json.Marshal(old)
	jb, _ := json.Marshal(contract)
	json.Unmarshal(ja, &a)
	json.Unmarshal(jb, &b)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("%s: the contract's JSON differs from what fleetd sent before\nbefore:   %s\ncontract: %s", what, ja, jb)
	}
}

// TestContractJSON: every response built from the rest package encodes
// exactly as the fleet's own types did, so old clients keep working.
func TestContractJSON(t *testing.T) {
	d := filled[registry.Device]()
	sameJSON(t, "device", d, restDevice(d))
	ps := filled[[]registry.Point]()
	sameJSON(t, "telemetry points", ps, restPoints(ps))
	gs := filled[[]registry.Summary]()
	sameJSON(t, "fleet groups", gs, restGroups(gs))
	p := filled[store.Page]()
	sameJSON(t, "detections page", p, restPage(p))
	ep := filled[store.EventPage]()
	sameJSON(t, "events page", ep, restEventPage(ep))
	lc := filled[[]store.LineCount]()
	rows := make([]rest.CountRow, len(lc))
	for i, c := range lc {
		rows[i] = rest.CountRow{Start: c.Start, Line: c.Line, Direction: c.Direction, Label: c.Label, Count: c.Count}
	}
	sameJSON(t, "count rows", lc, rows)
	ts := filled[[]manifest.Tensor]()
	sameJSON(t, "tensors", ts, restTensors(ts))
	s := filled[rollout.Summary]()
	sameJSON(t, "rollout summary", s, restSummary(s))
	j := filled[rollout.Job]()
	sameJSON(t, "rollout job", j, restJob(j))
}
