package dkim

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/textproto"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	msgdkim "github.com/emersion/go-msgauth/dkim"
)

func TestSignVerify(t *testing.T) {
	f := newFixture(t)
	rsaKey := testKey(t, "rsa2048.pkcs8.pem", "example.com", "rsa2026")
	edKey := testKey(t, "ed25519.pkcs8.pem", "example.com", "ed2026")
	f.publish(rsaKey, edKey)

	tests := []struct {
		name string
		keys []*Key
		want []string
	}{
		{"RSA-2048", []*Key{rsaKey}, []string{"d=example.com s=rsa2026 a=rsa-sha256"}},
		{"Ed25519", []*Key{edKey}, []string{"d=example.com s=ed2026 a=ed25519-sha256"}},
		{"dual", []*Key{rsaKey, edKey}, []string{"d=example.com s=rsa2026 a=rsa-sha256", "d=example.com s=ed2026 a=ed25519-sha256"}},
	}
	for _, msgName := range []string{"multipart.eml", "folded.eml"} {
		msg := readMessage(t, msgName)
		for _, tc := range tests {
			t.Run(msgName+"/"+tc.name, func(t *testing.T) {
				out, with := f.sign(NewSigner(tc.keys, Options{}), msg, "")
				if !slices.Equal(with, tc.want) {
					t.Errorf("signedWith = %q, want %q", with, tc.want)
				}
				sigs, rest := stripSignatures(t, out, len(tc.keys))
				if !bytes.Equal(rest, normalize(msg)) {
					t.Errorf("message after the signatures differs from the CRLF-normalised input")
				}
				for i, sig := range sigs {
					for _, tag := range []string{"c=relaxed/relaxed;", "d=example.com;", "s=" + tc.keys[i].Selector + ";"} {
						if !strings.Contains(sig, tag) {
							t.Errorf("signature %d lacks %q:\n%s", i, tag, sig)
						}
					}
				}
				vs := f.verify(bytes.NewReader(out))
				if len(vs) != len(tc.keys) {
					t.Fatalf("%d verifications, want %d", len(vs), len(tc.keys))
				}
				for i, v := range vs {
					if v.Err != nil {
						t.Errorf("verification %d: %v", i, v.Err)
					}
					if v.Domain != "example.com" {
						t.Errorf("verification %d: d=%q", i, v.Domain)
					}
					if n := countFold(v.HeaderKeys, "From"); n != 2 {
						t.Errorf("verification %d: From appears %d times in h=%q, want 2 (oversigned)", i, n, v.HeaderKeys)
					}
				}
			})
		}
	}
}

func countFold(list []string, v string) int {
	n := 0
	for _, x := range list {
		if strings.EqualFold(x, v) {
			n++
		}
	}
	return n
}

func TestHeaderListOversignsEveryField(t *testing.T) {
	f := newFixture(t)
	k := testKey(t, "ed25519.pkcs8.pem", "example.com", "s1")
	f.publish(k)
	// Two Received fields are not in the list; two To fields are.
	msg := []byte("Received: by a\r\nReceived: by b\r\nFrom: a@example.com\r\nTo: x@example.net\r\nTo: y@example.net\r\nSubject: s\r\n\r\nbody\r\n")
	out, _ := f.sign(NewSigner([]*Key{k}, Options{HeaderKeys: []string{"subject", "To", "TO", "X-Absent"}}), msg, "")
	vs := f.verify(bytes.NewReader(out))
	if vs[0].Err != nil {
		t.Fatalf("verify: %v", vs[0].Err)
	}
	want := []string{"From", "From", "subject", "subject", "To", "To", "To", "X-Absent"}
	if !slices.Equal(vs[0].HeaderKeys, want) {
		t.Errorf("h= %q, want %q", vs[0].HeaderKeys, want)
	}
}

