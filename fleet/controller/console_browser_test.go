package controller_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	paho "github.com/eclipse/paho.mqtt.golang"

	"edgefleet/fleet/controller/controllertest"
	"edgefleet/internal/testutil"
)

// browser is a headless Chromium on one tab, recording every request URL
// and the Authorization header each request was sent with.
type browser struct {
	t     *testing.T
	ctx   context.Context
	mu    sync.Mutex
	urls  []string
	auths map[string]string // request URL -> its Authorization header
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
	b := &browser{t: t, ctx: bctx, auths: map[string]string{}}
	if err := chromedp.Listen(bctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok {
			auth, _ := e.Request.Headers["Authorization"].(string)
			b.mu.Lock()
			b.urls = append(b.urls, e.Request.URL)
			b.auths[e.Request.URL] = auth
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

// click clicks the element sel as soon as it exists, in one step in the
// page: the console re-renders pages on a timer, so a node looked up first
// and clicked later may be gone by then.
func (b *browser) click(what, sel string) {
	b.t.Helper()
	b.poll(what, fmt.Sprintf(`(() => { const e = document.querySelector(%q); if (!e) return false; e.click(); return true })()`, sel), 20*time.Second)
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

// testDevice connects to f's broker as device id (password pw) until the
// test ends and returns the client and a publish function that sends v as
// JSON at QoS 1 and waits for the broker.
func testDevice(t *testing.T, f *controllertest.Fleetd, id, pw string) (paho.Client, func(topic string, v any)) {
	t.Helper()
	agent := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + f.MQTT).SetClientID(id).SetUsername(id).SetPassword(pw))
	if tk := agent.Connect(); !tk.WaitTimeout(5*time.Second) || tk.Error() != nil {
		t.Fatalf("%s: connect: %v", id, tk.Error())
	}
	t.Cleanup(func() { agent.Disconnect(0) })
	return agent, func(topic string, v any) {
		t.Helper()
		p, _ := json.Marshal(v)
		if tk := agent.Publish(topic, 1, false, p); !tk.WaitTimeout(5*time.Second) || tk.Error() != nil {
			t.Fatalf("publish %s: %v", topic, tk.Error())
		}
	}
}

// authOf returns the Authorization header the browser sent url with, and
// whether it sent url at all.
func (b *browser) authOf(url string) (string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	a, ok := b.auths[url]
	return a, ok
}
