// Package yamlconf decodes configuration files strictly and names the key in
// every error: an unknown key by its full path (`retention.max_agee: unknown
// key (line 4)`), a value of the wrong type by the key it belongs to
// (`retention.max_age: cannot use "24" as a duration, write e.g. 24h (line 5)`).
// The agent's agent.yaml and fleetd's fleetd.yaml both go through it, so a
// mistake reads the same in either.
package yamlconf

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// MaxSize is the largest config file accepted.
const MaxSize = 1 << 20

// ErrEmpty is returned for a file with no YAML document.
var ErrEmpty = errors.New("empty file")

// Read reads at most MaxSize bytes of r and decodes them into v (a pointer
// to a struct with yaml tags) with Decode.
func Read(r io.Reader, v any) (*yaml.Node, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	if len(b) > MaxSize {
		return nil, fmt.Errorf("file larger than %d bytes", MaxSize)
	}
	return Decode(b, v)
}

// Decode strictly decodes b into v: every unknown key is reported (all of
// them, joined), and type errors name their key. It returns the parsed tree
// so that callers can tell keys given explicitly from defaults.
func Decode(b []byte, v any) (*yaml.Node, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, fmt.Errorf("yaml: %w", err)
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		return nil, ErrEmpty
	}
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var errs []error
	w := walker{budget: 100000, lines: map[int]string{}}
	w.walk(root.Content[0], t, "", 0, &errs)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, ErrEmpty
		}
		return nil, w.explain(err)
	}
	return &root, nil
}

// Given reports whether the key at path (dotted, e.g. "cameras.0.fps" is
// not supported: use GivenIn for sequences) is present in the document.
func Given(root *yaml.Node, path ...string) bool {
	n := root
	if n != nil && n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	for _, k := range path {
		n = child(n, k)
		if n == nil {
			return false
		}
	}
	return true
}

func child(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

var durationType = reflect.TypeFor[time.Duration]()

// walker checks keys against the Go type and remembers which key each line's
// value belongs to, to name it in the decoder's type errors. It bounds the
// work: aliases can make a small file a huge tree.
type walker struct {
	budget int
	lines  map[int]string
}

func (w *walker) walk(n *yaml.Node, t reflect.Type, path string, depth int, errs *[]error) {
	w.budget--
	if depth > 32 || w.budget < 0 {
		return
	}
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if path != "" {
		w.lines[n.Line] = path // children come later and are more precise
	}
	switch {
	case t.Kind() == reflect.Struct && t != durationType:
		if n.Kind != yaml.MappingNode {
			return
		}
		fields := fieldsOf(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			key := join(path, k.Value)
			ft, ok := fields[k.Value]
			if !ok {
				*errs = append(*errs, fmt.Errorf("%s: unknown key (line %d)", key, k.Line))
				continue
			}
			w.walk(v, ft, key, depth+1, errs)
		}
	case t.Kind() == reflect.Slice || t.Kind() == reflect.Array:
		if n.Kind != yaml.SequenceNode {
			return
		}
		for i, v := range n.Content {
			w.walk(v, t.Elem(), fmt.Sprintf("%s[%d]", path, i), depth+1, errs)
		}
	case t.Kind() == reflect.Map:
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			w.walk(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value), depth+1, errs)
		}
	}
}

// fieldsOf maps yaml keys to field types, following inlined structs.
func fieldsOf(t reflect.Type) map[string]reflect.Type {
	fields := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if strings.Contains(opts, "inline") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range fieldsOf(ft) {
					fields[k] = v
				}
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		if name != "-" {
			fields[name] = f.Type
		}
	}
	return fields
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var typeErrLine = regexp.MustCompile("^line (\\d+): cannot unmarshal !!(\\w+) `(.*)` into (.+)$")

// explain rewrites yaml.v3's type errors ("line 5: cannot unmarshal !!int
// `24` into time.Duration") to name the key.
func (w *walker) explain(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return fmt.Errorf("yaml: %w", err)
	}
	var out []error
	for _, msg := range te.Errors {
		m := typeErrLine.FindStringSubmatch(msg)
		if m == nil {
			out = append(out, errors.New(msg))
			continue
		}
		line, _ := strconv.Atoi(m[1])
		key := w.lines[line]
		if key == "" {
			key = "line " + m[1]
		}
		out = append(out, fmt.Errorf("%s: cannot use %q as %s (line %d)", key, m[3], describe(m[4]), line))
	}
	return errors.Join(out...)
}

func describe(goType string) string {
	switch {
	case goType == "time.Duration":
		return "a duration, write e.g. 30s, 5m or 24h"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.HasPrefix(goType, "map["):
		return "a mapping"
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"):
		return "a whole number"
	case strings.HasPrefix(goType, "float"):
		return "a number"
	case goType == "bool":
		return "true or false"
	case goType == "string":
		return "a string"
	case strings.HasPrefix(goType, "struct"):
		return "a section (a mapping of keys)"
	}
	return "a " + goType[strings.LastIndex(goType, ".")+1:] + " section"
}
