package config

import (
	"strings"
	"testing"
)

// TestHTTPListen: the unauthenticated local endpoint listens on loopback
// unless the config names another address; an explicit 0.0.0.0 is allowed.
func TestHTTPListen(t *testing.T) {
	base, _, ok := strings.Cut(good, "http:\n") // good ends with an http section; drop it
	if !ok {
		t.Fatal("the good config no longer ends with http:")
	}
	tests := []struct {
		http string // appended config
		want string
		ok   bool
	}{
		{"", DefaultListen, true},
		{"http: {listen: \"0.0.0.0:9101\"}\n", "0.0.0.0:9101", true},
		{"http: {listen: \"[::1]:9200\"}\n", "[::1]:9200", true},
		{"http: {listen: \"off\"}\n", "off", true},
		{"http: {listen: \"9101\"}\n", "", false},
	}
	if !strings.HasPrefix(DefaultListen, "127.0.0.1:") {
		t.Fatalf("DefaultListen %q is not loopback", DefaultListen)
	}
	for _, tt := range tests {
		c, err := Parse(strings.NewReader(base + tt.http))
		if !tt.ok {
			if err == nil || !strings.Contains(err.Error(), "http.listen") {
				t.Errorf("%q: error %v, want one naming http.listen", tt.http, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", tt.http, err)
		}
		if c.HTTP.Listen != tt.want {
			t.Errorf("%q: listen %q, want %q", tt.http, c.HTTP.Listen, tt.want)
		}
	}
}