// TestTamper changes a signed message the way relays and attackers do and
// checks each signature of a dual-signed message.
func TestTamper(t *testing.T) {
	f := newFixture(t)
	rsaKey := testKey(t, "rsa2048.pkcs8.pem", "example.com", "rsa")
	edKey := testKey(t, "ed25519.pkcs8.pem", "example.com", "ed")
	f.publish(rsaKey, edKey)
	signed, _ := f.sign(NewSigner([]*Key{rsaKey, edKey}, Options{}), readMessage(t, "multipart.eml"), "")
	sigs, msg := stripSignatures(t, signed, 2)
	prefix := sigs[0] + sigs[1]

	same := func(_ *testing.T, m string) string { return m }
	replace := func(old, new string) func(*testing.T, string) string {
		return func(t *testing.T, m string) string {
			t.Helper()
			if !strings.Contains(m, old) {
				t.Fatalf("tamper: %q not in message", old)
			}
			return strings.Replace(m, old, new, 1)
		}
	}
	tests := []struct {
		name    string
		tamper  func(t *testing.T, msg string) string // applied below the signatures
		above   string                                // inserted above the signatures
		pass    bool
		errText string
	}{
		{name: "untouched", tamper: same, pass: true},
		{name: "body changed", tamper: replace("42.00 EUR", "420.00 EUR"), errText: "body hash did not verify"},
		{name: "body line removed", tamper: replace("Caf=C3=A9\r\n", ""), errText: "body hash did not verify"},
		{name: "header name case and spacing", tamper: replace("Subject: Your invoice 2026-11", "SUBJECT:   Your   invoice 2026-11  "), pass: true},
		{name: "header refolded", tamper: replace("To: Jane Doe <jane@example.net>", "To: Jane Doe\r\n <jane@example.net>"), pass: true},
		{name: "body whitespace runs", tamper: replace("Hello Jane,\r\n\r\nYour", "Hello   Jane,  \r\n\r\nYour"), pass: true},
		{name: "trailing blank lines", tamper: func(_ *testing.T, m string) string { return m + "\r\n\r\n" }, pass: true},
		{name: "unsigned header added", tamper: replace("X-Mailer:", "X-Spam-Score: 0\r\nX-Mailer:"), pass: true},
		{name: "Received prepended", above: "Received: from relay.example.net by mx.example.net; Fri, 20 Nov 2026 10:00:01 +0000\r\n", tamper: same, pass: true},
		{name: "forged From prepended", above: "From: ceo@example.com\r\n", tamper: same, errText: "signature did not verify"},
		{name: "forged From appended", tamper: replace("X-Mailer:", "From: ceo@example.com\r\nX-Mailer:"), errText: "signature did not verify"},
		{name: "second Subject", tamper: replace("X-Mailer:", "Subject: Urgent\r\nX-Mailer:"), errText: "signature did not verify"},
		{name: "Cc added", tamper: replace("X-Mailer:", "Cc: spy@example.org\r\nX-Mailer:"), errText: "signature did not verify"},
		{name: "signed header changed", tamper: replace("Subject: Your invoice 2026-11", "Subject: Your invoice 2026-12"), errText: "signature did not verify"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.above + prefix + tc.tamper(t, string(msg))
			vs := f.verify(strings.NewReader(m))
			if len(vs) != 2 {
				t.Fatalf("%d verifications, want 2", len(vs))
			}
			for i, v := range vs {
				switch {
				case tc.pass && v.Err != nil:
					t.Errorf("signature %d fails: %v", i, v.Err)
				case !tc.pass && v.Err == nil:
					t.Errorf("signature %d still verifies", i)
				case !tc.pass && !strings.Contains(v.Err.Error(), tc.errText):
					t.Errorf("signature %d: error %q, want one mentioning %q", i, v.Err, tc.errText)
				case !tc.pass && msgdkim.IsTempFail(v.Err):
					t.Errorf("signature %d: %v is a temporary failure", i, v.Err)
				}
			}
		})
	}
}

