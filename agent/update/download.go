package update

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
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

func isPermanent(err error) bool {
	var p permanent
	return errors.As(err, &p)
}

// fetch is one download: the artifact at url, of exactly size bytes, into
// part (a file that may already hold a prefix from an earlier attempt).
type fetch struct {
	url, part, etagPath string
	sha256              string
	size                int64
	progress            func(have int64)
}

// download fetches f.part until it holds size bytes, retrying what can be
// retried with exponential backoff and jitter. Attempts that made progress
// do not count against MaxAttempts.
func (x *Executor) download(ctx context.Context, f fetch) error {
	failures := 0
	for {
		before := fileSize(f.part)
		err := x.fetchOnce(ctx, f)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("download: %w (%v)", ctx.Err(), err)
		}
		if isPermanent(err) {
			return fmt.Errorf("download: %w", err)
		}
		if fileSize(f.part) > before {
			failures = 0
		}
		failures++
		if failures >= x.opts.MaxAttempts {
			return fmt.Errorf("download: gave up after %d attempts without progress: %w", failures, err)
		}
		d := backoff(x.opts.RetryBase, x.opts.RetryMax, failures)
		x.log.Warn("update: download attempt failed; retrying", "url", f.url, "have_bytes", fileSize(f.part),
			"size", f.size, "retry_in_ms", d.Milliseconds(), "err", err)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("download: %w (%v)", ctx.Err(), err)
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
func (x *Executor) fetchOnce(ctx context.Context, f fetch) error {
	have := fileSize(f.part)
	if have > f.size {
		// Longer than the artifact can be: start over.
		if err := os.Truncate(f.part, 0); err != nil {
			return permanent{fmt.Errorf("reset partial file: %w", err)}
		}
		have = 0
	}
	if have == f.size {
		return nil
	}
	// The stall watchdog cancels the request when no byte arrives for StallTimeout.
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stall := time.AfterFunc(x.opts.StallTimeout, func() {
		cancel(fmt.Errorf("no data for %v", x.opts.StallTimeout))
	})
	defer stall.Stop()

	req, err := http.NewRequestWithContext(rctx, http.MethodGet, f.url, nil)
	if err != nil {
		return permanent{fmt.Errorf("request: %w", err)}
	}
	if x.opts.DeviceID != "" || x.opts.Token != "" {
		req.SetBasicAuth(x.opts.DeviceID, x.opts.Token)
	}
	etag := ""
	if have > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(have, 10)+"-")
		if b, err := os.ReadFile(f.etagPath); err == nil && len(b) > 0 {
			etag = string(b)
			req.Header.Set("If-Range", etag)
		}
	}
	resp, err := x.client.Do(req)
	if err != nil {
		if c := context.Cause(rctx); c != nil && ctx.Err() == nil {
			return fmt.Errorf("get %s: stalled: %v", f.url, c)
		}
		return fmt.Errorf("get %s: %w", f.url, err)
	}
	defer resp.Body.Close()

	// A strong ETag that is a sha256 must be this artifact's.
	if tag := resp.Header.Get("ETag"); tag != "" {
		if sum := strings.Trim(tag, `"`); len(sum) == 64 && !strings.HasPrefix(tag, "W/") && sum != f.sha256 {
			os.Remove(f.part)
			return permanent{fmt.Errorf("%w: server sends ETag %s for artifact %s", ErrMismatch, tag, f.sha256)}
		}
		if tag != etag && !strings.HasPrefix(tag, "W/") {
			if err := os.WriteFile(f.etagPath, []byte(tag), 0o644); err != nil {
				return permanent{fmt.Errorf("save etag: %w", err)}
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
			return fmt.Errorf("get %s: bad Content-Range %q for a request from byte %d", f.url, resp.Header.Get("Content-Range"), have)
		}
		if total >= 0 && total != f.size {
			return sizeError(total, f.size)
		}
		start = s
	case http.StatusRequestedRangeNotSatisfiable:
		_, total, _ := parseContentRange(resp.Header.Get("Content-Range"))
		if total >= 0 && total != f.size {
			return sizeError(total, f.size)
		}
		// The partial file does not fit the server's copy: start over.
		if err := os.Truncate(f.part, 0); err != nil {
			return permanent{fmt.Errorf("reset partial file: %w", err)}
		}
		return fmt.Errorf("get %s: range from byte %d refused (416); restarting", f.url, have)
	default:
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
		err := fmt.Errorf("%w: get %s: %s: %s", ErrHTTP, f.url, resp.Status, strings.TrimSpace(string(msg)))
		if resp.StatusCode >= 500 || resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests {
			return err
		}
		return permanent{err}
	}
	if resp.ContentLength > f.size-start {
		return permanent{fmt.Errorf("%w: server sends %d bytes from offset %d; the signed size is %d", ErrTooLarge, resp.ContentLength, start, f.size)}
	}

	flag := os.O_WRONLY | os.O_CREATE
	if start == 0 {
		flag |= os.O_TRUNC
	}
	out, err := os.OpenFile(f.part, flag, 0o644)
	if err != nil {
		return permanent{fmt.Errorf("open partial file: %w", err)}
	}
	if start > 0 {
		if err := out.Truncate(start); err != nil {
			out.Close()
			return permanent{fmt.Errorf("partial file: %w", err)}
		}
	}
	if _, err := out.Seek(start, io.SeekStart); err != nil {
		out.Close()
		return permanent{fmt.Errorf("partial file: %w", err)}
	}
	w := &progressWriter{w: out, have: start, report: f.progress, stall: stall, idle: x.opts.StallTimeout}
	// Read one byte past the signed size to notice an oversized body.
	_, copyErr := io.Copy(w, io.LimitReader(resp.Body, f.size-start+1))
	syncErr := out.Sync()
	closeErr := out.Close()
	if w.have > f.size {
		os.Remove(f.part)
		return permanent{fmt.Errorf("%w: more than the signed %d bytes", ErrTooLarge, f.size)}
	}
	if copyErr != nil {
		if c := context.Cause(rctx); c != nil && ctx.Err() == nil {
			return fmt.Errorf("get %s: stalled at byte %d: %v", f.url, w.have, c)
		}
		return fmt.Errorf("get %s: interrupted at byte %d of %d: %w", f.url, w.have, f.size, copyErr)
	}
	if syncErr != nil || closeErr != nil {
		return permanent{fmt.Errorf("write partial file: %w", errors.Join(syncErr, closeErr))}
	}
	if w.have < f.size {
		// The body ended cleanly: the server's copy is short.
		return permanent{fmt.Errorf("%w: the server sent %d of the signed %d bytes", ErrTruncated, w.have, f.size)}
	}
	return nil
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
