// Command benchtable reads `go test -bench` output on stdin and prints a
// table: one row per benchmark with time per op in milliseconds, every custom
// metric (b.ReportMetric), B/op and allocs/op. Failures, panics and build
// errors pass through to stderr, and make it exit with status 1.
//
//	go test -run '^$' -bench . -benchmem ./... 2>&1 | go run ./scripts/benchtable
package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
)

// row is one benchmark result line.
type row struct {
	pkg, name string
	runs      int64
	metrics   map[string]float64 // unit → value
	order     []string           // units as they appear on the line
}

// table is everything read from the input.
type table struct {
	rows   []row
	units  []string // custom units in order of first appearance
	notes  []string // skip messages
	failed bool
}

var procSuffix = regexp.MustCompile(`-\d+$`)

// standard units get their own columns.
// A custom "ms/op" is the time column again and gets none either.
var standard = map[string]bool{"ns/op": true, "B/op": true, "allocs/op": true, "ms/op": true}

// parse reads go test output; lines that report failures go to fail.
func parse(r io.Reader, fail io.Writer) (*table, error) {
	t := &table{}
	seen := map[string]bool{}
	pkg := ""
	passing := false // copying an error block through
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		trim := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "pkg: "):
			pkg = strings.TrimPrefix(line, "pkg: ")
			passing = false
			continue
		case strings.HasPrefix(line, "--- FAIL"), strings.HasPrefix(line, "FAIL"), strings.HasPrefix(line, "panic:"),
			strings.HasPrefix(line, "# "), strings.HasPrefix(line, "fatal error:"):
			t.failed = true
			passing = true
			fmt.Fprintln(fail, line)
			continue
		case strings.HasPrefix(line, "--- SKIP"):
			passing = false
			t.notes = append(t.notes, strings.TrimPrefix(line, "--- "))
			continue
		case strings.HasPrefix(line, "Benchmark"):
			passing = false
			if rw, ok := parseRow(line); ok {
				rw.pkg = pkg
				t.rows = append(t.rows, rw)
				for _, u := range rw.order {
					if !standard[u] && !seen[u] {
						seen[u] = true
						t.units = append(t.units, u)
					}
				}
			}
			continue
		case strings.HasPrefix(line, "ok "), line == "PASS", strings.HasPrefix(line, "goos:"),
			strings.HasPrefix(line, "goarch:"), strings.HasPrefix(line, "cpu:"), strings.HasPrefix(line, "?"):
			passing = false
			continue
		}
		if passing {
			fmt.Fprintln(fail, line)
		} else if strings.HasPrefix(line, "    ") && len(t.notes) > 0 && trim != "" {
			t.notes[len(t.notes)-1] += ": " + trim
		}
	}
	return t, sc.Err()
}

// parseRow reads "BenchmarkX-2  100  123 ns/op  4.5 ms/op  80 B/op  1 allocs/op".
func parseRow(line string) (row, bool) {
	f := strings.Fields(line)
	if len(f) < 4 || len(f)%2 != 0 {
		return row{}, false
	}
	runs, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return row{}, false
	}
	r := row{name: procSuffix.ReplaceAllString(strings.TrimPrefix(f[0], "Benchmark"), ""), runs: runs, metrics: map[string]float64{}}
	for i := 2; i+1 < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return row{}, false
		}
		r.metrics[f[i+1]] = v
		r.order = append(r.order, f[i+1])
	}
	return r, true
}

func num(v float64) string {
	switch {
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		return strconv.FormatInt(int64(v), 10)
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'f', 4, 64)
}

// print writes one table per package, each with only the metric columns
// its benchmarks report: a single table of every unit is too wide to read.
func (t *table) print(w io.Writer) {
	for start := 0; start < len(t.rows); {
		end := start
		for end < len(t.rows) && t.rows[end].pkg == t.rows[start].pkg {
			end++
		}
		t.printPackage(w, t.rows[start:end])
		fmt.Fprintln(w)
		start = end
	}
	for _, n := range t.notes {
		fmt.Fprintln(w, "note:", n)
	}
}

func (t *table) printPackage(w io.Writer, rows []row) {
	used := map[string]bool{}
	for _, r := range rows {
		for u := range r.metrics {
			used[u] = true
		}
	}
	var units []string
	for _, u := range t.units {
		if used[u] {
			units = append(units, u)
		}
	}
	for _, u := range []string{"B/op", "allocs/op"} {
		if used[u] {
			units = append(units, u)
		}
	}
	fmt.Fprintln(w, rows[0].pkg)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := append([]string{"  benchmark", "runs", "ms/op"}, units...)
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, r := range rows {
		cells := []string{"  " + r.name, strconv.FormatInt(r.runs, 10), "-"}
		if v, ok := r.metrics["ns/op"]; ok {
			cells[2] = num(v / 1e6)
		} else if v, ok := r.metrics["ms/op"]; ok {
			cells[2] = num(v)
		}
		for _, u := range units {
			if v, ok := r.metrics[u]; ok {
				cells = append(cells, num(v))
			} else {
				cells = append(cells, "-")
			}
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	tw.Flush()
}

func main() {
	t, err := parse(os.Stdin, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtable: read:", err)
		os.Exit(1)
	}
	t.print(os.Stdout)
	if t.failed {
		fmt.Fprintln(os.Stderr, "benchtable: benchmarks failed")
		os.Exit(1)
	}
	if len(t.rows) == 0 {
		fmt.Fprintln(os.Stderr, "benchtable: no benchmark results in the input")
		os.Exit(1)
	}
}
