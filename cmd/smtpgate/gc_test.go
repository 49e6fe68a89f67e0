package main

import (
	"runtime/debug"
	"testing"
)

func TestTuneGC(t *testing.T) {
	orig := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(orig) })

	if got := tuneGC(func(string) string { return "" }); got != serveGCPercent {
		t.Errorf("without GOGC: tuneGC = %d, want %d", got, serveGCPercent)
	}
	if now := debug.SetGCPercent(100); now != serveGCPercent {
		t.Errorf("without GOGC the collector's percent is %d, want %d", now, serveGCPercent)
	}
	// GOGC set: the runtime already applied it; tuneGC leaves it alone.
	debug.SetGCPercent(150)
	if got := tuneGC(func(k string) string {
		if k == "GOGC" {
			return "150"
		}
		return ""
	}); got != 150 {
		t.Errorf("with GOGC=150: tuneGC = %d, want 150", got)
	}
	if now := debug.SetGCPercent(100); now != 150 {
		t.Errorf("with GOGC=150 the collector's percent is %d, want 150", now)
	}
}
