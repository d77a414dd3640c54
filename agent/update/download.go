package update

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// permanent marks a download error that another attempt cannot fix.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// IsPermanent says whether a download error is one that another attempt
// cannot fix (the partial file is then not worth keeping).
func IsPermanent(err error) bool {
	var p permanent
	return errors.As(err, &p)
}

// DownloadOptions configure a Downloader; zero values take the defaults given.
type DownloadOptions struct {
	// Client makes the requests; nil means a client with a 10 s dial, TLS
	// and response-header timeout and no overall timeout.
	Client *http.Client
	// DeviceID and Token are sent as HTTP basic credentials (when either is set).
	DeviceID, Token string
	// BaseURL resolves artifact URLs that are relative (fleetd sends
	// "/artifacts/<sha256>").
	BaseURL string
	// MaxAttempts is the most attempts in a row without progress; default 5.
	MaxAttempts int
	// RetryBase and RetryMax bound the backoff between attempts; default 1 s and 60 s.
	RetryBase, RetryMax time.Duration
	// StallTimeout abandons an attempt that receives nothing for this long; default 30 s.
	StallTimeout time.Duration
	Logger       *slog.Logger
}

// Downloader fetches signed artifacts (models and firmware bundles) for the
// device: with its credentials, resuming an interrupted download with Range
// and If-Range from the partial file, retrying with backoff and jitter,
// abandoning an attempt whose body stalls, and never taking more than the
// signed size. It is safe for concurrent use on different partial files.
type Downloader struct {
	opts DownloadOptions
}

// NewDownloader returns a Downloader with o's defaults filled in.
func NewDownloader(o DownloadOptions) *Downloader {
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 5
	}
	if o.RetryBase <= 0 {
		o.RetryBase = time.Second
	}
	if o.RetryMax <= 0 {
		o.RetryMax = time.Minute
	}
	if o.StallTimeout <= 0 {
		o.StallTimeout = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Client == nil {
		d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
		o.Client = &http.Client{Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           d.DialContext,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: 10 * time.Second,
			IdleConnTimeout:       time.Minute,
		}}
	}
	return &Downloader{opts: o}
}

// Resolve makes an artifact URL absolute against BaseURL.
func (d *Downloader) Resolve(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || raw == "" {
		return "", fmt.Errorf("%w: artifact url %q", ErrHTTP, raw)
	}
	if u.IsAbs() {
		return u.String(), nil
	}
	if d.opts.BaseURL == "" {
		return "", fmt.Errorf("%w: artifact url %q is relative and no BaseURL is configured", ErrHTTP, raw)
	}
	base, err := url.Parse(d.opts.BaseURL)
	if err != nil {
		return "", fmt.Errorf("%w: base url %q: %v", ErrHTTP, d.opts.BaseURL, err)
	}
	return base.ResolveReference(u).String(), nil
}

// Fetch is one download: the artifact at URL (absolute, or relative to
// BaseURL), of exactly Size bytes, into Part, a file that may already hold a
// prefix from an earlier attempt. The ETag the prefix came with is kept
// beside it (Part with ".etag" for ".part").
type Fetch struct {
	URL, Part string
	SHA256    string // an ETag that is a sha256 must be this
	Size      int64
	// Progress, if set, is told the bytes held after each write.
	Progress func(have int64)
}

func (f Fetch) etagPath() string { return strings.TrimSuffix(f.Part, ".part") + ".etag" }

// Discard removes the partial file and its ETag.
func (f Fetch) Discard() {
	os.Remove(f.Part)
	os.Remove(f.etagPath())
}

