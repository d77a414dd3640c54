// Package meta reads what a model file says about itself and where class
// names come from: Ultralytics appends a ZIP to exported .tflite files
// holding temp_meta.txt (a Python dict literal) or metadata.json, with the
// class names, input size and export arguments; label files give names too.
package meta

import (
	"archive/zip"
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
)

// Errors of this package.
var (
	// ErrNoMetadata is returned when a model file carries no metadata.
	ErrNoMetadata = errors.New("meta: no embedded metadata")
	// ErrSyntax is returned (wrapped) for metadata that does not parse.
	ErrSyntax = errors.New("meta: syntax error")
)

// Limits on what the parser accepts, so hostile files cannot exhaust memory.
const (
	MaxMetaBytes = 1 << 20 // a metadata member larger than this is refused
	MaxClasses   = 1 << 16 // class ids must be below this
	maxDepth     = 64
)

// Metadata is what an Ultralytics export records about the model.
// Fields the file does not have stay zero.
type Metadata struct {
	Names       []string // class names by id; ids the file skips are ""
	ImgSz       []int    // input size, [h, w]
	Task        string   // "detect", ...
	Version     string   // Ultralytics version
	Description string
	Author      string
	Date        string
	License     string
	Stride      int
	Batch       int
	EndToEnd    bool   // end2end: the model emits final boxes, no NMS
	Source      string // ZIP member it came from
}

// FromModel reads the metadata appended to a model file as a ZIP.
// It returns ErrNoMetadata when there is none.
func FromModel(model []byte) (*Metadata, error) {
	z, err := zip.NewReader(bytes.NewReader(model), int64(len(model)))
	if err != nil {
		return nil, ErrNoMetadata
	}
	var labelFile *zip.File
	for _, f := range z.File {
		base := path.Base(f.Name)
		switch {
		case base == "temp_meta.txt" || base == "metadata.json":
			b, err := readMember(f)
			if err != nil {
				return nil, err
			}
			m, err := Parse(b)
			if err != nil {
				return nil, fmt.Errorf("meta: %s: %w", f.Name, err)
			}
			m.Source = f.Name
			return m, nil
		case strings.HasSuffix(base, ".txt") && labelFile == nil:
			labelFile = f // e.g. a TFLite Support labelmap.txt
		}
	}
	if labelFile != nil {
		b, err := readMember(labelFile)
		if err != nil {
			return nil, err
		}
		return &Metadata{Names: ParseLabels(b), Source: labelFile.Name}, nil
	}
	return nil, ErrNoMetadata
}

func readMember(f *zip.File) ([]byte, error) {
	if f.UncompressedSize64 > MaxMetaBytes {
		return nil, fmt.Errorf("meta: %s: %d bytes, more than %d", f.Name, f.UncompressedSize64, MaxMetaBytes)
	}
	r, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("meta: open %s: %w", f.Name, err)
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, MaxMetaBytes+1))
	if err != nil {
		return nil, fmt.Errorf("meta: read %s: %w", f.Name, err)
	}
	if len(b) > MaxMetaBytes {
		return nil, fmt.Errorf("meta: %s: more than %d bytes", f.Name, MaxMetaBytes)
	}
	return b, nil
}

