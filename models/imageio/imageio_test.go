package imageio

import (
	"bytes"
	"errors"
	"image"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"edgefleet/models/modeltest"
)

func encoded(t testing.TB) (pngb, jpgb []byte) {
	img := image.NewRGBA(image.Rect(0, 0, 30, 20))
	for i := range img.Pix {
		img.Pix[i] = byte(i)
	}
	var p, j bytes.Buffer
	if err := png.Encode(&p, img); err != nil {
		t.Fatal(err)
	}
	if err := jpeg.Encode(&j, img, nil); err != nil {
		t.Fatal(err)
	}
	return p.Bytes(), j.Bytes()
}

func TestDecode(t *testing.T) {
	pngb, jpgb := encoded(t)
	// A PNG header claiming 100000x100000 pixels.
	huge := append([]byte(nil), pngb[:33]...)
	copy(huge[16:], []byte{0, 1, 0x86, 0xa0, 0, 1, 0x86, 0xa0})
	tests := []struct {
		name   string
		data   []byte
		err    string
		format error
	}{
		{"png", pngb, "", nil},
		{"jpeg", jpgb, "", nil},
		{"text", []byte("hello, not an image"), "", ErrFormat},
		{"empty", nil, "", ErrFormat},
		{"truncated png", pngb[:len(pngb)/2], "png", nil},
		{"truncated jpeg", jpgb[:len(jpgb)/2], "jpeg", nil},
		{"png magic only", pngb[:8], "png header", nil},
		{"huge png", huge, "png", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img, err := Decode(bytes.NewReader(tt.data))
			switch {
			case tt.format != nil:
				if !errors.Is(err, tt.format) {
					t.Fatalf("err = %v, want %v", err, tt.format)
				}
			case tt.err != "":
				if err == nil || !strings.HasPrefix(err.Error(), tt.err) {
					t.Fatalf("err = %v, want one starting %q", err, tt.err)
				}
			default:
				if err != nil {
					t.Fatal(err)
				}
				if img.Bounds().Dx() != 30 || img.Bounds().Dy() != 20 {
					t.Fatalf("bounds %v", img.Bounds())
				}
			}
		})
	}
}

func TestLoad(t *testing.T) {
	img, err := Load(modeltest.Path(t, "images", "chelsea.png"))
	if err != nil {
		t.Fatal(err)
	}
	if img.Bounds() != image.Rect(0, 0, 451, 300) {
		t.Errorf("chelsea.png bounds %v", img.Bounds())
	}
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.png")
	if _, err := Load(missing); err == nil || !strings.Contains(err.Error(), missing) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	fake := filepath.Join(dir, "fake.png")
	os.WriteFile(fake, []byte("not a png at all"), 0o644)
	if _, err := Load(fake); err == nil || !strings.Contains(err.Error(), fake) || !errors.Is(err, ErrFormat) {
		t.Errorf("fake png: %v", err)
	}
}

// FuzzDecode: images come from cameras and users; bad ones are errors, not panics.
func FuzzDecode(f *testing.F) {
	pngb, jpgb := encoded(f)
	f.Add(pngb)
	f.Add(jpgb)
	f.Fuzz(func(t *testing.T, b []byte) {
		img, err := Decode(bytes.NewReader(b))
		if err == nil && img.Bounds().Empty() {
			t.Fatal("empty image without error")
		}
	})
}
