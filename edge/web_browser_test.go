package edge_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// chromiumPath is where Debian's chromium package puts the browser the
// browser tests drive (`make deps` installs it).
const chromiumPath = "/usr/bin/chromium"

// browserTimeout bounds a whole browser test: the browser is killed when
// it passes, so a hung page fails the test instead of hanging it.
const browserTimeout = 55 * time.Second

// newBrowser starts a headless Chromium with a fresh profile for the test
// and returns its root context; the browser is stopped at cleanup. A
// missing Chromium fails the test: these tests are part of the suite.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("the browser tests need Chromium at %s (Debian package \"chromium\", installed by `make deps`): %v", chromiumPath, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	allocCtx, allocCancel := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromiumPath),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		// Pages in background tabs must keep their timers: the SDK's
		// reconnection backoff runs in them.
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	bctx, bcancel := chromedp.NewContext(allocCtx)
	if err := chromedp.Do(bctx); err != nil {
		bcancel()
		allocCancel()
		cancel()
		t.Fatalf("start chromium: %v", err)
	}
	t.Cleanup(func() {
		_ = chromedp.Cancel(bctx)
		bcancel()
		allocCancel() // waits for the browser process to exit
		cancel()
	})
	return bctx
}

// page is one browser tab.
type page struct {
	t    *testing.T
	name string
	ctx  context.Context

	mu   sync.Mutex // guards logs
	logs []string   // console output and uncaught exceptions
}

// newPage opens a tab in the browser of bctx and navigates it to url.
// The page's console output is logged if the test fails.
func newPage(t *testing.T, bctx context.Context, name, url string) *page {
	t.Helper()
	ctx, cancel := chromedp.NewContext(bctx)
	p := &page{t: t, name: name, ctx: ctx}
	if err := chromedp.Listen(ctx, p.onEvent); err != nil {
		cancel()
		t.Fatalf("%s: open tab: %v", name, err)
	}
	t.Cleanup(func() {
		cancel()
		if t.Failed() {
			p.mu.Lock()
			defer p.mu.Unlock()
			for _, l := range p.logs {
				t.Logf("%s console: %s", p.name, l)
			}
		}
	})
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("%s: navigate to %s: %v", name, url, err)
	}
	return p
}

// onEvent keeps the page's console output; it runs on chromedp's reader
// and must not block.
func (p *page) onEvent(ev any) {
	var line string
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		parts := make([]string, 0, len(ev.Args))
		for _, a := range ev.Args {
			if len(a.Value) > 0 {
				parts = append(parts, string(a.Value))
			} else {
				parts = append(parts, a.Description)
			}
		}
		line = string(ev.Type) + ": " + strings.Join(parts, " ")
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		line = "exception: " + d.Text
		if d.Exception != nil {
			line += " " + d.Exception.Description
		}
	default:
		return
	}
	p.mu.Lock()
	p.logs = append(p.logs, line)
	p.mu.Unlock()
}

// eval evaluates a JavaScript expression in the page, awaiting it if it
// is a promise, and decodes its JSON value into out (nil: ignored).
func (p *page) eval(expr string, out any) {
	p.t.Helper()
	raw, err := chromedp.Run(p.ctx, chromedp.Evaluate[[]byte](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("%s: evaluate %s: %v", p.name, short(expr), err)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			p.t.Fatalf("%s: evaluate %s: result %s: %v", p.name, short(expr), raw, err)
		}
	}
}

// wait polls a JavaScript condition until it is truthy, failing the test
// after timeout (the browser's own deadline applies too).
func (p *page) wait(what, cond string, timeout time.Duration) {
	p.t.Helper()
	_, err := chromedp.Run(p.ctx, chromedp.Poll[chromedp.Void](cond,
		chromedp.WithPollingInterval(20*time.Millisecond),
		chromedp.WithPollingTimeout(timeout)))
	if err != nil {
		var state string
		_, _ = chromedp.Run(p.ctx, func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
			raw, err := chromedp.Evaluate[[]byte](`JSON.stringify({body: document.body && document.body.dataset, T: window.T && {got: T.got && T.got.length, events: T.events, errors: T.errors}})`)(ctx, t)
			state = string(raw)
			return chromedp.Void{}, err
		})
		p.t.Fatalf("%s: waiting for %s (%s): %v; page state %s", p.name, what, short(cond), err, state)
	}
}

// screenshot saves a PNG of the whole page as a test artifact: under
// $ARENA_ARTIFACTS when set (kept after the run), else in the test's
// temporary directory. It returns the path.
func (p *page) screenshot(name string) string {
	p.t.Helper()
	png, err := chromedp.Run(p.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Fatalf("%s: screenshot: %v", p.name, err)
	}
	dir := os.Getenv("ARENA_ARTIFACTS")
	if dir == "" {
		dir = p.t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		p.t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("screenshot of %s: %s", p.name, path)
	return path
}

// jsString encodes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func short(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 120 {
		return s[:120] + "…"
	}
	return s
}

// jsHarness is evaluated in a test page: it loads the SDK from the page's
// node and connects, recording everything the tests check in window.T.
// %s: the connect call (Arena.connect or Arena.connectNearest) arguments.
const jsHarness = `(async () => {
  const { Arena } = await import('/sdk/arena.js');
  const T = window.T = { got: [], resets: [], events: [], errors: [] };
  T.arena = await Arena.%s;
  T.arena.on('connect', (i) => T.events.push('connect ' + i.node));
  T.arena.on('disconnect', (e) => T.events.push('disconnect ' + e.code));
  T.arena.on('reconnect', (e) => T.events.push('reconnect ' + e.reason));
  T.arena.on('error', (e) => T.errors.push(String(e && e.message)));
  return T.arena.info.node;
})()`

// connectPage loads the SDK in p and connects with call (for example
// `connect("http://…", {token: "…"})`); it returns the node connected to.
func (p *page) connect(call string) string {
	p.t.Helper()
	var node string
	p.eval(fmt.Sprintf(jsHarness, call), &node)
	return node
}
