package pipeline

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/smtpgate/smtpgate/features/directives"
)

// TestGolden runs every corpus message through the pipeline and compares
// the message and the rest of the Output with NAME.golden.eml and
// NAME.golden.json, byte for byte. UPDATE_GOLDEN=1 rewrites them.
func TestGolden(t *testing.T) {
	update := os.Getenv("UPDATE_GOLDEN") == "1"
	kit := newKit(t)
	names := corpusNames(t)
	if len(names) < 40 {
		t.Fatalf("corpus has %d messages, want at least 40", len(names))
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			tc := readCase(t, name)
			out, err := kit.pipeline(tc.config()).Apply(tc.input())
			var gotJSON []byte
			var gotEML []byte
			if err != nil {
				gotJSON = mustJSON(t, map[string]string{"error": err.Error()})
			} else {
				gotJSON = mustJSON(t, out)
				gotEML = out.Raw
			}
			emlPath := filepath.Join(corpusDir, name+".golden.eml")
			jsonPath := filepath.Join(corpusDir, name+".golden.json")
			if update {
				writeGolden(t, jsonPath, gotJSON)
				if gotEML != nil {
					writeGolden(t, emlPath, gotEML)
				} else if err := os.Remove(emlPath); err != nil && !os.IsNotExist(err) {
					t.Fatal(err)
				}
				return
			}
			compareGolden(t, jsonPath, gotJSON)
			if gotEML != nil {
				compareGolden(t, emlPath, gotEML)
			} else if _, err := os.Stat(emlPath); err == nil {
				t.Errorf("%s exists but Apply failed", emlPath)
			}
		})
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

func writeGolden(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func compareGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with UPDATE_GOLDEN=1 to create it)", err)
	}
	if bytes.Equal(got, want) {
		return
	}
	gl, wl := lines(got), lines(want)
	for i := 0; i < len(gl) || i < len(wl); i++ {
		var g, w []byte
		if i < len(gl) {
			g = gl[i]
		}
		if i < len(wl) {
			w = wl[i]
		}
		if !bytes.Equal(g, w) {
			t.Errorf("%s differs at line %d:\n got  %s\n want %s", path, i+1, quote(g), quote(w))
			return
		}
	}
	t.Errorf("%s differs in line breaks only (%d bytes, want %d)", path, len(got), len(want))
}

// TestConcurrentApply runs the whole corpus through one Pipeline from many
// goroutines at once: every output equals its golden (run it with -race).
func TestConcurrentApply(t *testing.T) {
	kit := newKit(t)
	names := corpusNames(t)
	var cases []testCase
	for _, n := range names {
		if tc := readCase(t, n); !tc.rejectMalformed && len(tc.vendors) == 0 && len(tc.prefixes) == 0 {
			cases = append(cases, tc)
		}
	}
	p := kit.pipeline(directives.Config{})
	errs := make(chan error, len(cases)*4)
	var wg sync.WaitGroup
	for range 4 {
		for _, tc := range cases {
			wg.Go(func() {
				out, err := p.Apply(tc.input())
				if err != nil {
					errs <- fmt.Errorf("%s: %w", tc.name, err)
					return
				}
				want, err := os.ReadFile(filepath.Join(corpusDir, tc.name+".golden.eml"))
				if err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(out.Raw, want) {
					errs <- fmt.Errorf("%s: output differs from its golden", tc.name)
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
