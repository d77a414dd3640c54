package yamlconf

import (
	"errors"
	"strings"
	"testing"
	"time"
)

type conf struct {
	HTTP struct {
		Listen string `yaml:"listen"`
	} `yaml:"http"`
	Retention struct {
		MaxAge time.Duration `yaml:"max_age"`
		Count  int           `yaml:"count"`
	} `yaml:"retention"`
	Cams []struct {
		ID  string  `yaml:"id"`
		FPS float64 `yaml:"fps"`
	} `yaml:"cameras"`
	Labels map[string]string `yaml:"labels"`
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"unknown top key", "retenton:\n  max_age: 1h\n", []string{"retenton: unknown key (line 1)"}},
		{"unknown nested key", "retention:\n  max_agee: 1h\n", []string{"retention.max_agee: unknown key (line 2)"}},
		{"unknown in list", "cameras:\n  - id: a\n    fsp: 3\n", []string{"cameras[0].fsp: unknown key (line 3)"}},
		{"all unknown keys", "a: 1\nb: 2\n", []string{"a: unknown key", "b: unknown key"}},
		{"duration as int", "retention:\n  max_age: 24\n", []string{`retention.max_age: cannot use "24" as a duration`, "(line 2)"}},
		{"int as string", "retention:\n  count: many\n", []string{`retention.count: cannot use "many" as a whole number (line 2)`}},
		{"number in list", "cameras:\n  - id: a\n    fps: fast\n", []string{`cameras[0].fps: cannot use "fast" as a number`}},
		{"section as scalar", "http: 8080\n", []string{`http: cannot use "8080" as a`}},
		{"syntax", "http: [\n", []string{"yaml:"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c conf
			_, err := Decode([]byte(tc.yaml), &c)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestDecodeGood(t *testing.T) {
	var c conf
	root, err := Decode([]byte("http:\n  listen: 127.0.0.1:1\nretention:\n  max_age: 24h\ncameras:\n  - id: a\n    fps: 5\nlabels: {site: x}\n"), &c)
	if err != nil {
		t.Fatal(err)
	}
	if c.Retention.MaxAge != 24*time.Hour || c.Cams[0].FPS != 5 || c.Labels["site"] != "x" {
		t.Fatalf("decoded %+v", c)
	}
	if !Given(root, "retention", "max_age") || Given(root, "retention", "count") {
		t.Fatal("Given wrong")
	}
}

func TestDecodeEmpty(t *testing.T) {
	var c conf
	if _, err := Decode([]byte("  \n"), &c); !errors.Is(err, ErrEmpty) {
		t.Fatalf("got %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte("retention:\n  max_age: 24\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var c conf
		Decode(b, &c)
	})
}