// Download fetches f.Part until it holds Size bytes, retrying what can be
// retried. Attempts that made progress do not count against MaxAttempts.
// After a permanent error (IsPermanent) the partial file is not worth
// keeping; after another, a later Download resumes it.
func (d *Downloader) Download(ctx context.Context, f Fetch) error {
	u, err := d.Resolve(f.URL)
	if err != nil {
		return permanent{err}
	}
	f.URL = u
	failures := 0
	for {
		before := fileSize(f.Part)
		err := d.fetchOnce(ctx, f)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("update: download: %w (%v)", ctx.Err(), err)
		}
		if IsPermanent(err) {
			return permanent{fmt.Errorf("update: download: %w", err)}
		}
		if fileSize(f.Part) > before {
			failures = 0
		}
		failures++
		if failures >= d.opts.MaxAttempts {
			return fmt.Errorf("update: download: gave up after %d attempts without progress: %w", failures, err)
		}
		wait := backoff(d.opts.RetryBase, d.opts.RetryMax, failures)
		d.opts.Logger.Warn("update: download attempt failed; retrying", "url", f.URL, "have_bytes", fileSize(f.Part),
			"size", f.Size, "retry_in_ms", wait.Milliseconds(), "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("update: download: %w (%v)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// backoff is base·2^(n-1) capped at max, with full jitter in its upper half.
func backoff(base, max time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	return d/2 + rand.N(d/2+1)
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// fetchOnce makes one request, resuming from the partial file's size.
func (d *Downloader) fetchOnce(ctx context.Context, f Fetch) error {
	have := fileSize(f.Part)
	if have > f.Size {
		// Longer than the artifact can be: start over.
		if err := os.Truncate(f.Part, 0); err != nil {
			return permanent{fmt.Errorf("reset partial file: %w", err)}
		}
		have = 0
	}
	if have == f.Size {
		return nil
	}
	// The stall watchdog cancels the request when no byte arrives for StallTimeout.
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stall := time.AfterFunc(d.opts.StallTimeout, func() {
		cancel(fmt.Errorf("no data for %v", d.opts.StallTimeout))
	})
	defer stall.Stop()

	resp, err := d.get(rctx, f, have)
	if err != nil {
		if c := context.Cause(rctx); c != nil && ctx.Err() == nil {
			return fmt.Errorf("get %s: stalled: %v", f.URL, c)
		}
		return err
	}
	defer resp.Body.Close()
	start, err := d.checkResponse(resp, f, have)
	if err != nil {
		return err
	}
	w, copyErr, err := d.writeBody(resp.Body, f, start, stall)
	if err != nil {
		return err
	}
	if copyErr != nil {
		if c := context.Cause(rctx); c != nil && ctx.Err() == nil {
			return fmt.Errorf("get %s: stalled at byte %d: %v", f.URL, w, c)
		}
		return fmt.Errorf("get %s: interrupted at byte %d of %d: %w", f.URL, w, f.Size, copyErr)
	}
	if w < f.Size {
		// The body ended cleanly: the server's copy is short.
		return permanent{fmt.Errorf("%w: the server sent %d of the signed %d bytes", ErrTruncated, w, f.Size)}
	}
	return nil
}

// get sends the request, with a Range from have and the If-Range of the
// partial file's ETag.
func (d *Downloader) get(ctx context.Context, f Fetch, have int64) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.URL, nil)
	if err != nil {
		return nil, permanent{fmt.Errorf("request: %w", err)}
	}
	if d.opts.DeviceID != "" || d.opts.Token != "" {
		req.SetBasicAuth(d.opts.DeviceID, d.opts.Token)
	}
	if have > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(have, 10)+"-")
		if b, err := os.ReadFile(f.etagPath()); err == nil && len(b) > 0 {
			req.Header.Set("If-Range", string(b))
		}
	}
	resp, err := d.opts.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", f.URL, err)
	}
	return resp, nil
}

// checkResponse checks the ETag and status and returns the offset the body
// starts at.
func (d *Downloader) checkResponse(resp *http.Response, f Fetch, have int64) (int64, error) {
	// A strong ETag that is a sha256 must be this artifact's.
	if tag := resp.Header.Get("ETag"); tag != "" && !strings.HasPrefix(tag, "W/") {
		if sum := strings.Trim(tag, `"`); len(sum) == 64 && sum != f.SHA256 {
			os.Remove(f.Part)
			return 0, permanent{fmt.Errorf("%w: server sends ETag %s for artifact %s", ErrMismatch, tag, f.SHA256)}
		}
		if old, _ := os.ReadFile(f.etagPath()); string(old) != tag {
			if err := os.WriteFile(f.etagPath(), []byte(tag), 0o644); err != nil {
				return 0, permanent{fmt.Errorf("save etag: %w", err)}
			}
		}
	}
	var start int64
	switch resp.StatusCode {
	case http.StatusOK:
		start = 0 // the server ignored the range or the If-Range no longer matches
	case http.StatusPartialContent:
		s, total, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || s > have {
			return 0, fmt.Errorf("get %s: bad Content-Range %q for a request from byte %d", f.URL, resp.Header.Get("Content-Range"), have)
		}
		if total >= 0 && total != f.Size {
			return 0, sizeError(total, f.Size)
		}
		start = s
	case http.StatusRequestedRangeNotSatisfiable:
		_, total, _ := parseContentRange(resp.Header.Get("Content-Range"))
		if total >= 0 && total != f.Size {
			return 0, sizeError(total, f.Size)
		}
		// The partial file does not fit the server's copy: start over.
		if err := os.Truncate(f.Part, 0); err != nil {
			return 0, permanent{fmt.Errorf("reset partial file: %w", err)}
		}
		return 0, fmt.Errorf("get %s: range from byte %d refused (416); restarting", f.URL, have)
	default:
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
		err := fmt.Errorf("%w: get %s: %s: %s", ErrHTTP, f.URL, resp.Status, strings.TrimSpace(string(msg)))
		if resp.StatusCode >= 500 || resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests {
			return 0, err
		}
		return 0, permanent{err}
	}
	if resp.ContentLength > f.Size-start {
		return 0, permanent{fmt.Errorf("%w: server sends %d bytes from offset %d; the signed size is %d", ErrTooLarge, resp.ContentLength, start, f.Size)}
	}
	return start, nil
}

