package inline

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/smtpgate/smtpgate/features/internal/htmlscan"
)

// personalise returns src with the letters of its text (not of raw text
// such as <style>) and of its href values rotated, as a mail merge would
// change a greeting and the links of one template.
func personalise(src []byte, shift byte) []byte {
	out := bytes.Clone(src)
	rot := func(b []byte) {
		for i, c := range b {
			if 'a' <= c && c <= 'z' {
				b[i] = 'a' + (c-'a'+shift)%26
			}
		}
	}
	z := htmlscan.Scanner{In: src, WantAttrs: func([]byte) bool { return true }}
	for {
		switch z.Next() {
		case htmlscan.EOF:
			return out
		case htmlscan.Text:
			if !z.RawText {
				rot(out[z.Start:z.End])
			}
		case htmlscan.StartTag:
			for _, a := range z.Attrs {
				if htmlscan.EqualFold(src[a.KeyStart:a.KeyEnd], "href") {
					rot(out[a.ValStart:a.ValEnd])
				}
			}
		}
	}
}

// TestPlanCacheTemplate inlines every golden input, then personalised
// copies of it, with one Inliner: each output is what an Inliner without
// caches makes of that copy, and copies that differ from the original only
// in text and links reuse its plan (no new entry).
func TestPlanCacheTemplate(t *testing.T) {
	inputs, err := filepath.Glob(filepath.Join("testdata", "*.html"))
	if err != nil {
		t.Fatal(err)
	}
	hits := 0
	for _, path := range inputs {
		if strings.HasSuffix(path, ".golden.html") {
			continue
		}
		name := strings.TrimSuffix(filepath.Base(path), ".html")
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		opts := goldenOptions[name]
		warm := New(opts)
		cold := opts
		cold.SheetCache, cold.PlanCache = -1, -1
		if _, err := warm.Inline(src); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		before := warm.plans.len()
		for shift := byte(1); shift < 4; shift++ {
			in := personalise(src, shift)
			want, err := New(cold).Inline(bytes.Clone(in))
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			got, err := warm.Inline(in)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s, shift %d: output with the plan cache differs:\n got %q\nwant %q", name, shift, got, want)
			}
		}
		if warm.plans.len() == before {
			hits++
		}
	}
	if hits < 10 {
		t.Errorf("personalised copies reused the plan of %d inputs, want most", hits)
	}
}

// TestPlanCacheDistinguishes: documents that differ in what inlining reads
// (a class, a sheet, a conditional comment around the sheet, the DOCTYPE)
// get their own plans.
func TestPlanCacheDistinguishes(t *testing.T) {
	il := New(Options{})
	for _, c := range []struct{ in, want string }{
		{`<style>.a{color:red}</style><p class="a">x</p>`, `<p class="a" style="color: red">x</p>`},
		{`<style>.a{color:red}</style><p class="b">x</p>`, `<style>.a{color:red}</style><p class="b">x</p>`},
		{`<style>.a{color:blue}</style><p class="a">y</p>`, `<p class="a" style="color: blue">y</p>`},
		{`<!--[if !mso]><!--><style>.a{color:red}</style><!--<![endif]--><p class="a">x</p>`, `<!--[if !mso]><!--><style>.a{color:red}</style><!--<![endif]--><p class="a">x</p>`},
		{`<!--[iX !mso]><!--><style>.a{color:red}</style><!--<![endif]--><p class="a">x</p>`, `<!--[iX !mso]><!--><!--<![endif]--><p class="a" style="color: red">x</p>`},
		{`<style>.A{color:red}</style><p class="a">x</p>`, `<p class="a" style="color: red">x</p>`},
		{`<!DOCTYPE html><style>.A{color:red}</style><p class="a">x</p>`, `<!DOCTYPE html><style>.A{color:red}</style><p class="a">x</p>`},
		{`<style>[title=a]{color:red}</style><p title="a">x</p>`, `<p title="a" style="color: red">x</p>`},
		{`<style>[title=a]{color:red}</style><p title="b">x</p>`, `<style>[title=a]{color:red}</style><p title="b">x</p>`},
	} {
		for round := range 2 {
			got, err := il.Inline([]byte(c.in))
			if err != nil || string(got) != c.want {
				t.Errorf("round %d: Inline(%q) = %q, %v; want %q", round, c.in, got, err, c.want)
			}
		}
	}
}

// TestPlanCacheBounded: the plan cache never holds more than its size.
func TestPlanCacheBounded(t *testing.T) {
	il := New(Options{PlanCache: 3})
	for i := range 20 {
		doc := fmt.Sprintf(`<style>p{margin:0}</style>%s<p>x</p>`, strings.Repeat("<br>", i))
		want := fmt.Sprintf(`%s<p style="margin: 0">x</p>`, strings.Repeat("<br>", i))
		if got, err := il.Inline([]byte(doc)); err != nil || string(got) != want {
			t.Fatalf("Inline(%q) = %q, %v; want %q", doc, got, err, want)
		}
		if n := il.plans.len(); n > 3 {
			t.Fatalf("plan cache holds %d entries, limit 3", n)
		}
	}
}

// TestContainsFold compares containsFold with the offset-by-offset search.
func TestContainsFold(t *testing.T) {
	hay := []string{"", "x", "x-sg", "x-sg-", "X-SG-", "ax-Sg-b", "--x-sg-", "x-sx-sg-", "x-sg0-", "x-sg-0-", "abc-def", "-", "x--sg-"}
	for _, h := range hay {
		for _, s := range []string{"x-sg-", "x-sg0-", "x-sg00-", "abc"} {
			if got, want := containsFold([]byte(h), []byte(s)), containsFoldSlow([]byte(h), []byte(s)); got != want {
				t.Errorf("containsFold(%q, %q) = %v, want %v", h, s, got, want)
			}
		}
	}
}

// TestHasCDATA compares hasCDATA with bytes.Contains.
func TestHasCDATA(t *testing.T) {
	for _, s := range []string{"", "<![CDATA[", "x<![CDATA[x", "[CDATA[", "![CDATA[", "<[CDATA[", "[CDATA[<![CDATA[", "<!<![CDATA", "<![cdata["} {
		if got, want := hasCDATA([]byte(s)), bytes.Contains([]byte(s), []byte("<![CDATA[")); got != want {
			t.Errorf("hasCDATA(%q) = %v, want %v", s, got, want)
		}
	}
}
