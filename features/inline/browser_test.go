package inline

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// computedStylesJS returns, for every element but <style> (and what is
// inside <head>), its tag and its full computed style.
const computedStylesJS = `Array.from(document.querySelectorAll('*'))
  .filter(e => e.tagName !== 'STYLE' && !e.closest('head'))
  .map(e => { const cs = getComputedStyle(e);
    return e.tagName + ' ' + Array.from(cs).map(p => p + ':' + cs.getPropertyValue(p)).join(';'); })`

// TestBrowserAgrees renders every testdata email before and after inlining
// in headless Chromium and compares the computed style of every element:
// inlining must not change what a browser shows. It needs a chromium
// binary (CHROMIUM or /usr/bin/chromium) and is skipped without one.
func TestBrowserAgrees(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	bin := os.Getenv("CHROMIUM")
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("chromium"); err != nil {
			t.Skip("no chromium binary")
		}
	}
	inputs, _ := filepath.Glob(filepath.Join("testdata", "*.html"))
	pages := map[string][]byte{}
	var names []string
	for _, path := range inputs {
		if strings.HasSuffix(path, ".golden.html") || strings.Contains(path, "40kb") {
			continue
		}
		name := strings.TrimSuffix(filepath.Base(path), ".html")
		in, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		out, err := New(Options{}).Inline(in)
		if err != nil {
			t.Fatal(err)
		}
		pages["/in-"+name], pages["/out-"+name] = in, out
		names = append(names, name)
	}
	for i, snippet := range browserSnippets {
		name := fmt.Sprintf("snippet%d", i)
		out, err := New(Options{}).Inline([]byte(snippet))
		if err != nil {
			t.Fatal(err)
		}
		pages["/in-"+name], pages["/out-"+name] = []byte(snippet), out
		names = append(names, name)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := pages[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(b)
	}))
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	actx, acancel := chromedp.NewExecAllocator(ctx, chromedp.ExecPath(bin), chromedp.Headless, chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("user-data-dir", t.TempDir()), chromedp.WindowSize(1024, 768))
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	styles := func(path string) []string {
		if err := chromedp.Do(bctx, chromedp.Navigate(srv.URL+path)); err != nil {
			t.Fatalf("navigate %s: %v", path, err)
		}
		v, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](computedStylesJS))
		if err != nil {
			t.Fatalf("evaluate %s: %v", path, err)
		}
		return v
	}
	for _, name := range names {
		before, after := styles("/in-"+name), styles("/out-"+name)
		if len(before) != len(after) {
			t.Errorf("%s: %d elements before, %d after", name, len(before), len(after))
			continue
		}
		for i := range before {
			if before[i] != after[i] {
				t.Errorf("%s: element %d: computed style differs: %s", name, i, styleDiff(before[i], after[i]))
			}
		}
	}
}

// browserSnippets are small documents on the edges of the cascade, checked
// in the browser as well.
var browserSnippets = []string{
	`<style>p{color:red}</style><b>1<p>2</b>3</p><div>a</p></div>`,
	`<style>body{margin:3px}tbody{color:red}td{padding:1px}</style><table><tr><td>x</td></tr></table>`,
	`<!DOCTYPE html><style>.Foo{color:red}.foo{color:blue}</style><p class="Foo">x</p>`,
	`<style>.Foo{color:red}</style><p class="foo">x</p>`,
	`<!DOCTYPE html><style>a:hover, .b, p::before{color:red}.c, p:unknown{color:blue}</style><p class="b c">x</p>`,
	`<!DOCTYPE html><style>p{padding:1px 2px;padding-left:9px}#i{padding:5px}.c{padding-top:7px !important}</style><p id="i" class="c" style="padding-bottom:3px">x</p>`,
	`<!DOCTYPE html><style>p{color:red!important}p{color:blue}</style><p style="color:green">a</p><p style="color:green!important">b</p>`,
	`<!DOCTYPE html><style>p{color:red;;;} } p{color:blue} p{font-size:9px}; p{margin:0} p{x:y</style><p>x</p>`,
	`<!DOCTYPE html><style>p{width:100px;width:calc(10px + 1em)}p{background:url(x.png) red;background-color:blue}</style><p>x</p>`,
	`<!DOCTYPE html><style>:root{--c:red}p{color:var(--c)}li:nth-child(2n){color:blue}li:not(:first-child){margin:1px}</style><p>x</p><ul><li>1<li>2<li>3</ul>`,
	`<!DOCTYPE html><style>td{color:red}</style><table><td>1<td>2</table><svg><rect/></svg>`,
	`<style>body{margin:0}body:not([x-sg-3]){color:red}</style><p>a</p><body style="padding:0"><body class=b>x`,
	// A nested rule's own declarations are inlined; what is nested stays
	// in <style> and, like a top-level @media rule, loses to inlined
	// declarations unless it is !important.
	`<!DOCTYPE html><style>.n{color:red;.c{color:blue}}.n2{color:green;@media (min-width:1px){color:olive !important}}</style><p class="n"><b class="c">x</b></p><p class="n2">y</p>`,
}

// styleDiff names the properties that differ between two serialised
// computed styles.
func styleDiff(a, b string) string {
	tag, a, _ := strings.Cut(a, " ")
	_, b, _ = strings.Cut(b, " ")
	pa, pb := strings.Split(a, ";"), strings.Split(b, ";")
	var d []string
	for i := range min(len(pa), len(pb)) {
		if pa[i] != pb[i] {
			d = append(d, pa[i]+" -> "+pb[i])
		}
	}
	return tag + ": " + strings.Join(d, ", ")
}
