package inline

import (
	"os"
	"path/filepath"
	"testing"
)

func benchmarkFile(b *testing.B, name string) { benchmarkFileOpts(b, name, Options{}) }

func benchmarkFileOpts(b *testing.B, name string, opts Options) {
	in, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		b.Fatal(err)
	}
	il := New(opts)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	// Process CPU time per operation (cpu-ns/op) stays meaningful when other
	// processes share the cores; ns/op does not.
	start, n := processCPU(), 0
	for b.Loop() {
		if _, err := il.Inline(in); err != nil {
			b.Fatal(err)
		}
		n++
	}
	if end := processCPU(); start >= 0 && end >= 0 && n > 0 {
		b.ReportMetric(float64(end-start)/float64(n), "cpu-ns/op")
	}
}

// BenchmarkInline3KB inlines a 2.8 KB newsletter (MSO conditionals, VML,
// @media, :hover).
func BenchmarkInline3KB(b *testing.B) { benchmarkFile(b, "newsletter.html") }

// BenchmarkInline40KB inlines a 40 KB newsletter with 52 articles.
func BenchmarkInline40KB(b *testing.B) { benchmarkFile(b, "newsletter_40kb.html") }

// BenchmarkInlineNoStyle is the quick exit for a message without <style>.
func BenchmarkInlineNoStyle(b *testing.B) { benchmarkFile(b, "no_style.html") }

// BenchmarkInline3KBCold inlines the 3 KB newsletter without the plan
// cache: every call parses the document and runs the cascade.
func BenchmarkInline3KBCold(b *testing.B) {
	benchmarkFileOpts(b, "newsletter.html", Options{PlanCache: -1})
}

// BenchmarkInline40KBCold is BenchmarkInline40KB without the plan cache.
func BenchmarkInline40KBCold(b *testing.B) {
	benchmarkFileOpts(b, "newsletter_40kb.html", Options{PlanCache: -1})
}
