package track

import (
	"fmt"
	"strings"
	"testing"
)

// newsletter builds a newsletter-shaped HTML document: a table layout with
// inline styles, a navigation bar of nav links, articles with a headline
// link and a button each, an Outlook conditional comment, entities, an
// unresolved merge tag and a mailto link. newsletter(8, 4) is ~3 KB with 21
// tracked links; newsletter(8, 96) is ~40 KB with 201.
func newsletter(nav, articles int) []byte {
	var b strings.Builder
	b.WriteString(`<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
<html xmlns="http://www.w3.org/1999/xhtml" xmlns:v="urn:schemas-microsoft-com:vml"><head><meta charset="utf-8"><title>News</title>
<style>body{margin:0}.btn{background:#0a6;color:#fff}@media (max-width:620px){.col{width:100%!important}}</style></head>
<body style="margin:0;padding:0"><table role="presentation" width="100%" cellpadding="0" cellspacing="0"><tr><td align="center">
<a href="https://shop.example.com/?utm_source=news&amp;utm_medium=email"><img src="https://cdn.example.com/logo.png" alt="Shop" width="120"></a>
</td></tr><tr><td>`)
	for i := range nav {
		fmt.Fprintf(&b, `<a href="https://shop.example.com/c/%d">Cat %d</a> | `, i, i)
	}
	b.WriteString("</td></tr>\n")
	for i := range articles {
		fmt.Fprintf(&b, `<tr><td class="col" style="padding:8px 16px;font:14px/1.4 Arial,sans-serif;color:#333">
<h2 style="margin:0 0 4px"><a href="https://shop.example.com/a/%d" style="color:#333;text-decoration:none">Article %d&nbsp;&mdash; caf&eacute;</a></h2>
<p>Short teaser text for this article, kept to a realistic length for a newsletter.</p>
<a class="btn" href="https://shop.example.com/articles/%d?utm_source=news&amp;utm_campaign=w47" style="color:#06c">Read more</a></td></tr>
`, i, i, i)
	}
	b.WriteString(`<!--[if mso]><v:roundrect href="https://shop.example.com/sale" style="height:40px;width:200px" arcsize="10%" fillcolor="#0a6"><center>Sale</center></v:roundrect><![endif]-->
<tr><td style="font-size:12px;color:#999"><a href="{{unsubscribe_url}}">Unsubscribe</a> &middot; <a href="mailto:help@example.com">Help</a></td></tr>
</table></body></html>
`)
	return []byte(b.String())
}

// cpuLoop runs f b.N times and also reports process CPU time per operation
// (cpu-ns/op), which stays meaningful when other processes share the cores.
func cpuLoop(b *testing.B, f func()) {
	b.ReportAllocs()
	start := processCPU()
	n := 0
	for b.Loop() {
		f()
		n++
	}
	if end := processCPU(); start >= 0 && end >= 0 && n > 0 {
		b.ReportMetric(float64(end-start)/float64(n), "cpu-ns/op")
	}
}

func benchRewriteHTML(b *testing.B, nav, articles int) {
	r := newTestRewriter(b)
	in := newsletter(nav, articles)
	_, n, err := r.RewriteHTML(in, testOpts)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(in)))
	b.ReportMetric(float64(n), "links")
	cpuLoop(b, func() {
		if _, _, err := r.RewriteHTML(in, testOpts); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkRewriteHTML3KB: a 3 KB newsletter with ~20 links.
func BenchmarkRewriteHTML3KB(b *testing.B) { benchRewriteHTML(b, 8, 4) }

// BenchmarkRewriteHTML40KB: a 40 KB newsletter with ~200 links.
func BenchmarkRewriteHTML40KB(b *testing.B) { benchRewriteHTML(b, 8, 96) }

func benchAddPixel(b *testing.B, nav, articles int) {
	r := newTestRewriter(b)
	in := newsletter(nav, articles)
	b.SetBytes(int64(len(in)))
	cpuLoop(b, func() { r.AddPixel(in, testOpts) })
}

// BenchmarkAddPixel3KB and BenchmarkAddPixel40KB insert the open pixel.
func BenchmarkAddPixel3KB(b *testing.B)  { benchAddPixel(b, 8, 4) }
func BenchmarkAddPixel40KB(b *testing.B) { benchAddPixel(b, 8, 96) }

func benchLinksAndPixel(b *testing.B, nav, articles int) {
	r := newTestRewriter(b)
	in := newsletter(nav, articles)
	b.SetBytes(int64(len(in)))
	cpuLoop(b, func() {
		out, _, err := r.RewriteHTML(in, testOpts)
		if err != nil {
			b.Fatal(err)
		}
		r.AddPixel(out, testOpts)
	})
}

// BenchmarkLinksAndPixel3KB and BenchmarkLinksAndPixel40KB are what one
// message costs with click and open tracking on as two calls (RewriteHTML,
// then AddPixel on its result).
func BenchmarkLinksAndPixel3KB(b *testing.B)  { benchLinksAndPixel(b, 8, 4) }
func BenchmarkLinksAndPixel40KB(b *testing.B) { benchLinksAndPixel(b, 8, 96) }

func benchLinksWithPixelOption(b *testing.B, nav, articles int) {
	r := newTestRewriter(b)
	in := newsletter(nav, articles)
	o := testOpts
	o.OpenPixel = true
	b.SetBytes(int64(len(in)))
	cpuLoop(b, func() {
		if _, _, err := r.RewriteHTML(in, o); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkLinksWithPixelOption3KB and BenchmarkLinksWithPixelOption40KB do
// the same in one pass (Options.OpenPixel): the figures to hold against the
// CSS inliner (≤ 20 %: 24 µs at 3 KB, 500 µs at 40 KB).
func BenchmarkLinksWithPixelOption3KB(b *testing.B)  { benchLinksWithPixelOption(b, 8, 4) }
func BenchmarkLinksWithPixelOption40KB(b *testing.B) { benchLinksWithPixelOption(b, 8, 96) }

// BenchmarkRewriteText rewrites a text part with 20 URLs.
func BenchmarkRewriteText(b *testing.B) {
	r := newTestRewriter(b)
	var sb strings.Builder
	for i := range 20 {
		fmt.Fprintf(&sb, "Article %d: a short line of teaser text, then the link\n<https://shop.example.com/articles/%d?utm_source=news&utm_campaign=w47>.\n\n", i, i)
	}
	in := []byte(sb.String())
	b.SetBytes(int64(len(in)))
	cpuLoop(b, func() {
		if _, _, err := r.RewriteText(in, testOpts); err != nil {
			b.Fatal(err)
		}
	})
}

func benchToken() Token {
	return Token{Kind: KindClick, MessageID: testOpts.MessageID, Recipient: testOpts.Recipient,
		URL: "https://shop.example.com/articles/42?utm_source=news&utm_campaign=w47", Issued: testIssued}
}

// BenchmarkSeal signs a click token with a typical URL.
func BenchmarkSeal(b *testing.B) {
	c := newTestCodec(b)
	t := benchToken()
	cpuLoop(b, func() { c.Seal(t) })
}

// BenchmarkOpen checks and decodes the same token.
func BenchmarkOpen(b *testing.B) {
	c := newTestCodec(b)
	s := c.Seal(benchToken())
	cpuLoop(b, func() {
		if _, err := c.Open(KindClick, s); err != nil {
			b.Fatal(err)
		}
	})
}
