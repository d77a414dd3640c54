package deploy_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
)

// metricSet is every metric name the code can expose.
type metricSet struct {
	names map[string]bool
	// hist are histograms and summaries: their series carry _bucket (histograms),
	// _sum and _count suffixes.
	hist map[string]bool
}

// check says whether a name used in PromQL is one the code exposes.
func (m metricSet) check(name string) error {
	if m.names[name] {
		return nil
	}
	for _, suf := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suf); ok && m.hist[base] {
			return nil
		}
	}
	return fmt.Errorf("metric %s is not registered by any Go source (nor a go_/process_ collector metric)", name)
}

var (
	metricsOnce sync.Once
	metricsSet  metricSet
	metricsErr  error
)

// registeredMetrics scans the module's non-test Go sources once.
func registeredMetrics(t *testing.T) metricSet {
	t.Helper()
	metricsOnce.Do(func() {
		metricsSet, metricsErr = scanMetrics(repoRoot(t), "agent", "fleet", "models", "firmware", "internal")
	})
	if metricsErr != nil {
		t.Fatal(metricsErr)
	}
	return metricsSet
}

var metricNameRE = regexp.MustCompile(`^edgefleet_[a-z0-9_]*$`)

// scanMetrics collects metric names from Go sources under dirs of root: every
// string literal that looks like "edgefleet_<name>" (Opts.Name fields, NewDesc,
// the helpers that wrap GaugeFunc), marked as a histogram when it is the Name
// of a HistogramOpts or SummaryOpts. A literal ending in "_" is a prefix joined
// to a name elsewhere ("edgefleet_link_" + name): it is combined with every
// snake_case literal of the same file. The standard Go and process collectors
// are added from a registry of them, and "up", which Prometheus adds itself.
func scanMetrics(root string, dirs ...string) (metricSet, error) {
	m := metricSet{names: map[string]bool{"up": true}, hist: map[string]bool{}}
	fset := token.NewFileSet()
	for _, d := range dirs {
		err := filepath.WalkDir(filepath.Join(root, d), func(path string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if e.IsDir() && (e.Name() == "testdata" || strings.HasPrefix(e.Name(), ".")) {
				return filepath.SkipDir
			}
			if e.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			scanFile(f, m)
			return nil
		})
		if err != nil {
			return m, fmt.Errorf("scan metrics: %w", err)
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mfs, err := reg.Gather()
	if err != nil {
		return m, fmt.Errorf("gather standard collectors: %w", err)
	}
	for _, mf := range mfs {
		m.names[mf.GetName()] = true
		if t := mf.GetType(); t == dto.MetricType_HISTOGRAM || t == dto.MetricType_SUMMARY {
			m.hist[mf.GetName()] = true
		}
	}
	if len(m.names) < 20 {
		return m, fmt.Errorf("scan metrics: only %d names found under %v: the scan is broken", len(m.names), dirs)
	}
	return m, nil
}

func scanFile(f *ast.File, m metricSet) {
	var prefixes, words []string
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CompositeLit:
			if sel, ok := n.Type.(*ast.SelectorExpr); ok && (sel.Sel.Name == "HistogramOpts" || sel.Sel.Name == "SummaryOpts") {
				for _, el := range n.Elts {
					if kv, ok := el.(*ast.KeyValueExpr); ok && isIdent(kv.Key, "Name") {
						if s, ok := stringLit(kv.Value); ok {
							m.hist[s] = true
						}
					}
				}
			}
		case *ast.BasicLit:
			s, ok := stringLit(n)
			switch {
			case !ok:
			case metricNameRE.MatchString(s) && strings.HasSuffix(s, "_"):
				prefixes = append(prefixes, s)
			case metricNameRE.MatchString(s):
				m.names[s] = true
			case regexp.MustCompile(`^[a-z][a-z0-9_]*[a-z0-9]$`).MatchString(s):
				words = append(words, s)
			}
		}
		return true
	})
	for _, p := range prefixes {
		for _, w := range words {
			m.names[p+w] = true
		}
	}
}

func isIdent(e ast.Expr, name string) bool {
	id, ok := e.(*ast.Ident)
	return ok && id.Name == name
}

func stringLit(e ast.Expr) (string, bool) {
	bl, ok := e.(*ast.BasicLit)
	if !ok || bl.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(bl.Value)
	return s, err == nil
}

// PromQL words that are not metric names.
var (
	promGrouping = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}
	promKeywords = map[string]bool{"bool": true, "and": true, "or": true, "unless": true, "offset": true, "inf": true, "nan": true, "atan2": true,
		// aggregations, which may be followed by a grouping clause instead of "("
		"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true, "count": true,
		"count_values": true, "bottomk": true, "topk": true, "quantile": true, "limitk": true, "limit_ratio": true}
)

