// Command testreport reads `go test -json` on stdin, prints the readable
// output `go test` would print without -json (package results, and the
// output of failing tests), optionally keeps the raw JSON in a file, and ends
// with a report: the failed tests, every skipped test with its skip message,
// and one line "N passed, N failed, N skipped" (-q prints only that
// report, e.g. for a saved stream: testreport -q <test.json). It exits with status 1 when a
// test or a build failed.
//
//	set -o pipefail; go test -race -json ./... | go run ./scripts/testreport -json test.json
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action     string
	Package    string
	Test       string
	Output     string
	ImportPath string // build-output and build-fail
}

// result is a finished test: its package, name and, for skips, the message.
type result struct {
	pkg, test, msg string
}

// report collects what the stream said.
type report struct {
	out         io.Writer
	buf         map[string][]string // output of running tests, by package + test
	passed      int
	failed      []result
	skipped     []result
	buildFailed []string
	pkgFailed   []string
	unfinished  []result // tests still running when their package failed (a timeout or a panic); msg is their output
}

func key(pkg, test string) string { return pkg + "\x00" + test }

// add handles one event, printing what a plain `go test` run would.
func (r *report) add(e event) {
	switch e.Action {
	case "build-output":
		fmt.Fprint(r.out, e.Output)
	case "build-fail":
		r.buildFailed = append(r.buildFailed, e.ImportPath)
	case "output":
		if e.Test == "" {
			if e.Output != "PASS\n" {
				fmt.Fprint(r.out, e.Output)
			}
			return
		}
		k := key(e.Package, e.Test)
		r.buf[k] = append(r.buf[k], e.Output)
	case "pass", "fail", "skip":
		if e.Test == "" {
			if e.Action == "fail" {
				r.pkgFailed = append(r.pkgFailed, e.Package)
				r.flushUnfinished(e.Package)
			}
			return
		}
		r.finish(e)
	}
}

// finish records a test's end; a failure prints the test's output.
func (r *report) finish(e event) {
	k := key(e.Package, e.Test)
	lines := r.buf[k]
	delete(r.buf, k)
	switch e.Action {
	case "pass":
		r.passed++
	case "fail":
		r.failed = append(r.failed, result{pkg: e.Package, test: e.Test})
		r.printOutput(lines)
	case "skip":
		r.skipped = append(r.skipped, result{pkg: e.Package, test: e.Test, msg: skipMessage(lines)})
	}
}

// flushUnfinished prints, as go test would, the output of pkg's tests that
// never ended (the binary timed out or panicked: test2json gives them no
// end event) and keeps it for the summary.
func (r *report) flushUnfinished(pkg string) {
	var names []string
	for k := range r.buf {
		if p, test, _ := strings.Cut(k, "\x00"); p == pkg {
			names = append(names, test)
		}
	}
	sort.Strings(names)
	for _, test := range names {
		k := key(pkg, test)
		out := r.printOutput(r.buf[k])
		delete(r.buf, k)
		r.unfinished = append(r.unfinished, result{pkg: pkg, test: test, msg: out})
	}
}

// printOutput prints a test's output lines, as go test would (without
// test2json's progress lines), and returns what it printed.
func (r *report) printOutput(lines []string) string {
	var out strings.Builder
	for _, l := range lines {
		if !isFrame(l) {
			fmt.Fprint(r.out, l)
			out.WriteString(l)
		}
	}
	return out.String()
}

// isFrame reports whether l is one of test2json's progress lines.
func isFrame(l string) bool {
	for _, p := range []string{"=== RUN", "=== PAUSE", "=== CONT", "=== NAME"} {
		if strings.HasPrefix(l, p) {
			return true
		}
	}
	return false
}

// skipMessage is a skipped test's own output without the frame lines.
func skipMessage(lines []string) string {
	var msg []string
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t == "" || isFrame(l) || strings.HasPrefix(t, "--- SKIP") {
			continue
		}
		msg = append(msg, t)
	}
	if len(msg) == 0 {
		return "(no message)"
	}
	return strings.Join(msg, " | ")
}

