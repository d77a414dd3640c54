package config

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// unknownKeys walks the YAML tree against Config's fields and reports every
// key that no field takes, by its full path (yaml.v3's own KnownFields error
// names only the key and the Go type).
func unknownKeys(root *yaml.Node) error {
	var errs []error
	w := walker{budget: 100000}
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		w.walk(root.Content[0], reflect.TypeFor[Config](), "", 0, &errs)
	}
	return errors.Join(errs...)
}

var durationType = reflect.TypeFor[time.Duration]()

// walker bounds the work: aliases can make a small file a huge tree.
type walker struct{ budget int }

func (w *walker) walk(n *yaml.Node, t reflect.Type, path string, depth int, errs *[]error) {
	w.budget--
	if depth > 32 || w.budget < 0 {
		return // deeper or bigger than any config: aliases at work
	}
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t.Kind() == reflect.Struct && t != durationType:
		if n.Kind != yaml.MappingNode {
			return // type errors are the decoder's job
		}
		fields := map[string]reflect.Type{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			if name != "-" {
				fields[name] = f.Type
			}
		}
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

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