// TestLineEndings signs input with bare LF, bare CR and no final newline and
// checks that the output is CRLF throughout, verifies, and passes through
// go-smtp's DotWriter (net/textproto) with nothing changed but dot-stuffing.
func TestLineEndings(t *testing.T) {
	f := newFixture(t)
	k := testKey(t, "ed25519.pkcs8.pem", "example.com", "s1")
	f.publish(k)
	s := NewSigner([]*Key{k}, Options{})

	inputs := map[string]string{
		"bare LF":         "From: a@example.com\nSubject: lf\n\nline 1\n.dot line\nline 3\n",
		"bare CR":         "From: a@example.com\rSubject: cr\r\rline 1\r.dot\rline 3\r",
		"mixed, no final": "From: a@example.com\r\nSubject: mixed\n\r\nl1\rl2\nl3\r\n\r\nlast",
		"header only":     "From: a@example.com\nSubject: no body",
		"empty body":      "From: a@example.com\r\nSubject: empty\r\n\r\n",
	}
	for name, in := range inputs {
		t.Run(name, func(t *testing.T) {
			out, _ := f.sign(s, []byte(in), "")
			_, rest := stripSignatures(t, out, 1)
			want := normalize([]byte(in))
			if !bytes.Contains(want, []byte("\r\n\r\n")) {
				want = append(want, "\r\n"...) // header only: the blank line is added
			}
			if !bytes.Equal(rest, want) {
				t.Errorf("output %q, want %q", rest, want)
			}
			if i := bytes.IndexAny(bytes.ReplaceAll(out, []byte("\r\n"), nil), "\r\n"); i >= 0 {
				t.Errorf("output has a bare CR or LF: %q", out)
			}
			if v := f.verify(bytes.NewReader(out)); v[0].Err != nil {
				t.Errorf("verify: %v", v[0].Err)
			}

			var wire bytes.Buffer
			bw := bufio.NewWriter(&wire)
			dw := textproto.NewWriter(bw).DotWriter()
			if _, err := dw.Write(out); err != nil {
				t.Fatal(err)
			}
			if err := dw.Close(); err != nil {
				t.Fatal(err)
			}
			_ = bw.Flush()
			if got, want := wire.String(), dotStuff(string(out))+".\r\n"; got != want {
				t.Errorf("DotWriter changed the signed bytes:\n got %q\nwant %q", got, want)
			}
		})
	}
}

func dotStuff(s string) string {
	lines := strings.SplitAfter(s, "\r\n")
	for i, l := range lines {
		if strings.HasPrefix(l, ".") {
			lines[i] = "." + l
		}
	}
	return strings.Join(lines, "")
}

