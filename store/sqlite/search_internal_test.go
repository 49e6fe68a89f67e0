package sqlite

import (
	"strings"
	"testing"
)

func TestToLowerMatchesStrings(t *testing.T) {
	for _, s := range []string{"", "abc", "The Quick BROWN fox @[`{ 09", "ÄÖÜ Straße", "MIXED ascii and İstanbul", "\x00\x7f\x80Z",
		strings.Repeat("Hello World ", 500), "ABCDEFGHIJKLMNOPQRSTUVWXYZ@[`{abcdefghijklmnopqrstuvwxyz", "12345678Ä", "AAAAAAAAAAAAAAAAÄ"} {
		if got, want := toLower(s), strings.ToLower(s); got != want {
			t.Errorf("toLower(%q) = %q, want %q", s, got, want)
		}
	}
}

func FuzzToLower(f *testing.F) {
	f.Add("Hello, WORLD")
	f.Add("ÄÖÜ Straße İ")
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := toLower(s), strings.ToLower(s); got != want {
			t.Errorf("toLower(%q) = %q, want %q", s, got, want)
		}
	})
}

func BenchmarkToLower5KB(b *testing.B) {
	s := strings.Repeat("The quick brown fox jumps over the lazy dog. ", 114)
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		_ = toLower(s)
	}
}

func BenchmarkStringsToLower5KB(b *testing.B) {
	s := strings.Repeat("The quick brown fox jumps over the lazy dog. ", 114)
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		_ = strings.ToLower(s)
	}
}
