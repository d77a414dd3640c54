package deploy_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// repoRoot is the module root (the directory holding go.mod).
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// yamlDocs decodes every document of a YAML stream.
func yamlDocs(b []byte) ([]map[string]any, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var docs []map[string]any
	for {
		var d map[string]any
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		if d != nil {
			docs = append(docs, d)
		}
	}
}

// TestFilesParse parses every YAML and JSON file under fleet/deploy, so a
// file no other test reads still cannot be broken.
func TestFilesParse(t *testing.T) {
	n := 0
	err := filepath.WalkDir(".", func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		switch filepath.Ext(path) {
		case ".yaml", ".yml":
			n++
			docs, err := yamlDocs(b)
			if err != nil || len(docs) == 0 {
				t.Errorf("%s: %v (%d documents)", path, err, len(docs))
			}
		case ".json":
			n++
			var v any
			if err := json.Unmarshal(b, &v); err != nil {
				t.Errorf("%s: %v", path, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 10 {
		t.Errorf("parsed %d YAML/JSON files, want the compose, k8s, grafana and prometheus files (10 or more)", n)
	}
}

// grafanaExprs returns the PromQL of every panel target and query variable
// of a dashboard, keyed by where it is.
func grafanaExprs(b []byte) (map[string]string, error) {
	var d struct {
		Panels     []grafanaPanel `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	out := map[string]string{}
	var walk func([]grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				out[fmt.Sprintf("panel %q target %s", p.Title, tg.RefID)] = tg.Expr
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(string)
		if m, ok := v.Query.(map[string]any); ok {
			q, _ = m["query"].(string)
		}
		// label_values(expr, label) selects from expr; label_values(label) from nothing.
		if args, ok := strings.CutPrefix(q, "label_values("); ok {
			args = strings.TrimSuffix(args, ")")
			i := strings.LastIndexByte(args, ',')
			if i < 0 {
				continue
			}
			q = args[:i]
		}
		q = strings.TrimSuffix(strings.TrimPrefix(q, "query_result("), ")")
		out[fmt.Sprintf("variable %q", v.Name)] = q
	}
	return out, nil
}

type grafanaPanel struct {
	Title   string `json:"title"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"`
}

func TestDashboardMetrics(t *testing.T) {
	exprs, err := grafanaExprs(readFile(t, "grafana/edgefleet.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(exprs) < 30 {
		t.Errorf("%d queries in the dashboard; the parse lost panels", len(exprs))
	}
	for _, err := range checkExprs(registeredMetrics(t), exprs) {
		t.Error("grafana/edgefleet.json:", err)
	}
	// Every part the issue asks for has a panel.
	all := strings.Join(mapValues(exprs), "\n")
	for _, m := range []string{"edgefleet_devices_online", "edgefleet_ingest_events_total", "edgefleet_ingest_ack_seconds_bucket",
		"edgefleet_ingest_dropped_total", "edgefleet_broker_clients_connected", "edgefleet_rollouts", "edgefleet_agent_frames_total",
		"edgefleet_agent_inference_seconds_bucket", "edgefleet_spool_depth_events"} {
		if !strings.Contains(all, m) {
			t.Errorf("no dashboard panel uses %s", m)
		}
	}
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// alertRules is a Prometheus rule file.
type alertRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// alertExprs decodes a rule file strictly (unknown keys are errors, as in
// promtool) and returns each rule's expression, keyed by rule.
func alertExprs(b []byte) (map[string]string, []error) {
	var f alertRules
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, []error{fmt.Errorf("rules: %w", err)}
	}
	out := map[string]string{}
	var errs []error
	for _, g := range f.Groups {
		for i, r := range g.Rules {
			where := fmt.Sprintf("group %s rule %d %s", g.Name, i, r.Alert+r.Record)
			if r.Alert == "" || r.Expr == "" {
				errs = append(errs, fmt.Errorf("%s: alert and expr are required", where))
			}
			switch r.Labels["severity"] {
			case "critical", "warning", "info":
			default:
				errs = append(errs, fmt.Errorf("%s: labels.severity %q is not critical, warning or info", where, r.Labels["severity"]))
			}
			if r.Annotations["summary"] == "" {
				errs = append(errs, fmt.Errorf("%s: annotations.summary is empty", where))
			}
			if _, dup := out[where]; dup {
				errs = append(errs, fmt.Errorf("%s: repeated", where))
			}
			out[where] = r.Expr
		}
	}
	return out, errs
}

func TestAlertRules(t *testing.T) {
	exprs, errs := alertExprs(readFile(t, "prometheus/alerts.yaml"))
	for _, err := range errs {
		t.Error("prometheus/alerts.yaml:", err)
	}
	for _, err := range checkExprs(registeredMetrics(t), exprs) {
		t.Error("prometheus/alerts.yaml:", err)
	}
	// The alerts the issue names, each by the metric it rests on.
	all := strings.Join(mapValues(exprs), "\n")
	for what, m := range map[string]string{
		"device offline": "edgefleet_devices_online", "spool backing up": "edgefleet_spool_oldest_age_seconds",
		"ingest errors": "edgefleet_ingest_dropped_total", "rollout aborted": `edgefleet_rollouts{state="aborted"}`,
		"broker auth refusals": "edgefleet_broker_auth_refused_total", "disk full on a box": `reason="full"`,
	} {
		if !strings.Contains(all, m) {
			t.Errorf("no alert for %s (%s)", what, m)
		}
	}
	// Job names in the rules are the scrape jobs of prometheus.yml.
	var prom struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName string `yaml:"job_name"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(readFile(t, "prometheus/prometheus.yml"), &prom); err != nil {
		t.Fatal(err)
	}
	jobs := map[string]bool{}
	for _, s := range prom.ScrapeConfigs {
		jobs[s.JobName] = true
	}
	for _, f := range prom.RuleFiles {
		if _, err := os.Stat(filepath.Join("prometheus", f)); err != nil {
			t.Errorf("prometheus.yml rule_files: %v", err)
		}
	}
	dash := string(readFile(t, "grafana/edgefleet.json"))
	for _, m := range regexp.MustCompile(`job=\\?"([^"\\]+)`).FindAllStringSubmatch(all+dash, -1) {
		if !jobs[m[1]] {
			t.Errorf("job %q is used by an alert or panel but prometheus.yml scrapes no such job", m[1])
		}
	}
}