func TestDomainSelection(t *testing.T) {
	f := newFixture(t)
	keyCom := testKey(t, "ed25519.pkcs8.pem", "Example.COM.", "s1")
	keyOrg := testKey(t, "rsa2048.pkcs8.pem", "example.org", "s2")
	keyIDN := testKey(t, "ed25519.pkcs8.pem", "bücher.example", "s3")
	f.publish(keyCom, keyOrg, keyIDN)
	s := NewSigner([]*Key{keyCom, keyOrg, keyIDN}, Options{})
	if got, want := s.Domains(), []string{"example.com", "example.org", "xn--bcher-kva.example"}; !slices.Equal(got, want) {
		t.Errorf("Domains() = %q, want %q", got, want)
	}

	tests := []struct {
		name     string
		from     string
		override string
		want     string // signedWith entry; "" for unsigned
		err      error
	}{
		{"From domain", "From: a@example.com", "", "d=example.com s=s1 a=ed25519-sha256", nil},
		{"From domain case", "From: A <a@EXAMPLE.com>", "", "d=example.com s=s1 a=ed25519-sha256", nil},
		{"encoded display name in any charset", "From: =?x-unknown?Q?Zo=EB?= <z@example.org>", "", "d=example.org s=s2 a=rsa-sha256", nil},
		{"IDN From", "From: käufer@bücher.example", "", "d=xn--bcher-kva.example s=s3 a=ed25519-sha256", nil},
		{"first of two addresses", "From: a@example.org, b@example.com", "", "d=example.org s=s2 a=rsa-sha256", nil},
		{"subdomain is not signed", "From: a@news.example.com", "", "", nil},
		{"unknown domain is not signed", "From: a@example.net", "", "", nil},
		{"override to parent domain", "From: a@news.example.com", "example.com", "d=example.com s=s1 a=ed25519-sha256", nil},
		{"override wins over From", "From: a@example.com", "EXAMPLE.org.", "d=example.org s=s2 a=rsa-sha256", nil},
		{"override needs no From", "Subject: none", "example.com", "d=example.com s=s1 a=ed25519-sha256", nil},
		{"no From", "Subject: none", "", "", ErrNoSigningDomain},
		{"two From fields", "From: a@example.com\r\nFrom: b@example.com", "", "", ErrNoSigningDomain},
		{"From without address", "From: undisclosed", "", "", ErrNoSigningDomain},
		{"From without domain", "From: <postmaster>", "", "", ErrNoSigningDomain},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msg := tc.from + "\r\nTo: r@example.net\r\n\r\nhello\r\n"
			var out bytes.Buffer
			with, err := s.Sign(f.ctx, &out, strings.NewReader(msg), tc.override)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("Sign error = %v, want %v", err, tc.err)
				}
				if out.Len() != 0 {
					t.Errorf("Sign wrote %d bytes despite the error", out.Len())
				}
				return
			}
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			if tc.want == "" {
				if len(with) != 0 || out.String() != msg {
					t.Errorf("signedWith %q, output %q; want the message unsigned", with, out.String())
				}
				return
			}
			if !slices.Equal(with, []string{tc.want}) {
				t.Errorf("signedWith = %q, want [%q]", with, tc.want)
			}
			if v := f.verify(bytes.NewReader(out.Bytes())); v[0].Err != nil {
				t.Errorf("verify: %v", v[0].Err)
			}
		})
	}

	var out bytes.Buffer
	if _, err := s.Sign(f.ctx, &out, strings.NewReader("From: a@example.com\r\n\r\n"), "bad domain!"); err == nil || out.Len() != 0 {
		t.Errorf("invalid override: err %v, %d bytes written; want an error and nothing written", err, out.Len())
	}
}

func TestNoKeysPassesThrough(t *testing.T) {
	var out bytes.Buffer
	with, err := NewSigner(nil, Options{}).Sign(t.Context(), &out, strings.NewReader("Subject: x\n\nno From at all"), "")
	if err != nil || len(with) != 0 {
		t.Fatalf("Sign = %q, %v; want unsigned, no error", with, err)
	}
	if got, want := out.String(), "Subject: x\r\n\r\nno From at all\r\n"; got != want {
		t.Errorf("output %q, want %q", got, want)
	}
}

func TestBadKeys(t *testing.T) {
	ed := testKey(t, "ed25519.pkcs8.pem", "example.com", "s1")
	rsaKey := testKey(t, "rsa2048.pkcs8.pem", "example.com", "s1")
	tests := []struct {
		name string
		key  Key
		want string
	}{
		{"no private key", Key{Domain: "example.com", Selector: "s1"}, "has no private key"},
		{"algorithm mismatch", Key{Domain: "example.com", Selector: "s1", Algorithm: "rsa", Signer: ed.Signer}, `algorithm is "rsa" but the key is an Ed25519 key`},
		{"algorithm mismatch RSA", Key{Domain: "example.com", Selector: "s1", Algorithm: "ed25519", Signer: rsaKey.Signer}, "an RSA-2048 key"},
		{"bad selector", Key{Domain: "example.com", Selector: "s 1", Signer: ed.Signer}, "invalid selector"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			_, err := NewSigner([]*Key{&tc.key}, Options{}).Sign(t.Context(), &out, strings.NewReader("From: a@example.com\r\n\r\nx\r\n"), "")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Sign error = %v, want one containing %q", err, tc.want)
			}
			if out.Len() != 0 {
				t.Errorf("Sign wrote %d bytes despite the error", out.Len())
			}
		})
	}
}