// summary prints the failures, the skips and the closing count line to w.
func (r *report) summary(w io.Writer) {
	fmt.Fprintln(w, "\n=== test report ===")
	for _, p := range r.buildFailed {
		fmt.Fprintf(w, "BUILD FAILED %s\n", p)
	}
	if len(r.failed) > 0 {
		fmt.Fprintf(w, "failed (%d):\n", len(r.failed))
		for _, f := range r.failed {
			fmt.Fprintf(w, "  %s %s\n", f.pkg, f.test)
		}
	}
	for _, p := range r.pkgFailed {
		if !r.hasFailure(p) {
			fmt.Fprintf(w, "FAIL %s (no failing test: build error, panic or timeout; see above)\n", p)
		}
	}
	for _, u := range r.unfinished {
		fmt.Fprintf(w, "NEVER ENDED %s %s\n", u.pkg, u.test)
		fmt.Fprint(w, crashDigest(u.msg))
	}
	sort.SliceStable(r.skipped, func(i, j int) bool { return r.skipped[i].pkg < r.skipped[j].pkg })
	fmt.Fprintf(w, "skipped (%d):\n", len(r.skipped))
	for _, s := range r.skipped {
		fmt.Fprintf(w, "  %s %s: %s\n", s.pkg, s.test, s.msg)
	}
	fmt.Fprintf(w, "%d passed, %d failed, %d skipped\n", r.passed, len(r.failed), len(r.skipped))
}

// hasFailure reports whether pkg's failure is already explained by a failed
// test or a failed build.
func (r *report) hasFailure(pkg string) bool {
	for _, f := range r.failed {
		if f.pkg == pkg {
			return true
		}
	}
	for _, b := range r.buildFailed {
		if b == pkg || strings.HasPrefix(b, pkg+" ") {
			return true
		}
	}
	return false
}

// crashDigest shortens the output of a test that never ended to what tells
// why: its last log lines before the panic, the panic line, and the
// goroutines that were blocked in this module's code for a minute or more
// (a whole dump of a -race binary is thousands of lines), indented.
func crashDigest(out string) string {
	before, dump, found := strings.Cut(out, "panic: ")
	var b strings.Builder
	logs := strings.Split(strings.TrimRight(before, "\n"), "\n")
	if len(logs) > 15 {
		logs = logs[len(logs)-15:]
	}
	for _, l := range logs {
		if strings.TrimSpace(l) != "" {
			fmt.Fprintf(&b, "    %s\n", strings.TrimRight(l, " "))
		}
	}
	if !found {
		return b.String()
	}
	blocks := strings.Split(dump, "\n\n")
	head, _, _ := strings.Cut(blocks[0], "\n")
	fmt.Fprintf(&b, "    panic: %s\n", head)
	shown := 0
	for _, g := range blocks[1:] {
		lines := strings.Split(strings.TrimSpace(g), "\n")
		if !strings.HasPrefix(lines[0], "goroutine ") || !strings.Contains(lines[0], "minutes") ||
			!strings.Contains(g, "edgefleet/") {
			continue
		}
		if shown == 8 {
			fmt.Fprintf(&b, "    (more goroutines blocked in edgefleet code: see the stream)\n")
			break
		}
		shown++
		if len(lines) > 16 {
			lines = append(lines[:16], "…")
		}
		for _, l := range lines {
			fmt.Fprintf(&b, "      %s\n", l)
		}
	}
	return b.String()
}

func (r *report) ok() bool {
	return len(r.failed) == 0 && len(r.buildFailed) == 0 && len(r.pkgFailed) == 0
}

// run reads the stream from in; lines that are not JSON pass through.
func run(in io.Reader, out, raw io.Writer) (*report, error) {
	r := &report{out: out, buf: map[string][]string{}}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		line := sc.Bytes()
		if raw != nil {
			if _, err := fmt.Fprintf(raw, "%s\n", line); err != nil {
				return nil, fmt.Errorf("testreport: %w", err)
			}
		}
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			fmt.Fprintf(out, "%s\n", line)
			continue
		}
		r.add(e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("testreport: reading input: %w", err)
	}
	return r, nil
}

func main() {
	jsonFile := flag.String("json", "", "also write the raw `go test -json` stream to this file")
	quiet := flag.Bool("q", false, "print only the report, not the test output (to report on a saved stream)")
	flag.Parse()
	var out io.Writer = os.Stdout
	if *quiet {
		out = io.Discard
	}
	var raw io.Writer
	if *jsonFile != "" {
		f, err := os.Create(*jsonFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "testreport:", err)
			os.Exit(2)
		}
		defer f.Close()
		raw = f
	}
	r, err := run(os.Stdin, out, raw)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	r.summary(os.Stdout)
	if !r.ok() {
		os.Exit(1)
	}
}
