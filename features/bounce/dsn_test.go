package bounce

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

var update = flag.Bool("update", os.Getenv("UPDATE_GOLDEN") != "", "rewrite the golden files (also UPDATE_GOLDEN=1)")

func corpus(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "dsn", "*.eml"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestParseDSNGolden parses every testdata/dsn/NAME.eml and compares the
// Report with NAME.golden.json (UPDATE_GOLDEN=1 rewrites them).
func TestParseDSNGolden(t *testing.T) {
	files := corpus(t)
	if len(files) < 10 {
		t.Fatalf("only %d samples in testdata/dsn", len(files))
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".eml")
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			r, err := ParseDSN(raw)
			if err != nil {
				t.Fatalf("ParseDSN: %v", err)
			}
			// Line ends do not matter: the SMTP form (CRLF) reads the same.
			crlf, err := ParseDSN(bytes.ReplaceAll(raw, []byte("\n"), []byte("\r\n")))
			if err != nil {
				t.Fatalf("ParseDSN (CRLF): %v", err)
			}
			if !reflect.DeepEqual(r, crlf) {
				t.Errorf("CRLF input reads differently:\n LF %+v\nCRLF %+v", r, crlf)
			}
			checkReport(t, r)

			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			if err := enc.Encode(r); err != nil {
				t.Fatal(err)
			}
			got := buf.Bytes()
			path := filepath.Join("testdata", "dsn", name+".golden.json")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with UPDATE_GOLDEN=1 to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("report differs from %s:\n got %s\nwant %s", path, got, want)
			}
		})
	}
}

// checkReport asserts what holds for every report.
func checkReport(t *testing.T, r *Report) {
	t.Helper()
	if len(r.Human) > MaxHuman || !utf8.ValidString(r.Human) || strings.Contains(r.Human, "\r") {
		t.Errorf("Human is %d bytes, valid UTF-8 %v, with CR %v", len(r.Human), utf8.ValidString(r.Human), strings.Contains(r.Human, "\r"))
	}
	if r.Human != strings.TrimSpace(r.Human) {
		t.Errorf("Human is not trimmed: %q", r.Human)
	}
	if len(r.Recipients) > MaxRecipients {
		t.Errorf("%d recipients", len(r.Recipients))
	}
	for _, rs := range r.Recipients {
		if rs.Permanent && (rs.Action != "failed" && rs.Action != "" || strings.HasPrefix(rs.Status, "4.") || strings.HasPrefix(rs.Status, "2.")) {
			t.Errorf("permanent, yet action %q status %q", rs.Action, rs.Status)
		}
		if rs.Status != "" && statusCode(rs.Status) != rs.Status {
			t.Errorf("status %q is not an enhanced status code", rs.Status)
		}
	}
}

func TestParseDSNErrors(t *testing.T) {
	for _, raw := range []string{"", " \r\n\t", "no header here\r\n\r\nbody", " leading space: x\r\n\r\n"} {
		if r, err := ParseDSN([]byte(raw)); err == nil {
			t.Errorf("ParseDSN(%q) = %+v, want an error", raw, r)
		}
	}
}

// TestParseDSNLimits feeds a report with more recipients and a longer human
// part than are kept.
func TestParseDSNLimits(t *testing.T) {
	var b strings.Builder
	b.WriteString("Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n")
	b.WriteString(strings.Repeat("é long human text ", 1000))
	b.WriteString("\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x.example\r\n")
	for i := 0; i < MaxRecipients+5; i++ {
		b.WriteString("\r\nFinal-Recipient: rfc822; u@x.example\r\nAction: failed\r\nStatus: 5.1.1\r\n")
	}
	b.WriteString("\r\n--b--\r\n")
	r, err := ParseDSN([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if !r.IsDSN || len(r.Recipients) != MaxRecipients {
		t.Errorf("IsDSN %v, %d recipients; want true, %d", r.IsDSN, len(r.Recipients), MaxRecipients)
	}
	if len(r.Human) > MaxHuman || len(r.Human) < MaxHuman-4 || !utf8.ValidString(r.Human) {
		t.Errorf("Human is %d bytes (valid UTF-8 %v), want just under %d", len(r.Human), utf8.ValidString(r.Human), MaxHuman)
	}
}

// FuzzParseDSN: never panics, and every report keeps its invariants.
func FuzzParseDSN(f *testing.F) {
	for _, file := range corpus(f) {
		raw, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, err := ParseDSN(raw)
		if err != nil {
			if r != nil {
				t.Fatalf("report %+v with error %v", r, err)
			}
			return
		}
		checkReport(t, r)
		if _, err := json.Marshal(r); err != nil {
			t.Fatal(err)
		}
	})
}

func BenchmarkParseDSN(b *testing.B) {
	raw, err := os.ReadFile(filepath.Join("testdata", "dsn", "gmail-nosuchuser.eml"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := ParseDSN(raw); err != nil {
			b.Fatal(err)
		}
	}
}