func TestExpiration(t *testing.T) {
	f := newFixture(t)
	k := testKey(t, "ed25519.pkcs8.pem", "example.com", "s1")
	f.publish(k)
	msg := readMessage(t, "multipart.eml")

	past := time.Now().Add(-48 * time.Hour)
	out, _ := f.sign(NewSigner([]*Key{k}, Options{Expiration: time.Hour, Now: func() time.Time { return past }}), msg, "")
	v := f.verify(bytes.NewReader(out))[0]
	if v.Err == nil || !strings.Contains(v.Err.Error(), "expired") || !msgdkim.IsPermFail(v.Err) {
		t.Errorf("expired signature: err %v, want a permanent 'expired' failure", v.Err)
	}
	if want := past.Add(time.Hour).Truncate(time.Second); !v.Expiration.Equal(want) {
		t.Errorf("x= %v, want %v", v.Expiration, want)
	}

	out, _ = f.sign(NewSigner([]*Key{k}, Options{Expiration: 72 * time.Hour}), msg, "")
	v = f.verify(bytes.NewReader(out))[0]
	if v.Err != nil || v.Expiration.Before(time.Now().Add(71*time.Hour)) {
		t.Errorf("72h expiry: err %v, x=%v", v.Err, v.Expiration)
	}
	out, _ = f.sign(NewSigner([]*Key{k}, Options{}), msg, "")
	if v := f.verify(bytes.NewReader(out))[0]; !v.Expiration.IsZero() || bytes.Contains(out, []byte(" x=")) {
		t.Errorf("no expiry configured but x=%v", v.Expiration)
	}
}

func TestKeyRemovedFromDNS(t *testing.T) {
	f := newFixture(t)
	k := testKey(t, "ed25519.pkcs8.pem", "example.com", "s1")
	out, _ := f.sign(NewSigner([]*Key{k}, Options{}), readMessage(t, "multipart.eml"), "")

	f.dns.SetRcode(RecordName("s1", "example.com"), 0, 2 /* SERVFAIL */)
	if v := f.verify(bytes.NewReader(out))[0]; !msgdkim.IsTempFail(v.Err) {
		t.Errorf("SERVFAIL: err %v, want a temporary failure", v.Err)
	}
	f.dns.Remove(RecordName("s1", "example.com"))
	if v := f.verify(bytes.NewReader(out))[0]; !msgdkim.IsPermFail(v.Err) {
		t.Errorf("no record: err %v, want a permanent failure", v.Err)
	}
	f.publish(k)
	if v := f.verify(bytes.NewReader(out))[0]; v.Err != nil {
		t.Errorf("published: %v", v.Err)
	}
}

// bigMessage generates a message of about size bytes with LF line endings
// without holding it in memory.
type bigMessage struct {
	header string
	size   int
	n      int
	line   int
	buf    []byte
	line0  []byte // reused line buffer
	// probe, if set, is called about every probeEvery bytes.
	probe     func()
	probeNext int
}

const probeEvery = 256 << 10

func (b *bigMessage) Read(p []byte) (int, error) {
	if len(b.buf) == 0 {
		switch {
		case b.header != "":
			b.buf, b.header = []byte(b.header), ""
		case b.n >= b.size:
			return 0, io.EOF
		default:
			b.line++
			b.line0 = fmt.Appendf(b.line0[:0], "line %07d: the quick brown fox jumps over the lazy dog, again and again\n", b.line)
			b.buf = b.line0
		}
	}
	if b.probe != nil && b.n >= b.probeNext {
		b.probe()
		b.probeNext += probeEvery
	}
	n := copy(p, b.buf)
	b.buf = b.buf[n:]
	b.n += n
	return n, nil
}

