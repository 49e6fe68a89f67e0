package web

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/smtpgate/smtpgate/store"
)

// chromiumPath is where Debian installs Chromium.
const chromiumPath = "/usr/bin/chromium"

// browserUI drives the web UI in a real headless Chromium.
type browserUI struct {
	t         *testing.T
	ctx       context.Context
	base      string
	artifacts string
	shot      int
}

// newBrowser starts Chromium for the test; without it the test is skipped,
// or fails under CI.
func newBrowser(t *testing.T, base string) *browserUI {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing; CI must install the chromium package", chromiumPath)
		}
		t.Skipf("%s is missing: apt-get install chromium", chromiumPath)
	}
	artifacts := os.Getenv("SMTPGATE_ARTIFACTS")
	if artifacts == "" {
		artifacts = t.TempDir()
	} else {
		artifacts = filepath.Join(artifacts, "web-ui")
		if err := os.MkdirAll(artifacts, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1366, 860),
	)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
	})
	t.Logf("screenshots in %s", artifacts)
	return &browserUI{t: t, ctx: ctx, base: base, artifacts: artifacts}
}

// do runs actions, failing the test on error.
func (b *browserUI) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		b.screenshot("failed")
		b.t.Fatalf("%s: %v", what, err)
	}
}

// until waits for a JavaScript expression to become true.
func (b *browserUI) until(what, expr string) {
	b.t.Helper()
	if _, err := chromedp.Run(b.ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(15*time.Second))); err != nil {
		b.screenshot("failed")
		b.t.Fatalf("waiting for %s (%s): %v", what, expr, err)
	}
}

// eval evaluates a JavaScript expression.
func eval[T any](b *browserUI, expr string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// screenshot saves the viewport as NN-name.png in the artifacts directory.
func (b *browserUI) screenshot(name string) {
	b.t.Helper()
	buf, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	b.shot++
	path := filepath.Join(b.artifacts, fmt.Sprintf("%02d-%s.png", b.shot, name))
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		b.t.Errorf("save screenshot: %v", err)
	}
}

// key types keys into the focused element.
func (b *browserUI) key(keys string) {
	b.t.Helper()
	b.do("key "+keys, chromedp.KeyEvent(keys))
}

