// Package imageio loads the photos and frames edgefleet runs models on
// (PNG and JPEG, by content, not by file name) and writes annotated results.
package imageio

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// ErrFormat is returned (wrapped) when the data is neither PNG nor JPEG.
var ErrFormat = errors.New("not a PNG or JPEG image")

// MaxPixels bounds the size of an image Decode accepts, so a hostile header
// cannot make it allocate gigabytes.
const MaxPixels = 1 << 27

var (
	pngMagic  = []byte("\x89PNG\r\n\x1a\n")
	jpegMagic = []byte{0xff, 0xd8}
)

// Decode reads a PNG or JPEG image. Errors say which format was expected and
// what is wrong with the data.
func Decode(r io.Reader) (image.Image, error) {
	br := bufio.NewReader(r)
	head, _ := br.Peek(8)
	var (
		format string
		cfg    func(io.Reader) (image.Config, error)
		dec    func(io.Reader) (image.Image, error)
	)
	switch {
	case bytes.HasPrefix(head, pngMagic):
		format, cfg, dec = "png", png.DecodeConfig, png.Decode
	case bytes.HasPrefix(head, jpegMagic):
		format, cfg, dec = "jpeg", jpeg.DecodeConfig, jpeg.Decode
	default:
		return nil, ErrFormat
	}
	// Check the size first, then decode from the start again.
	var buf bytes.Buffer
	c, err := cfg(io.TeeReader(br, &buf))
	if err != nil {
		return nil, fmt.Errorf("%s header: %w", format, err)
	}
	if c.Width <= 0 || c.Height <= 0 || int64(c.Width)*int64(c.Height) > MaxPixels {
		return nil, fmt.Errorf("%s: image size %dx%d out of range", format, c.Width, c.Height)
	}
	img, err := dec(io.MultiReader(&buf, br))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", format, err)
	}
	return img, nil
}

// Load reads the image file at path. The error names the file.
func Load(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("imageio: %w", err)
	}
	defer f.Close()
	img, err := Decode(f)
	if err != nil {
		return nil, fmt.Errorf("imageio: %s: %w", path, err)
	}
	return img, nil
}

// Save writes img to path as JPEG when the name ends in .jpg or .jpeg, else
// as PNG. It writes a temporary file and renames it, so readers never see a
// half-written picture.
func Save(path string, img image.Image) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".imageio-*")
	if err != nil {
		return fmt.Errorf("imageio: save %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	w := bufio.NewWriter(tmp)
	switch strings.ToLower(filepath.Ext(path)) {
	case ".jpg", ".jpeg":
		err = jpeg.Encode(w, img, &jpeg.Options{Quality: 90})
	default:
		err = png.Encode(w, img)
	}
	if err == nil {
		err = w.Flush()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("imageio: save %s: %w", path, err)
	}
	return nil
}
