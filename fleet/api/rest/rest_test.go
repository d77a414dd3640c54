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