func TestLargeMessageBoundedMemory(t *testing.T) {
	f := newFixture(t)
	rsaKey := testKey(t, "rsa2048.pkcs8.pem", "example.com", "rsa")
	edKey := testKey(t, "ed25519.pkcs8.pem", "example.com", "ed")
	f.publish(rsaKey, edKey)
	spoolDir := t.TempDir()
	s := NewSigner([]*Key{rsaKey, edKey}, Options{TempDir: spoolDir})

	const size = 3 << 20
	outFile, err := os.Create(filepath.Join(t.TempDir(), "signed.eml"))
	if err != nil {
		t.Fatal(err)
	}
	defer outFile.Close()

	// Live heap is measured after a forced GC while the message is read and
	// when the output starts (where an implementation holding the message
	// in memory would peak). go-msgauth's relaxed canonicaliser allocates
	// short-lived copies of every chunk, so TotalAlloc is not the measure.
	var base, peak uint64
	measure := func() {
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		if ms.HeapAlloc > base {
			peak = max(peak, ms.HeapAlloc-base)
		}
	}
	msg := &bigMessage{header: "From: big@example.com\nTo: r@example.net\nSubject: big\n\n", size: size, probe: measure}
	out := &probeWriter{w: outFile, probe: measure}
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base = ms.HeapAlloc
	with, err := s.Sign(f.ctx, out, msg, "")
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	t.Logf("signing %d bytes: peak live heap growth %d bytes", msg.n, peak)
	if limit := uint64(DefaultSpoolThreshold + 1<<20); peak > limit {
		t.Errorf("signing a %d-byte message grew the live heap by %d bytes; want at most %d", msg.n, peak, limit)
	}
	if !out.probed {
		t.Errorf("the output writer was never called")
	}
	if len(with) != 2 {
		t.Errorf("signedWith %q, want two signatures", with)
	}
	if ents, err := os.ReadDir(spoolDir); err != nil || len(ents) != 0 {
		t.Errorf("spool dir after Sign: %v entries, %v; want empty", len(ents), err)
	}
	if _, err := outFile.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	st, _ := outFile.Stat()
	if st.Size() < size {
		t.Errorf("output is %d bytes, want more than %d", st.Size(), size)
	}
	for i, v := range f.verify(bufio.NewReader(outFile)) {
		if v.Err != nil {
			t.Errorf("verification %d: %v", i, v.Err)
		}
	}
}

func TestSpoolThresholdSmall(t *testing.T) {
	f := newFixture(t)
	k := testKey(t, "ed25519.pkcs8.pem", "example.com", "s1")
	f.publish(k)
	msg := readMessage(t, "multipart.eml")
	out, _ := f.sign(NewSigner([]*Key{k}, Options{SpoolThreshold: 100, TempDir: t.TempDir()}), msg, "")
	_, rest := stripSignatures(t, out, 1)
	if !bytes.Equal(rest, normalize(msg)) {
		t.Errorf("file-spooled output differs from the input")
	}
	if v := f.verify(bytes.NewReader(out))[0]; v.Err != nil {
		t.Errorf("verify: %v", v.Err)
	}
	var buf bytes.Buffer
	_, err := NewSigner([]*Key{k}, Options{SpoolThreshold: 100, TempDir: filepath.Join(t.TempDir(), "missing")}).
		Sign(t.Context(), &buf, bytes.NewReader(msg), "")
	if err == nil || !strings.Contains(err.Error(), "spool") || buf.Len() != 0 {
		t.Errorf("missing spool dir: err %v, %d bytes written; want a spool error and nothing written", err, buf.Len())
	}
}

