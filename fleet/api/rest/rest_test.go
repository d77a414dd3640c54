package rest

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestCreateRolloutCheck(t *testing.T) {
	no := false
	tests := []struct {
		name string
		req  CreateRollout
		want string // "" means valid
	}{
		{"model", CreateRollout{Model: "m@2", Selector: "site=a,line=3", Waves: "10%,100%", MaxFailures: "5%", HealthWindow: "2m"}, ""},
		{"firmware", CreateRollout{Firmware: "edge-agent@1.2.0", MaxFailures: "3", JobTimeout: "30m"}, ""},
		{"rate", CreateRollout{Model: "m@2", MaxFailureRate: 0.2, MinExecutions: 10, RollbackOnAbort: &no}, ""},
		{"neither", CreateRollout{}, "model or firmware"},
		{"both", CreateRollout{Model: "m@2", Firmware: "f@1"}, "model or firmware"},
		{"no version", CreateRollout{Model: "m"}, "name@version"},
		{"selector", CreateRollout{Model: "m@2", Selector: "site"}, "selector"},
		{"waves", CreateRollout{Model: "m@2", Waves: "10%,x"}, "waves"},
		{"max failures", CreateRollout{Model: "m@2", MaxFailures: "150%"}, "max failures"},
		{"rate above 1", CreateRollout{Model: "m@2", MaxFailureRate: 1.5}, "max_failure_rate"},
		{"negative executions", CreateRollout{Model: "m@2", MinExecutions: -1}, "min_executions"},
		{"duration", CreateRollout{Model: "m@2", HealthWindow: "two"}, "health_window"},
		{"shadow", CreateRollout{Model: "m@2", Shadow: "10m", MinAgreement: 0.9, ShadowSample: "1/4", ShadowCPU: "25%"}, ""},
		{"shadow without min", CreateRollout{Model: "m@2", Shadow: "10m"}, "min_agreement"},
		{"min without shadow", CreateRollout{Model: "m@2", MinAgreement: 0.9}, "need shadow"},
		{"shadow duration", CreateRollout{Model: "m@2", Shadow: "ten", MinAgreement: 0.9}, "shadow: \"ten\""},
		{"shadow firmware", CreateRollout{Firmware: "f@1", Shadow: "1m", MinAgreement: 0.9}, "models only"},
		{"sample", CreateRollout{Model: "m@2", Shadow: "1m", MinAgreement: 0.9, ShadowSample: "4"}, "shadow_sample"},
		{"cpu", CreateRollout{Model: "m@2", Shadow: "1m", MinAgreement: 0.9, ShadowCPU: "25"}, "shadow_cpu"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.req.Check()
			if (tt.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Check() = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestCreateRolloutWire: the fields the rollout engine is gaining are
// left out of the JSON when unset, so older servers decode the request.
func TestCreateRolloutWire(t *testing.T) {
	b, _ := json.Marshal(CreateRollout{Model: "m@2"})
	if got, want := string(b), `{"model":"m@2","selector":"","canary":0,"waves":"","max_failures":"","health_window":"","job_timeout":""}`; got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
	yes := true
	b, _ = json.Marshal(CreateRollout{Model: "m@2", MaxFailureRate: 0.1, MinExecutions: 5, RollbackOnAbort: &yes})
	for _, k := range []string{`"max_failure_rate":0.1`, `"min_executions":5`, `"rollback_on_abort":true`} {
		if !strings.Contains(string(b), k) {
			t.Errorf("%s lacks %s", b, k)
		}
	}
}

func TestSelectorRoundTrip(t *testing.T) {
	sel, err := ParseSelector(" line=3, site=a ")
	if err != nil || FormatSelector(sel) != "line=3,site=a" {
		t.Fatalf("%v %v", sel, err)
	}
	if _, err := ParseSelector("a=1,a=2"); err == nil {
		t.Fatal("a repeated key is accepted")
	}
}

func TestParseShadowSample(t *testing.T) {
	tests := []struct {
		in   string
		want int
		ok   bool
	}{
		{"1/4", 4, true}, {"1/1", 1, true}, {"1", 1, true}, {" 1/10 ", 10, true}, {"1/1000", 1000, true},
		{"4", 0, false}, {"2/4", 0, false}, {"1/0", 0, false}, {"1/1001", 0, false}, {"1/-2", 0, false},
		{"1/ 4", 0, false}, {"", 0, false}, {"1/4x", 0, false}, {"0.25", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseShadowSample(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseShadowSample(%q) = %d, %v", tt.in, got, err)
		}
	}
}

func TestParseCPUPercent(t *testing.T) {
	tests := []struct {
		in   string
		want int
		ok   bool
	}{
		{"25%", 25, true}, {"100%", 100, true}, {"1%", 1, true}, {" 50% ", 50, true},
		{"25", 0, false}, {"0%", 0, false}, {"101%", 0, false}, {"2.5%", 0, false}, {"%", 0, false}, {"-5%", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseCPUPercent(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseCPUPercent(%q) = %d, %v", tt.in, got, err)
		}
	}
}

func FuzzParseShadowSample(f *testing.F) {
	for _, s := range []string{"1/4", "1", "25%", "1/", "/4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if n, err := ParseShadowSample(s); err == nil && (n < 1 || n > 1000) {
			t.Fatalf("%q -> %d", s, n)
		}
		if n, err := ParseCPUPercent(s); err == nil && (n < 1 || n > 100) {
			t.Fatalf("%q -> %d", s, n)
		}
	})
}
