package main

import (
	"bytes"
	"context"
	"encoding/json"
	"runtime"
	"strings"
	"testing"

	"edgefleet/agent"
)

func TestVersion(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		want    string
		wantErr bool
	}{
		{"text", nil, "edge-agent " + agent.Version + " " + runtime.GOOS + "/" + runtime.GOARCH + " config schema 1", false},
		{"json", []string{"--json"}, `"config_schema":1`, false},
		{"extra argument", []string{"x"}, "", true},
		{"unknown flag", []string{"--yaml"}, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := runVersion(context.Background(), tc.args, &out)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v", err)
			}
			if !strings.Contains(out.String(), tc.want) {
				t.Errorf("output %q lacks %q", out.String(), tc.want)
			}
		})
	}
	var out bytes.Buffer
	if err := runVersion(context.Background(), []string{"--json"}, &out); err != nil {
		t.Fatal(err)
	}
	var v versionInfo
	dec := json.NewDecoder(&out)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil || v.Arch != runtime.GOARCH || v.OS != runtime.GOOS || v.Version != agent.Version {
		t.Errorf("json %+v, %v", v, err)
	}
}