func TestMalformedInput(t *testing.T) {
	k := testKey(t, "ed25519.pkcs8.pem", "example.com", "s1")
	hdr := "From: a@example.com\r\nX-Big: " + strings.Repeat("x", MaxHeaderBytes) + "\r\n\r\nbody\r\n"
	var out bytes.Buffer
	_, err := NewSigner([]*Key{k}, Options{}).Sign(t.Context(), &out, strings.NewReader(hdr), "")
	if err == nil || !strings.Contains(err.Error(), "header block larger") || out.Len() != 0 {
		t.Errorf("Sign = %v, %d bytes; want a header size error and nothing written", err, out.Len())
	}
	_, err = NewSigner([]*Key{k}, Options{}).Sign(t.Context(), &out, strings.NewReader(""), "example.com")
	if err == nil || !strings.Contains(err.Error(), "empty message") {
		t.Errorf("empty message: %v", err)
	}
	_, err = NewSigner([]*Key{k}, Options{}).Sign(t.Context(), &out, strings.NewReader(" folded\r\nFrom: a@example.com\r\n\r\n"), "example.com")
	if err == nil || !strings.Contains(err.Error(), "first line starts with white space") || out.Len() != 0 {
		t.Errorf("leading continuation line: %v, %d bytes written", err, out.Len())
	}
}

// probeWriter calls probe before its first write.
type probeWriter struct {
	w      io.Writer
	probe  func()
	probed bool
}

func (p *probeWriter) Write(b []byte) (int, error) {
	if !p.probed {
		p.probed = true
		p.probe()
	}
	return p.w.Write(b)
}

// cancelReader cancels its context after the first read.
type cancelReader struct {
	r      io.Reader
	cancel context.CancelFunc
}

func (c *cancelReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p[:min(len(p), 1000)])
	c.cancel()
	return n, err
}

func TestContextCanceled(t *testing.T) {
	k := testKey(t, "ed25519.pkcs8.pem", "example.com", "s1")
	s := NewSigner([]*Key{k}, Options{})
	msg := &bigMessage{header: "From: a@example.com\n\n", size: 1 << 20}

	ctx, cancel := context.WithCancel(t.Context())
	var out bytes.Buffer
	_, err := s.Sign(ctx, &out, &cancelReader{msg, cancel}, "")
	if !errors.Is(err, context.Canceled) || out.Len() != 0 {
		t.Errorf("Sign after cancel mid-message = %v, %d bytes; want context.Canceled and nothing written", err, out.Len())
	}
	if _, err := s.Sign(ctx, &out, strings.NewReader("From: a@example.com\r\n\r\n"), ""); !errors.Is(err, context.Canceled) {
		t.Errorf("Sign with a cancelled context = %v", err)
	}
}

// failWriter fails every write.
type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("connection reset") }

func TestWriteError(t *testing.T) {
	k := testKey(t, "ed25519.pkcs8.pem", "example.com", "s1")
	for _, domain := range []string{"example.com", "example.net"} { // signed and unsigned paths
		_, err := NewSigner([]*Key{k}, Options{}).Sign(t.Context(), failWriter{}, strings.NewReader("From: a@"+domain+"\r\n\r\nx\r\n"), "")
		if err == nil || !strings.Contains(err.Error(), "connection reset") {
			t.Errorf("%s: Sign to a failing writer = %v", domain, err)
		}
	}
}

// TestConcurrentSign shares one Signer between goroutines; run with -race.
func TestConcurrentSign(t *testing.T) {
	f := newFixture(t)
	rsaKey := testKey(t, "rsa2048.pkcs8.pem", "example.com", "rsa")
	edKey := testKey(t, "ed25519.pkcs8.pem", "example.com", "ed")
	f.publish(rsaKey, edKey)
	s := NewSigner([]*Key{rsaKey, edKey}, Options{SpoolThreshold: 512, TempDir: t.TempDir()})
	msg := readMessage(t, "multipart.eml")

	outs := make([][]byte, 8)
	errs := make([]error, len(outs))
	var wg sync.WaitGroup
	for i := range outs {
		wg.Go(func() {
			var b bytes.Buffer
			_, errs[i] = s.Sign(f.ctx, &b, bytes.NewReader(bytes.Replace(msg, []byte("42.00"), fmt.Appendf(nil, "%d.00", i), 1)), "")
			outs[i] = b.Bytes()
		})
	}
	wg.Wait()
	for i, out := range outs {
		if errs[i] != nil {
			t.Fatalf("goroutine %d: %v", i, errs[i])
		}
		if !bytes.Contains(out, fmt.Appendf(nil, "invoice for November is ready: %d.00 EUR", i)) {
			t.Errorf("goroutine %d: output is not its own message", i)
		}
		for j, v := range f.verify(bytes.NewReader(out)) {
			if v.Err != nil {
				t.Errorf("goroutine %d, signature %d: %v", i, j, v.Err)
			}
		}
	}
}