// Parse reads Ultralytics metadata: a Python dict literal (temp_meta.txt)
// or JSON (metadata.json); the parser takes both.
func Parse(b []byte) (*Metadata, error) {
	v, err := parseLiteral(b)
	if err != nil {
		return nil, err
	}
	d, ok := v.(dict)
	if !ok {
		return nil, fmt.Errorf("%w: metadata is not a dict", ErrSyntax)
	}
	m := &Metadata{}
	for _, kv := range d {
		k, _ := kv.k.(string)
		switch k {
		case "names":
			if m.Names, err = names(kv.v); err != nil {
				return nil, err
			}
		case "imgsz":
			switch s := kv.v.(type) {
			case []any:
				for _, x := range s {
					if n, ok := x.(int64); ok && n > 0 && n < 1<<16 {
						m.ImgSz = append(m.ImgSz, int(n))
					}
				}
			case int64:
				if s > 0 && s < 1<<16 {
					m.ImgSz = []int{int(s), int(s)}
				}
			}
		case "task":
			m.Task, _ = kv.v.(string)
		case "version":
			m.Version, _ = kv.v.(string)
		case "description":
			m.Description, _ = kv.v.(string)
		case "author":
			m.Author, _ = kv.v.(string)
		case "date":
			m.Date, _ = kv.v.(string)
		case "license":
			m.License, _ = kv.v.(string)
		case "stride":
			if n, ok := kv.v.(int64); ok && n > 0 && n < 1<<16 {
				m.Stride = int(n)
			}
		case "batch":
			if n, ok := kv.v.(int64); ok && n > 0 && n < 1<<16 {
				m.Batch = int(n)
			}
		case "end2end":
			m.EndToEnd, _ = kv.v.(bool)
		}
	}
	return m, nil
}

// names reads {0: 'person', ...}, {"0": "person"} or ['person', ...].
func names(v any) ([]string, error) {
	switch n := v.(type) {
	case []any:
		if len(n) > MaxClasses {
			return nil, fmt.Errorf("meta: names: %d classes, more than %d", len(n), MaxClasses)
		}
		out := make([]string, len(n))
		for i, x := range n {
			out[i] = fmt.Sprint(x)
			if s, ok := x.(string); ok {
				out[i] = s
			}
		}
		return out, nil
	case dict:
		var out []string
		for _, kv := range n {
			var id int64
			switch k := kv.k.(type) {
			case int64:
				id = k
			case string:
				var err error
				if id, err = strconv.ParseInt(k, 10, 32); err != nil {
					return nil, fmt.Errorf("meta: names: key %q is not a class id", k)
				}
			default:
				return nil, fmt.Errorf("meta: names: key %v is not a class id", kv.k)
			}
			if id < 0 || id >= MaxClasses {
				return nil, fmt.Errorf("meta: names: class id %d out of range", id)
			}
			for int64(len(out)) <= id {
				out = append(out, "")
			}
			s, ok := kv.v.(string)
			if !ok {
				s = fmt.Sprint(kv.v)
			}
			out[id] = s
		}
		return out, nil
	}
	return nil, fmt.Errorf("meta: names: %w: want a dict or a list", ErrSyntax)
}

// ParseLabels reads a label file: one class name per line, in id order.
// Surrounding spaces and a trailing run of empty lines are dropped.
func ParseLabels(b []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), MaxMetaBytes)
	for sc.Scan() && len(out) < MaxClasses {
		out = append(out, strings.TrimSpace(sc.Text()))
	}
	for len(out) > 0 && out[len(out)-1] == "" {
		out = out[:len(out)-1]
	}
	return out
}

// ReadLabels reads a label file (see ParseLabels).
func ReadLabels(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("meta: labels: %w", err)
	}
	l := ParseLabels(b)
	if len(l) == 0 {
		return nil, fmt.Errorf("meta: labels: %s: no names in it", path)
	}
	return l, nil
}

// Label sources, as Labels reports them.
const (
	FromFile     = "file"
	FromMetadata = "metadata"
	FromIDs      = "ids"
)

// Labels picks the class names for a model: the label file when labelsPath
// is set, else the model's embedded metadata, else none (callers name classes
// by id). It reports which source it used.
func Labels(labelsPath string, model []byte) ([]string, string, error) {
	if labelsPath != "" {
		l, err := ReadLabels(labelsPath)
		if err != nil {
			return nil, "", err
		}
		return l, FromFile, nil
	}
	m, err := FromModel(model)
	if err == nil && len(m.Names) > 0 {
		return m.Names, FromMetadata, nil
	}
	return nil, FromIDs, nil
}
