package controller_test

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/jpeg"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"edgefleet/fleet/controller/controllertest"
	"edgefleet/internal/testutil"
)

// browser is a headless Chromium on one tab, recording every request URL.
type browser struct {
	t    *testing.T
	ctx  context.Context
	mu   sync.Mutex
	urls []string
}

func newBrowser(t *testing.T, ctx context.Context) *browser {
	t.Helper()
	exe := testutil.Chromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.NoFirstRun, chromedp.UserDataDir(t.TempDir()))
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(acancel)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(bcancel)
	b := &browser{t: t, ctx: bctx}
	if err := chromedp.Listen(bctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok {
			b.mu.Lock()
			b.urls = append(b.urls, e.Request.URL)
			b.mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	return b
}

func (b *browser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("%s: %v", sel, err)
	}
	return s
}

// poll waits until the JS expression is true.
func (b *browser) poll(what, expr string, limit time.Duration) {
	b.t.Helper()
	if _, err := chromedp.Run(b.ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(limit))); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// signIn opens the console at base, gets the sign-in page and signs in with the token.
func (b *browser) signIn(base string) {
	b.t.Helper()
	b.do("sign-in page", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("#login-form")),
		chromedp.SendKeys(chromedp.CSS("#token"), controllertest.Token), chromedp.Click(chromedp.CSS("#signin")),
		chromedp.WaitVisible(chromedp.CSS("#n-devices")))
}

// noTokenInURLs fails if any request the browser sent carried the token in its URL.
func (b *browser) noTokenInURLs() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.urls) == 0 {
		b.t.Fatal("no request recorded")
	}
	for _, u := range b.urls {
		if strings.Contains(u, controllertest.Token) {
			b.t.Errorf("a request URL carries the token: %s", u)
		}
	}
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }

// fakeSnapshots answers the browser's requests to fleetd's snapshot route
// (GET /api/v1/devices/{id}/cameras/{camera}/snapshot, which asks the agent
// over MQTT) with a 64x48 JPEG; the returned func gives the Authorization
// header of the last one.
func (b *browser) fakeSnapshots() func() string {
	b.t.Helper()
	var jb bytes.Buffer
	jpeg.Encode(&jb, image.NewRGBA(image.Rect(0, 0, 64, 48)), nil)
	var mu sync.Mutex
	auth := ""
	events := chromedp.Events(b.ctx, fetch.RequestPaused)
	if _, err := chromedp.Call(b.ctx, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{{URLPattern: "*/cameras/*/snapshot*"}}}); err != nil {
		b.t.Fatal(err)
	}
	go func() {
		for ev, err := range events {
			if err != nil {
				return
			}
			mu.Lock()
			auth, _ = ev.Request.Headers["Authorization"].(string)
			mu.Unlock()
			chromedp.Call(b.ctx, fetch.FulfillRequest, fetch.FulfillRequestParams{RequestID: ev.RequestID, ResponseCode: 200,
				ResponseHeaders: []*fetch.HeaderEntry{{Name: "Content-Type", Value: "image/jpeg"}}, Body: jb.Bytes()})
		}
	}()
	return func() string {
		mu.Lock()
		defer mu.Unlock()
		return auth
	}
}