// promMetricNames returns the metric names a PromQL expression selects. It
// is a tokenizer, not a parser: strings, label matchers {...}, ranges [...]
// and Grafana variables ($x, ${x}) are removed; an identifier followed by "("
// is a function or aggregation; grouping clauses (by (...), on (...)) and
// keywords are skipped; what is left are metric names.
func promMetricNames(expr string) ([]string, error) {
	s, err := stripPromNoise(expr)
	if err != nil {
		return nil, err
	}
	var names []string
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '$':
			i++
			if i < len(s) && s[i] == '{' {
				for i < len(s) && s[i] != '}' {
					i++
				}
			}
			for i < len(s) && isIdentChar(s[i]) {
				i++
			}
		case c >= '0' && c <= '9' || c == '.':
			for i < len(s) && (isIdentChar(s[i]) || s[i] == '.') {
				i++
			}
		case isIdentChar(c) || c == ':':
			j := i
			for j < len(s) && (isIdentChar(s[j]) || s[j] == ':') {
				j++
			}
			word := s[i:j]
			k := j
			for k < len(s) && (s[k] == ' ' || s[k] == '\t' || s[k] == '\n') {
				k++
			}
			i = j
			switch {
			case promGrouping[strings.ToLower(word)]:
				if k < len(s) && s[k] == '(' {
					i = strings.IndexByte(s[k:], ')') + k + 1
					if i == k {
						return nil, fmt.Errorf("promql %q: unclosed %s (", expr, word)
					}
				}
			case promKeywords[strings.ToLower(word)]:
			case k < len(s) && s[k] == '(':
				// function or aggregation
			default:
				names = append(names, word)
			}
		default:
			i++
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("promql %q: no metric name found", expr)
	}
	return names, nil
}

func isIdentChar(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// stripPromNoise blanks quoted strings, then {...} and [...] groups.
func stripPromNoise(expr string) (string, error) {
	var b strings.Builder
	var quote byte
	for i := 0; i < len(expr); i++ {
		c := expr[i]
		switch {
		case quote != 0 && c == '\\' && quote != '`':
			i++
		case quote != 0 && c == quote:
			quote = 0
			b.WriteString(`""`)
		case quote != 0:
		case c == '"' || c == '\'' || c == '`':
			quote = c
		default:
			b.WriteByte(c)
		}
	}
	if quote != 0 {
		return "", fmt.Errorf("promql %q: unterminated string", expr)
	}
	s := b.String()
	for _, p := range [][2]byte{{'(', ')'}, {'{', '}'}, {'[', ']'}} {
		if p[0] == '(' {
			if strings.Count(s, "(") != strings.Count(s, ")") {
				return "", fmt.Errorf("promql %q: unbalanced parentheses", expr)
			}
			continue
		}
		b.Reset()
		depth := 0
		for i := 0; i < len(s); i++ {
			switch s[i] {
			case p[0]:
				depth++
			case p[1]:
				depth--
				if depth < 0 {
					return "", fmt.Errorf("promql %q: unbalanced %c", expr, p[1])
				}
				b.WriteByte(' ')
				continue
			}
			if depth == 0 {
				b.WriteByte(s[i])
			}
		}
		if depth != 0 {
			return "", fmt.Errorf("promql %q: unbalanced %c", expr, p[0])
		}
		s = b.String()
	}
	return s, nil
}

// checkExprs checks every metric name of every expression; where names the
// place of each expression in errors.
func checkExprs(m metricSet, exprs map[string]string) []error {
	var errs []error
	keys := make([]string, 0, len(exprs))
	for k := range exprs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, where := range keys {
		names, err := promMetricNames(exprs[where])
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			continue
		}
		for _, n := range names {
			if err := m.check(n); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", where, err))
			}
		}
	}
	return errs
}

func TestPromMetricNames(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want string
	}{
		{`edgefleet_devices - edgefleet_devices_online`, "edgefleet_devices edgefleet_devices_online"},
		{`histogram_quantile(0.99, sum by (le) (rate(edgefleet_ingest_ack_seconds_bucket[$__rate_interval])))`, "edgefleet_ingest_ack_seconds_bucket"},
		{`sum without (instance) (rate(edgefleet_ingest_dropped_total{reason!="store_error", job=~"fleet.*"}[5m])) > 0`, "edgefleet_ingest_dropped_total"},
		{`max_over_time(edgefleet_spool_oldest_age_seconds{instance=~"$instance"}[10m:1m]) > 300 and on (instance) edgefleet_link_connected == 0`, "edgefleet_spool_oldest_age_seconds edgefleet_link_connected"},
		{`edgefleet_rollouts{state="aborted"} - edgefleet_rollouts{state="aborted"} offset 15m > bool 0`, "edgefleet_rollouts edgefleet_rollouts"},
		{`label_replace(up{job="edge-agent"}, "box", "$1", "instance", "(.*):.*") == 0`, "up"},
	} {
		got, err := promMetricNames(tc.expr)
		if err != nil {
			t.Errorf("%s: %v", tc.expr, err)
			continue
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("%s: names %q, want %q", tc.expr, got, tc.want)
		}
	}
	for _, bad := range []string{`sum(rate(x[5m])`, `x{a="b"`, `rate(x[5m]))]`, `sum(rate())`, `x{a="b}`} {
		if names, err := promMetricNames(bad); err == nil {
			t.Errorf("%s: no error, names %q", bad, names)
		}
	}
}

// readFile is os.ReadFile that fails the test.
func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
