package meta

import (
	"archive/zip"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"edgefleet/models/modeltest"
)

func TestFromRealModels(t *testing.T) {
	coco, err := ReadLabels(modeltest.Path(t, "models", "coco80.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(coco) != 80 || coco[0] != "person" || coco[79] != "toothbrush" {
		t.Fatalf("coco80.txt read as %d names", len(coco))
	}
	tests := []struct {
		model   string
		none    bool
		imgsz   []int
		version string
		e2e     bool
		source  string
	}{
		{"yolo11n_full_integer_quant.tflite", false, []int{640, 640}, "8.3.91", false, "temp_meta.txt"},
		{"yolo26n_int8_320_e2e.tflite", false, []int{320, 320}, "8.4.37", true, "metadata.json"},
		{"yolov8n_full_integer_quant.tflite", false, []int{640, 640}, "8.1.42", false, "temp_meta.txt"},
		{"yolov8n_int8.tflite", false, []int{640, 640}, "8.1.42", false, "temp_meta.txt"},
		{"yolov5n-int8.tflite", true, nil, "", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.model, func(t *testing.T) {
			b, err := os.ReadFile(modeltest.Path(t, "models", tt.model))
			if err != nil {
				t.Fatal(err)
			}
			m, err := FromModel(b)
			if tt.none {
				if !errors.Is(err, ErrNoMetadata) {
					t.Fatalf("FromModel = %v, %v; want ErrNoMetadata", m, err)
				}
				l, src, err := Labels("", b)
				if err != nil || l != nil || src != FromIDs {
					t.Fatalf("Labels = %v, %q, %v; want class ids", l, src, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(m.Names, coco) {
				t.Errorf("names %v, want coco80.txt", m.Names)
			}
			if !reflect.DeepEqual(m.ImgSz, tt.imgsz) || m.Version != tt.version || m.EndToEnd != tt.e2e || m.Source != tt.source || m.Task != "detect" || m.Stride != 32 {
				t.Errorf("metadata %+v", m)
			}
			l, src, err := Labels("", b)
			if err != nil || src != FromMetadata || len(l) != 80 {
				t.Errorf("Labels from metadata: %d names, %q, %v", len(l), src, err)
			}
			lf := filepath.Join(t.TempDir(), "l.txt")
			os.WriteFile(lf, []byte("a\n b \n\n"), 0o644)
			l, src, err = Labels(lf, b)
			if err != nil || src != FromFile || !reflect.DeepEqual(l, []string{"a", "b"}) {
				t.Errorf("Labels from file: %q, %q, %v", l, src, err)
			}
		})
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want *Metadata
		err  bool
	}{
		{"python dict", `{'task': 'detect', 'names': {0: 'person', 2: "it's"}, 'imgsz': [480, 640], 'args': {'int8': True, 'nms': False, 'x': None}, 'stride': 32, 'end2end': True}`,
			&Metadata{Task: "detect", Names: []string{"person", "", "it's"}, ImgSz: []int{480, 640}, Stride: 32, EndToEnd: true}, false},
		{"json", `{"names": {"0": "a", "1": "b\u00e9"}, "imgsz": 320, "batch": 4, "version": "8.4.1", "end2end": false}`,
			&Metadata{Names: []string{"a", "bé"}, ImgSz: []int{320, 320}, Batch: 4, Version: "8.4.1"}, false},
		{"names list and tuple", `{'names': ['x', 'y'], 'imgsz': (64, 32), 'f': -1.5e3, 'g': 1_000}`,
			&Metadata{Names: []string{"x", "y"}, ImgSz: []int{64, 32}}, false},
		{"trailing commas", "{'names': {0: 'a',},\n}", &Metadata{Names: []string{"a"}}, false},
		{"empty", ``, nil, true},
		{"not a dict", `['a']`, nil, true},
		{"unterminated", `{'names': {0: 'a}`, nil, true},
		{"negative id", `{'names': {-1: 'a'}}`, nil, true},
		{"huge id", `{'names': {99999999: 'a'}}`, nil, true},
		{"bad key", `{'names': {'zero': 'a'}}`, nil, true},
		{"trailing data", `{} x`, nil, true},
		{"deep", strings.Repeat("[", 200) + strings.Repeat("]", 200), nil, true},
		{"list key", `{[1]: 2}`, nil, true},
		{"bad escape", `{'a': '\xZZ'}`, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.in))
			if (err != nil) != tt.err {
				t.Fatalf("err = %v, want error %v", err, tt.err)
			}
			if err == nil && !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func zipped(t testing.TB, prefix []byte, files map[string]string) []byte {
	var buf bytes.Buffer
	buf.Write(prefix)
	z := zip.NewWriter(&buf)
	z.SetOffset(int64(len(prefix)))
	for name, body := range files {
		w, err := z.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(body))
	}
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestFromModelZip(t *testing.T) {
	flat := []byte("\x1c\x00\x00\x00TFL3 pretend flatbuffer")
	m, err := FromModel(zipped(t, flat, map[string]string{"labelmap.txt": "cat\ndog\n"}))
	if err != nil || !reflect.DeepEqual(m.Names, []string{"cat", "dog"}) {
		t.Errorf("label file member: %+v, %v", m, err)
	}
	if _, err := FromModel(zipped(t, flat, map[string]string{"temp_meta.txt": "{'names': "})); err == nil || errors.Is(err, ErrNoMetadata) {
		t.Errorf("broken temp_meta.txt: %v, want a syntax error", err)
	}
	if _, err := FromModel(flat); !errors.Is(err, ErrNoMetadata) {
		t.Errorf("no zip: %v", err)
	}
	if _, err := FromModel(nil); !errors.Is(err, ErrNoMetadata) {
		t.Errorf("empty: %v", err)
	}
	if _, err := ReadLabels(filepath.Join(t.TempDir(), "missing.txt")); err == nil {
		t.Error("missing label file accepted")
	}
	empty := filepath.Join(t.TempDir(), "empty.txt")
	os.WriteFile(empty, []byte("\n\n"), 0o644)
	if _, _, err := Labels(empty, nil); err == nil {
		t.Error("empty label file accepted")
	}
}

// FuzzParse: metadata comes from model files of unknown origin.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{'names': {0: 'person', 1: 'bicycle'}, 'imgsz': [640, 640], 'args': {'int8': True}}`))
	f.Add([]byte(`{"names": {"0": "a\u00e9"}, "end2end": true, "x": [1.5, null]}`))
	f.Add([]byte(`{'a': (1, -2e5, '\x41')}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err == nil && len(m.Names) > MaxClasses {
			t.Fatalf("%d names", len(m.Names))
		}
	})
}

// FuzzFromModel: a corrupt ZIP tail must give an error, never a panic.
func FuzzFromModel(f *testing.F) {
	f.Add(zipped(f, []byte("TFL3"), map[string]string{"temp_meta.txt": "{'names': ['a']}"}))
	f.Add(zipped(f, nil, map[string]string{"metadata.json": `{"names": {"0": "a"}}`}))
	f.Fuzz(func(t *testing.T, b []byte) {
		FromModel(b)
	})
}
