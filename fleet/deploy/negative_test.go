package deploy_test

import (
	"testing"
)

// TestChecksCatchMistakes feeds each check a small sample with one mistake:
// a check that passes here would pass anything.
func TestChecksCatchMistakes(t *testing.T) {
	good := `data_dir: /var/lib/fleetd
http: {listen: 0.0.0.0:8080}
broker: {url: "tcp://mosquitto:1884", client_id: f1, username: fleetd, password: p}
operators: [{name: admin, token_env: FLEETD_ADMIN_TOKEN}]
`
	metric := func(expr string) func(t *testing.T) []error {
		return func(t *testing.T) []error {
			return checkExprs(registeredMetrics(t), map[string]string{"sample": expr})
		}
	}
	config := func(cfg string, args ...string) func(t *testing.T) []error {
		return func(t *testing.T) []error {
			if err := checkConfig(t, "sample", []byte(cfg), args); err != nil {
				return []error{err}
			}
			return nil
		}
	}
	ports := func(cfg string, published ...int) func(t *testing.T) []error {
		return func(t *testing.T) []error {
			listen, _, err := listenPorts([]byte(cfg))
			if err != nil {
				return []error{err}
			}
			return checkPublished("sample", listen, published)
		}
	}
	for _, tc := range []struct {
		name string
		errs func(t *testing.T) []error
	}{
		{"misspelled metric", metric(`sum(rate(edgefleet_ingest_event_total[5m]))`)},
		{"metric of no package", metric(`edgefleet_agent_gpu_temperature_celsius > 80`)},
		{"histogram suffix on a gauge", metric(`histogram_quantile(0.9, rate(edgefleet_devices_online_bucket[5m]))`)},
		{"_count of a counter", metric(`rate(edgefleet_ingest_events_total_count[5m])`)},
		{"no metric at all", metric(`vector(1)`)},
		{"broken PromQL", metric(`rate(edgefleet_devices[5m]`)},
		{"dashboard with a wrong name", func(t *testing.T) []error {
			exprs, err := grafanaExprs([]byte(`{"panels":[{"type":"row","panels":[{"title":"x","targets":[{"refId":"A","expr":"edgefleet_device_online"}]}]}]}`))
			if err != nil {
				return []error{err}
			}
			return checkExprs(registeredMetrics(t), exprs)
		}},
		{"dashboard variable with a wrong name", func(t *testing.T) []error {
			exprs, _ := grafanaExprs([]byte(`{"templating":{"list":[{"name":"a","type":"query","query":{"query":"label_values(edgefleet_agent_infos, instance)"}}]}}`))
			return checkExprs(registeredMetrics(t), exprs)
		}},
		{"alert without severity", func(t *testing.T) []error {
			_, errs := alertExprs([]byte("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up == 0\n    annotations: {summary: s}\n"))
			return errs
		}},
		{"alert with an unknown key", func(t *testing.T) []error {
			_, errs := alertExprs([]byte("groups:\n- name: g\n  rules:\n  - alert: A\n    exrp: up == 0\n"))
			return errs
		}},
		{"unknown fleetd flag", func(t *testing.T) []error {
			return checkFlags(fleetdFlags(t), "sample", []string{"--config", "/etc/fleetd/fleetd.yaml", "--http-addr=:8080"})
		}},
		{"unknown config key", config(good + "htttp: {listen: 0.0.0.0:8080}\n")},
		{"unknown nested config key", config(good + "retention: {max_days: 3}\n")},
		{"bad config value", config(good + "log: {level: verbose}\n")},
		{"config without operators", config("data_dir: /d\nbroker: {url: 'tcp://m:1883'}\n")},
		{"good config, unknown flag in the args", config(good, "--data-dir", "/d", "--listen", ":1")},
		{"published port nobody listens on", ports(good, 8080, 9090)},
		{"published port listening on loopback", ports("http: {listen: 127.0.0.1:8080}\n", 8080)},
		{"embedded broker default port is loopback", ports("http: {listen: 0.0.0.0:8080}\n", 1883)},
		{"Containerfile shell-form CMD", func(t *testing.T) []error {
			_, err := parseContainerfile([]byte("FROM scratch\nENTRYPOINT [\"/fleetd\"]\nCMD fleetd --config /x\n"))
			return []error{err}[:btoi(err != nil)]
		}},
		{"Containerfile that does not run fleetd", func(t *testing.T) []error {
			_, err := parseContainerfile([]byte("FROM scratch\nENTRYPOINT [\"/bin/sh\"]\n"))
			return []error{err}[:btoi(err != nil)]
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := tc.errs(t)
			if len(errs) == 0 {
				t.Fatal("no error")
			}
			t.Log(errs[0])
		})
	}
	// The good sample passes, so the failures above are the mistakes'.
	if err := checkConfig(t, "good sample", []byte(good), []string{"--data-dir", "/d"}); err != nil {
		t.Errorf("good sample: %v", err)
	}
	if errs := ports(good, 8080)(t); len(errs) > 0 {
		t.Errorf("good sample ports: %v", errs)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