// TestUIBrowser signs in, checks an address, moves and opens with the
// keyboard, switches the message's views, sees a message arrive live,
// downloads an attachment, searches and deletes, at desktop and phone
// widths, in Chromium.
func TestUIBrowser(t *testing.T) {
	f := newFixtureConfig(t, Config{UI: true}, nil)
	const box = "ann@example.com"
	welcome := f.plainMessage("alice", "welcome.eml", t0, box)
	tracked := f.trackedMessage("alice", t0.Add(time.Minute), box, "ops@example.com")
	otp := f.plainMessage("alice", "otp.eml", t0.Add(2*time.Minute), box)
	f.plainMessage("bob", "plain.eml", t0.Add(3*time.Minute), box) // Bob's: never shown to Alice
	if err := f.st.AddEvents(context.Background(), &store.Event{MessageID: tracked.ID, Type: store.EventClicked,
		Time: t0.Add(5 * time.Minute), URL: "https://shop.example/track/4471", IP: "198.51.100.7"}); err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, f.serve())

	// Sign in: a wrong key first.
	b.do("open", chromedp.Navigate(b.base+"/"))
	b.until("the sign-in form", `!document.getElementById("signin").hidden`)
	b.screenshot("sign-in")
	b.do("wrong key", chromedp.SendKeys(chromedp.ID("signin-key"), "k_wrong"+kb.Enter))
	b.until("the refusal", `document.getElementById("signin-error").textContent.includes("not known")`)
	b.do("right key", chromedp.SetValue(chromedp.ID("signin-key"), keyAlice), chromedp.Click(chromedp.CSS("#signin-form button[type=submit]")))
	b.until("the app", `document.body.dataset.ready === "true" && !document.getElementById("app").hidden`)
	b.until("the live stream", `document.getElementById("live").classList.contains("on")`)
	b.until("the sidebar", `document.querySelector('#sidebar a[data-inbox="ann@example.com"]') !== null`)

	// Check the mail of an address.
	b.do("check address", chromedp.SendKeys(chromedp.ID("check-input"), box+kb.Enter))
	b.until("the inbox", `document.getElementById("list-title").textContent === "`+box+`" && document.querySelectorAll("#messages li").length === 3`)
	subjects := eval[[]string](b, `[...document.querySelectorAll("#messages li .subject")].map(e => e.textContent)`)
	if strings.Join(subjects, "|") != "Your Acme sign-in code|Your order has shipped|Welcome to App — confirm" {
		t.Errorf("inbox subjects %q", subjects)
	}
	if n := eval[int](b, `document.querySelectorAll("#messages li.unread").length`); n != 3 {
		t.Errorf("%d unread messages, want 3", n)
	}
	markers := eval[string](b, `document.querySelectorAll("#messages li")[1].querySelector(".markers").textContent`)
	if !strings.Contains(markers, "2") { // links tracked
		t.Errorf("tracking markers %q", markers)
	}
	b.screenshot("inbox")

	// Keyboard: j, k, j, Enter.
	b.do("focus list", chromedp.Focus(chromedp.ID("messages")))
	b.key("jkj")
	if sel := eval[string](b, `document.querySelector("#messages li.selected").dataset.id`); sel != tracked.ID {
		t.Fatalf("after j k j the selection is %s, want %s", sel, tracked.ID)
	}
	b.key(kb.Enter)
	b.until("the message", `document.getElementById("m-subject").textContent === "Your order has shipped"`)
	b.until("the HTML view", `document.getElementById("html-frame")?.dataset.loaded === "true"`)
	sandbox := eval[string](b, `document.getElementById("html-frame").getAttribute("sandbox")`)
	if strings.Contains(sandbox, "allow-scripts") || strings.Contains(sandbox, "allow-same-origin") {
		t.Errorf("iframe sandbox %q", sandbox)
	}
	b.until("read", `!document.querySelectorAll("#messages li")[1].classList.contains("unread")`)
	b.screenshot("message-html")
	b.do("load images", chromedp.Click(chromedp.ID("load-images")))
	b.until("images", `document.getElementById("html-frame").src.endsWith("/html?images=1")`)

	// The other views, by number keys.
	b.do("focus panel", chromedp.Focus(chromedp.ID("tab-panel")))
	b.key("2")
	b.until("text view", `(document.getElementById("text-body")||{}).textContent?.includes("Track it: https://t.example.com/c/DeF456")`)
	b.key("3")
	b.until("headers view", `(document.getElementById("headers-table")||{}).textContent?.includes("Your order has shipped")`)
	b.key("4")
	b.until("raw view", `(document.getElementById("raw-body")||{}).textContent?.includes("Message-ID: <ship-1@shop.example>")`)
	b.key("6")
	b.until("links view", `(document.getElementById("links-table")||{}).textContent?.includes("Track your parcel")`)
	if orig := eval[string](b, `document.querySelector("#links-table .original-url")?.textContent || ""`); orig != "→ https://shop.example/track/4471" {
		t.Errorf("links view: original URL %q", orig)
	}
	b.key("7")
	b.until("changes view", `document.getElementById("diff-html") !== null`)
	added := eval[string](b, `[...document.querySelectorAll("#diff-html .add")].map(e => e.textContent).join("\n")`)
	if !strings.Contains(added, "https://t.example.com/o/GhI789") || !strings.Contains(added, "style=\"color: #fff") {
		t.Errorf("diff added lines %q", added)
	}
	if n := eval[int](b, `document.querySelectorAll("#directives-table tbody tr").length`); n != 2 {
		t.Errorf("%d directive rows, want 2", n)
	}
	b.screenshot("message-changes")
	b.do("scroll to the diff", chromedp.ScrollIntoView(chromedp.ID("diff-html")))
	b.screenshot("message-diff")
	b.key("8")
	b.until("events view", `(document.getElementById("events-table")||{}).textContent?.includes("clicked")`)

	// A message arrives: the list shows it without a reload.
	before := eval[float64](b, `performance.timeOrigin`)
	live := f.plainMessage("alice", "plain.eml", t0.Add(10*time.Minute), box)
	b.until("the live message", `document.querySelector("#messages li")?.dataset.id === "`+live.ID+`"`)
	if after := eval[float64](b, `performance.timeOrigin`); after != before {
		t.Error("the page reloaded")
	}
	b.until("its inbox count", `document.querySelector('#sidebar a[data-inbox="ann@example.com"] .count')?.textContent === "3"`)
	b.screenshot("live-update")

	// Download an attachment.
	dir := t.TempDir()
	dctx, cancelDownload := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancelDownload()
	progress := chromedp.Events(dctx, browser.DownloadProgress)
	b.do("open welcome", chromedp.Navigate(b.base+"/#inbox=ann%40example.com&m="+welcome.ID))
	b.until("welcome", `document.getElementById("m-subject").textContent === "Welcome to App — confirm"`)
	b.do("download", chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dir, EventsEnabled: ptr(true)})
		return err
	}), chromedp.Click(chromedp.CSS("#tab-attachments")))
	b.until("attachments view", `document.querySelectorAll(".attachment-download").length === 2`)
	b.do("click download", chromedp.Click(chromedp.CSS(`.attachment-download[download="terms.pdf"]`)))
	var file string
	for ev, err := range progress {
		if err != nil {
			t.Fatalf("download: %v", err)
		}
		if ev.State == browser.DownloadProgressStateCompleted {
			file = filepath.Join(dir, ev.GUID)
			break
		}
		if ev.State == browser.DownloadProgressStateCanceled {
			t.Fatal("download canceled")
		}
	}
	got, err := os.ReadFile(file)
	if err != nil || !bytes.HasPrefix(got, []byte("%PDF-1.4")) || len(got) != 75 {
		t.Errorf("downloaded %d bytes (%v): %q", len(got), err, got)
	}

	// Delete the selected message with the keyboard.
	b.do("back to list", chromedp.Navigate(b.base+"/#inbox=ann%40example.com"), chromedp.Reload())
	b.until("list", `document.querySelectorAll("#messages li").length === 4 && document.getElementById("message").hidden`)
	b.do("focus list", chromedp.Focus(chromedp.ID("messages")))
	b.key("j") // the second newest: the OTP message
	if sel := eval[string](b, `document.querySelector("#messages li.selected").dataset.id`); sel != otp.ID {
		t.Fatalf("selected %s, want %s", sel, otp.ID)
	}
	b.key(kb.Delete)
	b.until("deleted", `document.querySelectorAll("#messages li").length === 3 && !document.getElementById("msg-`+otp.ID+`")`)
	if _, err := f.st.Get(context.Background(), otp.ID, store.Scope{All: true}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the OTP message is still stored: %v", err)
	}

	// Search from the keyboard.
	b.key("/")
	b.until("search focus", `document.activeElement.id === "search-input"`)
	b.key("subject:shipped" + kb.Enter)
	b.until("results", `document.querySelectorAll("#messages li").length === 1 && document.querySelector("#messages li").dataset.id === "`+tracked.ID+`"`)
	b.screenshot("search")

	// Help.
	b.do("focus list", chromedp.Focus(chromedp.ID("messages")))
	b.key("?")
	b.until("help", `!document.getElementById("help").hidden`)
	b.screenshot("help")
	b.key(kb.Escape)
	b.until("help closed", `document.getElementById("help").hidden`)

	// A relayed message: never listed, but it opens by its id, with a
	// Delivery view of its deliveries and their attempts, Retry and Cancel.
	rel := f.relayed("alice", "tracked.eml", t0.Add(20*time.Minute), "ann@example.net", "bo@example.org")
	deferred, sent := rel.Deliveries[0].ID, rel.Deliveries[1].ID
	f.attempt(deferred, t0.Add(21*time.Minute), store.Outcome{
		Attempt: store.Attempt{Host: "mx1.example.net:25", Reply: "451 4.7.1 greylisted, try again in 5 minutes", Duration: 840 * time.Millisecond},
		State:   store.DeliveryDeferred, NextAttempt: t0.Add(30 * 24 * time.Hour),
	})
	f.attempt(sent, t0.Add(21*time.Minute), store.Outcome{
		Attempt:    store.Attempt{Host: "mx.example.org:25", Reply: "250 2.0.0 Ok: queued as 4FQ2", Duration: 310 * time.Millisecond},
		Recipients: []store.RecipientDelivery{{Address: "bo@example.org", Index: 1, State: store.RecipientSent, Reply: "250 2.0.0 Ok: queued as 4FQ2"}},
		State:      store.DeliverySent,
	})
	card := func(id int64) string { return fmt.Sprintf("#delivery-%d", id) }
	b.do("open relayed", chromedp.Navigate(b.base+"/#m="+rel.ID))
	b.until("the relayed message", `document.getElementById("m-subject").textContent === "Your order has shipped" && document.getElementById("tab-delivery") !== null`)
	if hidden := eval[bool](b, `document.getElementById("m-delete").hidden && document.getElementById("m-unread").hidden`); !hidden {
		t.Error("a relayed message offers Delete and Mark unread")
	}
	b.do("focus panel", chromedp.Focus(chromedp.ID("tab-panel")))
	b.key("9")
	b.until("the deliveries", `document.querySelectorAll("#deliveries .delivery").length === 2`)
	text := eval[string](b, `document.querySelector("`+card(deferred)+`").textContent`)
	for _, want := range []string{"example.net", "deferred", "1 attempt", "mx1.example.net:25", "451 4.7.1 greylisted", "840 ms", "Retry now", "Cancel", "ann@example.net", "pending"} {
		if !strings.Contains(text, want) {
			t.Errorf("deferred delivery card lacks %q: %s", want, text)
		}
	}
	if n := eval[int](b, `document.querySelectorAll("`+card(sent)+` button").length`); n != 0 {
		t.Errorf("the sent delivery offers %d actions", n)
	}
	b.screenshot("delivery")
	retried := time.Now()
	b.do("retry", chromedp.Click(chromedp.CSS(card(deferred)+" .retry")))
	b.until("retried", `document.getElementById("toast").textContent.includes("due now")`)
	ds, err := f.st.Deliveries(context.Background(), store.DeliveryQuery{Scope: store.Scope{All: true}, MessageID: rel.ID})
	if err != nil || len(ds) != 2 || ds[0].NextAttempt.Before(retried.Add(-time.Second)) || ds[0].NextAttempt.After(time.Now()) {
		t.Errorf("after Retry now: %+v %v", ds, err)
	}
	b.do("cancel", chromedp.Click(chromedp.CSS(card(deferred)+" .cancel")))
	b.until("armed", `document.querySelector("`+card(deferred)+` .cancel").dataset.armed === "true"`)
	b.do("confirm cancel", chromedp.Click(chromedp.CSS(card(deferred)+" .cancel")))
	b.until("cancelled", `document.querySelector("`+card(deferred)+`").dataset.state === "cancelled" && document.querySelectorAll("`+card(deferred)+` button").length === 0`)
	b.screenshot("delivery-cancelled")
	ds, err = f.st.Deliveries(context.Background(), store.DeliveryQuery{Scope: store.Scope{All: true}, MessageID: rel.ID})
	if err != nil || ds[0].State != store.DeliveryCancelled || ds[0].Recipients[0].State != store.RecipientFailed || ds[1].State != store.DeliverySent {
		t.Errorf("after Cancel: %+v %v", ds, err)
	}

	// Phone width: one pane at a time.
	b.do("phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile),
		chromedp.Navigate(b.base+"/#inbox=ann%40example.com"), chromedp.Reload())
	b.until("phone list", `document.querySelectorAll("#messages li").length === 3 && window.scrollX === 0`)
	if w := eval[float64](b, `document.documentElement.scrollWidth`); w > 391 {
		t.Errorf("the page is %v px wide at a 390 px viewport", w)
	}
	b.screenshot("phone-list")
	b.do("phone open", chromedp.Click(chromedp.CSS("#msg-"+tracked.ID)))
	b.until("phone message", `document.body.classList.contains("reading") && getComputedStyle(document.querySelector(".list-pane")).display === "none" && document.getElementById("html-frame")?.dataset.loaded === "true"`)
	b.screenshot("phone-message")
	b.do("phone back", chromedp.Click(chromedp.ID("back")))
	b.until("phone list again", `!document.body.classList.contains("reading") && getComputedStyle(document.querySelector(".list-pane")).display !== "none"`)

	// Sign out.
	b.do("desktop", chromedp.EmulateViewport(1366, 860))
	if _, err := chromedp.Run(b.ctx, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Click(chromedp.ID("signout")))); err != nil {
		t.Fatalf("sign out: %v", err)
	}
	b.until("signed out", `!document.getElementById("signin").hidden`)
	if n := eval[int](b, `document.cookie.length`); n != 0 {
		t.Errorf("page scripts see a cookie after sign-out (%d bytes)", n)
	}
}