// writeBody writes body into the partial file from start and fsyncs it. It
// returns the bytes the file holds and the error of the copy itself; err is
// a permanent failure of the file or an oversized body.
func (d *Downloader) writeBody(body io.Reader, f Fetch, start int64, stall *time.Timer) (have int64, copyErr, err error) {
	flag := os.O_WRONLY | os.O_CREATE
	if start == 0 {
		flag |= os.O_TRUNC
	}
	out, err := os.OpenFile(f.Part, flag, 0o644)
	if err != nil {
		return 0, nil, permanent{fmt.Errorf("open partial file: %w", err)}
	}
	if start > 0 {
		if err := out.Truncate(start); err != nil {
			out.Close()
			return 0, nil, permanent{fmt.Errorf("partial file: %w", err)}
		}
	}
	if _, err := out.Seek(start, io.SeekStart); err != nil {
		out.Close()
		return 0, nil, permanent{fmt.Errorf("partial file: %w", err)}
	}
	w := &progressWriter{w: out, have: start, report: f.Progress, stall: stall, idle: d.opts.StallTimeout}
	// Read one byte past the signed size to notice an oversized body.
	_, copyErr = io.Copy(w, io.LimitReader(body, f.Size-start+1))
	syncErr := out.Sync()
	closeErr := out.Close()
	if w.have > f.Size {
		os.Remove(f.Part)
		return w.have, nil, permanent{fmt.Errorf("%w: more than the signed %d bytes", ErrTooLarge, f.Size)}
	}
	if copyErr == nil && (syncErr != nil || closeErr != nil) {
		return w.have, nil, permanent{fmt.Errorf("write partial file: %w", errors.Join(syncErr, closeErr))}
	}
	return w.have, copyErr, nil
}

func sizeError(total, size int64) error {
	if total < size {
		return permanent{fmt.Errorf("%w: the server has %d of the signed %d bytes", ErrTruncated, total, size)}
	}
	return permanent{fmt.Errorf("%w: the server has %d bytes; the signed size is %d", ErrTooLarge, total, size)}
}

// parseContentRange reads "bytes a-b/total" or "bytes */total"; total is -1
// when unknown ("*").
func parseContentRange(s string) (start, total int64, ok bool) {
	rest, found := strings.CutPrefix(s, "bytes ")
	if !found {
		return 0, -1, false
	}
	rng, tot, found := strings.Cut(rest, "/")
	if !found {
		return 0, -1, false
	}
	total = -1
	if tot != "*" {
		t, err := strconv.ParseInt(tot, 10, 64)
		if err != nil || t < 0 {
			return 0, -1, false
		}
		total = t
	}
	if rng == "*" {
		return 0, total, true
	}
	a, b, found := strings.Cut(rng, "-")
	if !found {
		return 0, total, false
	}
	start, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || start < 0 || end < start {
		return 0, total, false
	}
	return start, total, true
}

// progressWriter counts bytes, feeds the stall watchdog and reports progress.
type progressWriter struct {
	w      io.Writer
	have   int64
	report func(int64)
	stall  *time.Timer
	idle   time.Duration
}

func (p *progressWriter) Write(b []byte) (int, error) {
	p.stall.Reset(p.idle)
	n, err := p.w.Write(b)
	p.have += int64(n)
	if p.report != nil {
		p.report(p.have)
	}
	return n, err
}

// throttle calls fn at most once per interval, and always for the final value.
type throttle struct {
	mu       sync.Mutex
	interval time.Duration
	last     time.Time
	lastVal  float64
	fn       func(float64)
}

func (t *throttle) update(v float64) {
	t.mu.Lock()
	now := time.Now()
	if v < 1 && (now.Sub(t.last) < t.interval || v == t.lastVal) {
		t.mu.Unlock()
		return
	}
	if v >= 1 && t.lastVal >= 1 {
		t.mu.Unlock()
		return
	}
	t.last, t.lastVal = now, v
	t.mu.Unlock()
	t.fn(v)
}
