//go:build linux && (amd64 || arm64) && !omit_native

package native

import (
	"strings"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
)

// The TFLite error reporter is a C callback
//
//	void reporter(void *user_data, const char *format, va_list args);
//
// One Go callback serves every interpreter (purego callbacks are never
// freed); user_data selects the reporter. The message is formatted with
// libc's vsnprintf, which takes the va_list exactly as it was received: a
// pointer on amd64 and on arm64 (where the 32-byte struct is passed by
// reference).

var (
	reporterInit sync.Once
	reporterFn   uintptr
	vsnprintf    func(buf unsafe.Pointer, n uintptr, format *byte, ap uintptr) int32

	reportersMu  sync.Mutex
	reporters    = map[uintptr]*reporter{}
	nextReporter uintptr
)

// maxMessages bounds what one reporter keeps; the first messages say why.
const maxMessages = 16

// reporter collects the messages the library reports for one model.
type reporter struct {
	id uintptr

	mu   sync.Mutex
	msgs []string
}

// newReporter returns a reporter and the C callback to give the library,
// which is 0 when callbacks are unavailable.
func newReporter() (*reporter, uintptr) {
	reporterInit.Do(func() {
		if h, err := purego.Dlopen("libc.so.6", purego.RTLD_NOW|purego.RTLD_LOCAL); err == nil {
			if p, err := purego.Dlsym(h, "vsnprintf"); err == nil && p != 0 {
				purego.RegisterFunc(&vsnprintf, p)
			}
		}
		reporterFn = purego.NewCallback(reportCallback)
	})
	reportersMu.Lock()
	defer reportersMu.Unlock()
	nextReporter++
	r := &reporter{id: nextReporter}
	reporters[r.id] = r
	return r, reporterFn
}

// close forgets the reporter; later reports to its id are dropped.
func (r *reporter) close() {
	reportersMu.Lock()
	delete(reporters, r.id)
	reportersMu.Unlock()
}

// text returns the messages so far, joined, and clears them.
func (r *reporter) take() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := strings.Join(r.msgs, "; ")
	r.msgs = nil
	return s
}

func reportCallback(user uintptr, format *byte, ap uintptr) {
	reportersMu.Lock()
	r := reporters[user]
	reportersMu.Unlock()
	if r == nil || format == nil {
		return
	}
	msg := formatMessage(format, ap)
	r.mu.Lock()
	if len(r.msgs) < maxMessages {
		r.msgs = append(r.msgs, msg)
	}
	r.mu.Unlock()
}

func formatMessage(format *byte, ap uintptr) string {
	if vsnprintf != nil {
		var buf [1024]byte
		n := vsnprintf(unsafe.Pointer(&buf[0]), uintptr(len(buf)), format, ap)
		if n >= 0 {
			if int(n) >= len(buf) {
				n = int32(len(buf) - 1)
			}
			return strings.TrimSpace(string(buf[:n]))
		}
	}
	return strings.TrimSpace(cString(format, 1024))
}

// cString copies a NUL-terminated C string of at most max bytes.
func cString(p *byte, max int) string {
	var b []byte
	for i := 0; i < max; i++ {
		c := *(*byte)(unsafe.Add(unsafe.Pointer(p), i))
		if c == 0 {
			break
		}
		b = append(b, c)
	}
	return string(b)
}
