package capture

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"sync"
	"time"
)

// MaxJPEG is the largest JPEG frame accepted from a stream or device.
const MaxJPEG = 16 << 20

// MJPEG reads a Motion-JPEG stream over HTTP (Content-Type
// multipart/x-mixed-replace, one JPEG per part), as served by IP cameras and
// mjpg-streamer. It reconnects with backoff when the stream fails and reports
// the camera down meanwhile. Not safe for concurrent use, except Close and
// Status.
type MJPEG struct {
	url     string
	client  *http.Client
	backoff Backoff
	health
	c closer

	mu     sync.Mutex // guards cancel, for Close
	cancel context.CancelFunc
	body   io.ReadCloser
	parts  *partReader
	fails  int
}

// MJPEGOptions configure NewMJPEG.
type MJPEGOptions struct {
	// Client defaults to an http.Client with no overall timeout (a stream
	// is endless) and a 10s response-header timeout.
	Client  *http.Client
	Backoff Backoff
}

var _ Reporter = (*MJPEG)(nil)

// NewMJPEG returns a source for the stream at url; it connects on the first Next.
func NewMJPEG(url string, opts MJPEGOptions) *MJPEG {
	cl := opts.Client
	if cl == nil {
		cl = &http.Client{Transport: &http.Transport{ResponseHeaderTimeout: 10 * time.Second}}
	}
	return &MJPEG{url: url, client: cl, backoff: opts.Backoff, c: newCloser()}
}

// Next returns the next JPEG of the stream, reconnecting as needed.
func (m *MJPEG) Next(ctx context.Context) (Frame, error) {
	for {
		if m.c.closed() {
			return Frame{}, ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return Frame{}, err
		}
		if m.current() == nil {
			if err := m.connect(ctx); err != nil {
				if m.c.closed() {
					return Frame{}, ErrClosed
				}
				if ctx.Err() != nil {
					return Frame{}, ctx.Err()
				}
				m.health.down(err)
				if err := sleep(ctx, m.backoff.delay(m.fails)); err != nil {
					return Frame{}, err
				}
				m.fails++
				continue
			}
		}
		// A cancelled ctx aborts the blocked read by tearing the connection down.
		stop := context.AfterFunc(ctx, m.disconnect)
		pr := m.current()
		if pr == nil { // ctx was cancelled right after connect
			stop()
			continue
		}
		img, err := pr.next()
		stop()
		if err != nil {
			m.disconnect()
			if m.c.closed() {
				return Frame{}, ErrClosed
			}
			if ctx.Err() != nil {
				return Frame{}, ctx.Err()
			}
			m.health.down(fmt.Errorf("capture: mjpeg %s: %w", m.url, err))
			if err := sleep(ctx, m.backoff.delay(m.fails)); err != nil {
				return Frame{}, err
			}
			m.fails++
			continue
		}
		m.fails = 0
		m.health.up()
		return Frame{Image: img, Time: time.Now()}, nil
	}
}

func (m *MJPEG) current() *partReader {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.parts
}

func (m *MJPEG) connect(ctx context.Context) error {
	// The connection outlives this call (it serves later Nexts), so it hangs
	// off its own context, cancelled by disconnect or Close.
	cctx, cancel := context.WithCancel(context.Background())
	stopClose := context.AfterFunc(ctxOf(m.c.done), cancel)
	stopCtx := context.AfterFunc(ctx, cancel)
	defer stopCtx()
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, m.url, nil)
	if err != nil {
		stopClose()
		cancel()
		return fmt.Errorf("capture: mjpeg: %w", err)
	}
	resp, err := m.client.Do(req)
	if err != nil {
		stopClose()
		cancel()
		return fmt.Errorf("capture: mjpeg: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		stopClose()
		cancel()
		return fmt.Errorf("capture: mjpeg %s: status %s", m.url, resp.Status)
	}
	pr, err := newPartReader(resp.Body, resp.Header.Get("Content-Type"))
	if err != nil {
		resp.Body.Close()
		stopClose()
		cancel()
		return fmt.Errorf("capture: mjpeg %s: %w", m.url, err)
	}
	m.mu.Lock()
	m.cancel = func() { stopClose(); cancel() }
	m.body = resp.Body
	m.parts = pr
	m.mu.Unlock()
	return nil
}

func (m *MJPEG) disconnect() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cancel != nil {
		m.cancel()
		m.body.Close()
	}
	m.cancel, m.body, m.parts = nil, nil, nil
}

// Close ends the stream; Next then returns ErrClosed.
func (m *MJPEG) Close() error {
	m.c.close()
	m.disconnect()
	return nil
}

// partReader splits a multipart/x-mixed-replace body into JPEG images.
type partReader struct {
	mr  *multipart.Reader
	buf bytes.Buffer
}

func newPartReader(body io.Reader, contentType string) (*partReader, error) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return nil, fmt.Errorf("content type %q: %w", contentType, err)
	}
	if !strings.HasPrefix(mt, "multipart/") {
		return nil, fmt.Errorf("content type %q is not multipart/x-mixed-replace", contentType)
	}
	b := params["boundary"]
	// Some cameras put the delimiter's leading dashes into the parameter.
	b = strings.TrimPrefix(b, "--")
	if b == "" {
		return nil, errors.New("multipart content type without boundary")
	}
	return &partReader{mr: multipart.NewReader(body, b)}, nil
}

// next decodes the next part that holds a JPEG; parts of other types are skipped.
func (p *partReader) next() (image.Image, error) {
	for skipped := 0; ; skipped++ {
		part, err := p.mr.NextPart()
		if err != nil {
			return nil, fmt.Errorf("next part: %w", err)
		}
		if ct := part.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "image/jpeg") && skipped < 16 {
			continue
		}
		p.buf.Reset()
		n, err := p.buf.ReadFrom(io.LimitReader(part, MaxJPEG+1))
		if err != nil {
			return nil, fmt.Errorf("read part: %w", err)
		}
		if n > MaxJPEG {
			return nil, fmt.Errorf("part larger than %d bytes", MaxJPEG)
		}
		img, err := jpeg.Decode(bytes.NewReader(withHuffman(p.buf.Bytes())))
		if err != nil {
			return nil, fmt.Errorf("decode jpeg: %w", err)
		}
		return img, nil
	}
}
