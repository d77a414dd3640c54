package controller

import (
	"strings"
	"testing"
)

func TestIdentityConfig(t *testing.T) {
	tests := []struct {
		name, yaml, err string
		scheme          string
	}{
		{"defaults", minimal, "", "http"},
		{"https from the fleet CA", minimal + "http: {tls: {hosts: [fleet.example]}}\n", "", "https"},
		{"https from files", minimal + "http: {tls: {cert: a.pem, key: b.pem}}\n", "", "https"},
		{"https cert without key", minimal + "http: {tls: {cert: a.pem}}\n", "http.tls.cert", ""},
		{"https files and hosts", minimal + "http: {tls: {cert: a.pem, key: b.pem, hosts: [x]}}\n", "http.tls.hosts", ""},
		{"ca cert without key", minimal + "ca: {cert: ca.pem}\n", "ca.cert", ""},
		{"broker tls from the fleet CA", minimal + "broker: {tls_listen: \":8883\"}\n", "", "http"},
		{"broker tls key without cert", minimal + "broker: {tls_listen: \":8883\", tls_key: k.pem}\n", "broker.tls_cert", ""},
		{"lifetime of seconds", minimal + "enroll: {lifetime: 6s, token_ttl: 1h}\n", "", "http"},
		{"lifetime too short", minimal + "enroll: {lifetime: 1s}\n", "enroll.lifetime", ""},
		{"negative ttl", minimal + "enroll: {token_ttl: -1h}\n", "must not be negative", ""},
		{"unknown key", minimal + "enroll: {ttl: 1h}\n", "enroll.ttl", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConfig(strings.NewReader(tt.yaml))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one with %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.artifactBase("127.0.0.1:8443"); !strings.HasPrefix(got, tt.scheme+"://") {
				t.Errorf("artifact base %s, want scheme %s", got, tt.scheme)
			}
		})
	}
}
