package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadBody checks the -body file: header lines, a blank line and the
// body, sent with CRLF line endings; anything else is refused.
func TestReadBody(t *testing.T) {
	for _, tc := range []struct {
		name, file, want, err string
	}{
		{name: "html", file: "Content-Type: text/html\n\n<p>hi</p>\n", want: "Content-Type: text/html\r\n\r\n<p>hi</p>\r\n"},
		{name: "crlf kept", file: "A: b\r\n\r\nx\r\n", want: "A: b\r\n\r\nx\r\n"},
		{name: "folded header, no final newline", file: "Content-Type: text/html;\n charset=utf-8\n\nx", want: "Content-Type: text/html;\r\n charset=utf-8\r\n\r\nx\r\n"},
		{name: "no extra headers", file: "\nbody only\n", want: "\r\nbody only\r\n"},
		{name: "no blank line", file: "Content-Type: text/html\n<p>hi</p>\n", err: "no blank line"},
		{name: "html without headers", file: "<html>\n\n<p>hi</p>\n", err: `"<html>" is not a header line`},
		{name: "text without headers", file: "Hello there: friend\n\nbody\n", err: `"Hello there: friend" is not a header line`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "body")
			if err := os.WriteFile(path, []byte(tc.file), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := readBody(path)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("readBody(%q) = %q, %v; want an error containing %q", tc.file, got, err, tc.err)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("readBody(%q) = %q, %v; want %q", tc.file, got, err, tc.want)
			}
		})
	}
	if _, err := readBody(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("readBody of a missing file: no error")
	}
}
