package pipeline

import (
	"testing"

	"github.com/smtpgate/smtpgate/features"
)

// benchApply runs the corpus message name through the pipeline with set.
func benchApply(b *testing.B, name string, set features.Set) {
	tc := readCase(b, name)
	p := newKit(b).pipeline(tc.config())
	in := tc.input()
	in.Base = set
	b.SetBytes(int64(len(tc.raw)))
	b.ReportAllocs()
	// Process CPU time per operation (cpu-ns/op) stays meaningful when other
	// processes share the cores; ns/op does not.
	start, n := processCPU(), 0
	for b.Loop() {
		if _, err := p.Apply(in); err != nil {
			b.Fatal(err)
		}
		n++
	}
	if end := processCPU(); start >= 0 && end >= 0 && n > 0 {
		b.ReportMetric(float64(end-start)/float64(n), "cpu-ns/op")
	}
}

var everyFeature = features.Set{InlineCSS: true, TrackClicks: true, TrackTextLinks: true, TrackOpens: true, TrackBounces: true}

// BenchmarkPipeline3KB: a 3 KB newsletter (text + HTML alternatives,
// quoted-printable), every feature on.
func BenchmarkPipeline3KB(b *testing.B) { benchApply(b, "newsletter-3kb", everyFeature) }

// BenchmarkPipeline40KB: a 40 KB newsletter, every feature on.
func BenchmarkPipeline40KB(b *testing.B) { benchApply(b, "newsletter-40kb", everyFeature) }

// BenchmarkPipeline3KBOff: the 3 KB newsletter with every feature off (the
// cost of reading the header and the MIME structure).
func BenchmarkPipeline3KBOff(b *testing.B) { benchApply(b, "newsletter-3kb", features.Set{}) }

// BenchmarkPipeline40KBOff: the 40 KB newsletter with every feature off.
func BenchmarkPipeline40KBOff(b *testing.B) { benchApply(b, "newsletter-40kb", features.Set{}) }