// TestUIFiles checks the UI's routes without a browser: the page, its
// policy, the assets, and that nothing is served when the UI is off.
func TestUIFiles(t *testing.T) {
	f := newFixtureConfig(t, Config{UI: true}, nil)
	rec := f.do("GET", "/", "")
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `<script type="module" src="/ui/app.js">`) {
		t.Fatalf("index: %d", rec.Code)
	}
	wantHeader(t, rec, "Content-Security-Policy", cspUI)
	wantHeader(t, rec, "Content-Type", "text/html; charset=utf-8")
	wantHeader(t, rec, "X-Frame-Options", "DENY")
	for path, ct := range map[string]string{"/ui/app.js": "text/javascript; charset=utf-8", "/ui/api.js": "text/javascript; charset=utf-8",
		"/ui/dom.js": "text/javascript; charset=utf-8", "/ui/style.css": "text/css; charset=utf-8", "/favicon.ico": "image/svg+xml"} {
		rec := f.do("GET", path, "")
		if rec.Code != 200 || rec.Header().Get("Content-Type") != ct || rec.Header().Get("ETag") == "" {
			t.Errorf("%s: %d %q", path, rec.Code, rec.Header().Get("Content-Type"))
		}
		req := httptest.NewRequest("GET", path, nil)
		req.Header.Set("If-None-Match", rec.Header().Get("ETag"))
		rec2 := httptest.NewRecorder()
		f.srv.ServeHTTP(rec2, req)
		if rec2.Code != http.StatusNotModified {
			t.Errorf("%s revalidation: %d", path, rec2.Code)
		}
	}
	// No external assets: every URL in the UI's files is our own.
	for _, name := range []string{"index.html", "app.js", "api.js", "dom.js", "style.css"} {
		body := f.do("GET", "/ui/"+name, "").Body.String()
		for _, bad := range []string{"http://", "https://", "//cdn", "@import"} {
			if i := strings.Index(strings.ReplaceAll(body, "http://www.w3.org/2000/svg", ""), bad); i >= 0 {
				t.Errorf("%s refers to %q: %q", name, bad, body[max(0, i-40):min(len(body), i+40)])
			}
		}
	}
	for _, path := range []string{"/ui/%2e%2e/web.go", "/ui/.hidden", "/ui/nothing.js", "/ui/"} {
		wantError(t, f.do("GET", path, ""), 404)
	}
	off := newFixture(t, nil)
	wantError(t, off.do("GET", "/", ""), 404)
	wantError(t, off.do("GET", "/ui/app.js", ""), 404)
}

func ptr[T any](v T) *T { return &v }
