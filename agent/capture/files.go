package capture

import (
	"context"
	"fmt"
	"image"
	_ "image/jpeg" // decoders for Files
	_ "image/png"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Files plays image files (JPEG, PNG) at a frame rate: one file, or every
// image in a folder in name order. It loops unless Once is set, then Next
// returns io.EOF after the last file. Files that fail to decode are skipped
// (counted in Skipped). Files is not safe for concurrent use, except Close.
type Files struct {
	paths []string
	pace  *pacer
	once  bool
	i     int
	// Skipped counts files that could not be read or decoded.
	Skipped int
	c       closer
}

// FilesOptions configure OpenFiles.
type FilesOptions struct {
	FPS  float64 // frames per second; 0 means 1
	Once bool    // stop after one pass instead of looping
}

// OpenFiles opens an image file or a folder of images.
func OpenFiles(path string, opts FilesOptions) (*Files, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("capture: files: %w", err)
	}
	paths := []string{path}
	if st.IsDir() {
		paths, err = imageFiles(path)
		if err != nil {
			return nil, fmt.Errorf("capture: files: %w", err)
		}
		if len(paths) == 0 {
			return nil, fmt.Errorf("capture: files: no .jpg, .jpeg or .png in %s", path)
		}
	}
	return &Files{paths: paths, pace: newPacer(opts.FPS), once: opts.Once, c: newCloser()}, nil
}

// imageFiles lists the JPEG and PNG files of a folder, sorted by name.
func imageFiles(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		switch strings.ToLower(filepath.Ext(e.Name())) {
		case ".jpg", ".jpeg", ".png":
			if e.Type().IsRegular() {
				out = append(out, filepath.Join(dir, e.Name()))
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

// Next returns the next image, paced at the frame rate.
func (f *Files) Next(ctx context.Context) (Frame, error) {
	ctx, cancel := f.c.bind(ctx)
	defer cancel()
	for tries := 0; ; tries++ {
		if f.c.closed() {
			return Frame{}, ErrClosed
		}
		if tries >= len(f.paths) {
			return Frame{}, fmt.Errorf("capture: files: none of %d files decodes", len(f.paths))
		}
		if f.i >= len(f.paths) {
			if f.once {
				return Frame{}, io.EOF
			}
			f.i = 0
		}
		p := f.paths[f.i]
		f.i++
		img, err := decodeFile(p)
		if err != nil {
			f.Skipped++
			continue
		}
		t, err := f.pace.wait(ctx)
		if err != nil {
			if f.c.closed() {
				return Frame{}, ErrClosed
			}
			return Frame{}, err
		}
		return Frame{Image: img, Time: t}, nil
	}
}

// Close stops the source; Next then returns ErrClosed.
func (f *Files) Close() error {
	f.c.close()
	return nil
}

func decodeFile(path string) (image.Image, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	img, _, err := image.Decode(io.LimitReader(fh, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	return img, nil
}
