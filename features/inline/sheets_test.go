package inline

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestSheetCacheSameOutput inlines every golden input with the cache off,
// then twice with one Inliner whose cache has seen every input: the output
// is the golden file each time.
func TestSheetCacheSameOutput(t *testing.T) {
	inputs, err := filepath.Glob(filepath.Join("testdata", "*.html"))
	if err != nil {
		t.Fatal(err)
	}
	shared := map[string]*Inliner{}
	for round := range 2 {
		for _, path := range inputs {
			if strings.HasSuffix(path, ".golden.html") {
				continue
			}
			name := strings.TrimSuffix(filepath.Base(path), ".html")
			in, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(filepath.Join("testdata", name+".golden.html"))
			if err != nil {
				t.Fatal(err)
			}
			opts := goldenOptions[name]
			key := fmt.Sprint(opts)
			if shared[key] == nil {
				shared[key] = New(opts)
			}
			noCache := opts
			noCache.SheetCache, noCache.PlanCache = -1, -1
			for _, il := range []*Inliner{New(noCache), shared[key]} {
				got, err := il.Inline(bytes.Clone(in))
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s (round %d, cache %v): output differs from the golden file", name, round, il.cache != nil)
				}
			}
		}
	}
	if n := shared[fmt.Sprint(Options{})].cache.len(); n < 15 {
		t.Errorf("cache holds %d sheet sets, want one per input with a sheet", n)
	}
}

// TestSheetCacheOwnsItsText: a cached sheet set does not refer to the input
// it was compiled from, which the caller may reuse.
func TestSheetCacheOwnsItsText(t *testing.T) {
	const doc = `<!DOCTYPE html><style>p{color:red;font-family:"A  B"}</style><p>x</p>`
	const want = `<!DOCTYPE html><p style="color: red; font-family: 'A  B'">x</p>`
	il := New(Options{})
	buf := []byte(doc)
	if got, _ := il.Inline(buf); string(got) != want {
		t.Fatalf("first: got %q, want %q", got, want)
	}
	for i := range buf {
		buf[i] = 'Z'
	}
	if got, _ := il.Inline([]byte(doc)); string(got) != want {
		t.Errorf("after the first input was overwritten: got %q, want %q", got, want)
	}
}

// TestSheetCacheQuirks: the same sheet text compiles differently in quirks
// mode (class names ignore case) and in standards mode.
func TestSheetCacheQuirks(t *testing.T) {
	const sheet = `<style>.A{color:red}</style><p class="a">x</p>`
	quirks, standards := sheet, "<!DOCTYPE html>"+sheet
	const wantQuirks = `<p class="a" style="color: red">x</p>`
	wantStandards := "<!DOCTYPE html>" + sheet // nothing matches
	il := New(Options{})
	for range 2 {
		for _, c := range []struct{ in, want string }{{quirks, wantQuirks}, {standards, wantStandards}, {quirks, wantQuirks}} {
			got, err := il.Inline([]byte(c.in))
			if err != nil || string(got) != c.want {
				t.Errorf("Inline(%q) = %q, %v; want %q", c.in, got, err, c.want)
			}
		}
	}
	if n := il.cache.len(); n != 2 {
		t.Errorf("cache holds %d entries, want 2", n)
	}
}

// TestSheetCacheBounded: the cache never holds more than its size, and an
// entry in use survives a stream of one-off sheets (the plan cache, which
// would answer for the hot document without the sheet cache, is off).
func TestSheetCacheBounded(t *testing.T) {
	const size = 4
	il := New(Options{SheetCache: size, PlanCache: -1})
	hot := []byte(`<style>p{margin:0}</style><p>hot</p>`)
	wantHot := `<p style="margin: 0">hot</p>`
	for i := range 50 {
		doc := fmt.Sprintf(`<style>p{margin:%dpx}</style><p>x</p>`, i)
		want := fmt.Sprintf(`<p style="margin: %dpx">x</p>`, i)
		if got, err := il.Inline([]byte(doc)); err != nil || string(got) != want {
			t.Fatalf("Inline(%q) = %q, %v; want %q", doc, got, err, want)
		}
		if got, err := il.Inline(hot); err != nil || string(got) != wantHot {
			t.Fatalf("hot: got %q, %v", got, err)
		}
		if n := il.cache.len(); n > size {
			t.Fatalf("cache holds %d entries, limit %d", n, size)
		}
	}
	h := il.cache.hash([][]byte{[]byte("p{margin:0}")}, true)
	if il.cache.get(h, [][]byte{[]byte("p{margin:0}")}, true) == nil {
		t.Error("the sheet used after every other one was evicted")
	}
}

// TestSheetCacheDisabled: a negative SheetCache keeps nothing.
func TestSheetCacheDisabled(t *testing.T) {
	il := New(Options{SheetCache: -1})
	if got, err := il.Inline([]byte(`<style>p{margin:0}</style><p>x</p>`)); err != nil || string(got) != `<p style="margin: 0">x</p>` {
		t.Errorf("got %q, %v", got, err)
	}
	if il.cache != nil {
		t.Error("cache allocated although disabled")
	}
}

// TestSheetCacheConcurrentDistinct inlines many distinct sheets from many
// goroutines through a small cache (go test -race): every output is right.
func TestSheetCacheConcurrentDistinct(t *testing.T) {
	il := New(Options{SheetCache: 3})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 40 {
				k := (g + i) % 7
				doc := fmt.Sprintf(`<style>.c%d{padding:%dpx}</style><p class="c%d">x</p>`, k, k, k)
				want := fmt.Sprintf(`<p class="c%d" style="padding: %dpx">x</p>`, k, k)
				if got, err := il.Inline([]byte(doc)); err != nil || string(got) != want {
					errs <- fmt.Errorf("Inline(%q) = %q, %v", doc, got, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := il.cache.len(); n > 3 {
		t.Errorf("cache holds %d entries, limit 3", n)
	}
}