// TestSignBytes: a CRLF-normalised message is signed where it lies (the
// output is the signatures and the message, which verify; an unsigned one
// is the input itself, not a copy); other input takes Sign's path and gets
// Sign's output; errors are Sign's.
func TestSignBytes(t *testing.T) {
	f := newFixture(t)
	rsaKey := testKey(t, "rsa2048.pkcs8.pem", "example.com", "rsa")
	edKey := testKey(t, "ed25519.pkcs8.pem", "example.com", "ed")
	f.publish(rsaKey, edKey)
	s := NewSigner([]*Key{rsaKey, edKey}, Options{})
	lf := readMessage(t, "multipart.eml")
	crlf := normalize(lf)

	for _, tc := range []struct {
		name string
		msg  []byte
	}{{"CRLF", crlf}, {"LF", lf}, {"folded LF", readMessage(t, "folded.eml")}} {
		t.Run(tc.name, func(t *testing.T) {
			out, with, err := s.SignBytes(f.ctx, tc.msg, "")
			if err != nil || len(with) != 2 {
				t.Fatalf("SignBytes = %q, %v", with, err)
			}
			_, rest := stripSignatures(t, out, 2)
			if !bytes.Equal(rest, normalize(tc.msg)) {
				t.Errorf("message after the signatures differs from the normalised input")
			}
			want, wantWith := f.sign(s, tc.msg, "")
			if !slices.Equal(with, wantWith) {
				t.Errorf("signedWith %q, Sign's %q", with, wantWith)
			}
			if _, wantRest := stripSignatures(t, want, 2); !bytes.Equal(rest, wantRest) {
				t.Error("output differs from Sign's after the signatures")
			}
			for i, v := range f.verify(bytes.NewReader(out)) {
				if v.Err != nil {
					t.Errorf("verification %d: %v", i, v.Err)
				}
			}
		})
	}

	other := bytes.Replace(crlf, []byte("billing@example.com"), []byte("billing@other.test"), 1)
	out, with, err := s.SignBytes(f.ctx, other, "")
	if err != nil || len(with) != 0 || &out[0] != &other[0] || len(out) != len(other) {
		t.Errorf("no key for the domain: %q, %v, copied %v", with, err, &out[0] != &other[0])
	}
	out, with, err = NewSigner(nil, Options{}).SignBytes(f.ctx, crlf, "")
	if err != nil || len(with) != 0 || &out[0] != &crlf[0] {
		t.Errorf("no keys: %q, %v", with, err)
	}
	out, _, err = NewSigner(nil, Options{}).SignBytes(f.ctx, lf, "")
	if err != nil || !bytes.Equal(out, crlf) {
		t.Errorf("no keys, LF input: not normalised (%v)", err)
	}

	noFrom := []byte("Subject: x\r\n\r\nbody\r\n")
	if _, _, err := s.SignBytes(f.ctx, noFrom, ""); !errors.Is(err, ErrNoSigningDomain) {
		t.Errorf("no From: %v, want ErrNoSigningDomain", err)
	}
	if _, _, err := s.SignBytes(f.ctx, []byte(" folded first line\r\n\r\n"), ""); err == nil {
		t.Error("a first line starting with white space was signed")
	}
	ctx, cancel := context.WithCancel(f.ctx)
	cancel()
	if _, _, err := s.SignBytes(ctx, crlf, ""); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}
