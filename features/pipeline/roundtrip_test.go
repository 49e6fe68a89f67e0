package pipeline

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"fmt"
	"html"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // decode every charset go-message knows
	"github.com/emersion/go-message/textproto"
	"go.uber.org/zap/zaptest"
	htmlcharset "golang.org/x/net/html/charset"
	"golang.org/x/text/encoding/charmap"

	xhtml "golang.org/x/net/html"

	"github.com/smtpgate/smtpgate/features/track"
)

// leaf is a non-multipart part as an independent parser (go-message) sees
// it.
type leaf struct {
	path      string
	header    textproto.Header
	mediaType string
	params    map[string]string
	raw       []byte // the body, transfer-encoded
	decoded   []byte // transfer-decoded, and converted to UTF-8 for text/*
	decodeErr error
}

// attachment reports whether the part is a file (the pipeline's rule,
// restated).
func (l *leaf) attachment() bool {
	if l.params["name"] != "" {
		return true
	}
	d, p, err := mime.ParseMediaType(l.header.Get("Content-Disposition"))
	return err == nil && (strings.EqualFold(d, "attachment") || p["filename"] != "")
}

// leaves parses raw with go-message and returns its non-multipart parts in
// order. message/rfc822 parts are leaves: their bodies are not entered.
func leaves(raw []byte) ([]*leaf, error) {
	br := bufio.NewReader(bytes.NewReader(raw))
	h, err := textproto.ReadHeader(br)
	if err != nil {
		return nil, fmt.Errorf("read header: %w", err)
	}
	var out []*leaf
	err = walkEntity(h, br, "", 0, &out)
	return out, err
}

func walkEntity(h textproto.Header, body io.Reader, path string, depth int, out *[]*leaf) error {
	if depth > 64 {
		return fmt.Errorf("%s: nested too deep", path)
	}
	mt, params, _ := mime.ParseMediaType(h.Get("Content-Type"))
	mt = strings.ToLower(mt)
	if h.Get("Content-Type") == "" {
		mt = "text/plain"
	}
	if strings.HasPrefix(mt, "multipart/") && params["boundary"] != "" {
		mr := textproto.NewMultipartReader(body, params["boundary"])
		for i := 1; ; i++ {
			p, err := mr.NextPart()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			child := fmt.Sprint(i)
			if path != "" {
				child = path + "." + child
			}
			if err := walkEntity(p.Header, p, child, depth+1, out); err != nil {
				return err
			}
		}
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	l := &leaf{path: path, header: h, mediaType: mt, params: params, raw: raw}
	e, err := message.New(message.Header{Header: h}, bytes.NewReader(raw))
	if err != nil {
		l.decodeErr = err
	}
	if e != nil {
		if l.decoded, err = io.ReadAll(e.Body); err != nil && l.decodeErr == nil {
			l.decodeErr = err
		}
	}
	*out = append(*out, l)
	return nil
}

// htmlText returns the text of an HTML document a reader sees, words
// separated by single spaces. Input without a charset parameter is read
// the way a browser reads it (BOM, <meta>, UTF-8 check).
func htmlText(l *leaf) string {
	doc := l.decoded
	if _, ok := l.params["charset"]; !ok {
		if r, err := htmlcharset.NewReader(bytes.NewReader(l.raw0()), "text/html"); err == nil {
			if b, err := io.ReadAll(r); err == nil {
				doc = b
			}
		}
	}
	root, err := xhtml.Parse(bytes.NewReader(doc))
	if err != nil {
		return "parse error: " + err.Error()
	}
	var words []string
	var walk func(*xhtml.Node)
	walk = func(n *xhtml.Node) {
		if n.Type == xhtml.ElementNode && (n.Data == "style" || n.Data == "script" || n.Data == "head") {
			return
		}
		if n.Type == xhtml.TextNode {
			words = append(words, strings.Fields(n.Data)...)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(root)
	return whatwgC1(strings.Join(words, " "))
}

// raw0 returns the transfer-decoded body before any charset conversion.
func (l *leaf) raw0() []byte {
	h := l.header.Copy()
	h.Del("Content-Type")
	e, err := message.New(message.Header{Header: h}, bytes.NewReader(l.raw))
	if err != nil {
		return l.decoded
	}
	b, err := io.ReadAll(e.Body)
	if err != nil {
		return l.decoded
	}
	return b
}

// whatwgC1 maps the C1 controls a strict ISO-8859-1 decoder (go-message's)
// produces to what they are in Windows-1252, which is how mail clients and
// browsers read an iso-8859-1 label.
func whatwgC1(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 0x80 && r <= 0x9f {
			if d := charmap.Windows1252.DecodeByte(byte(r)); d != 0xfffd {
				return d
			}
		}
		return r
	}, s)
}

// anchors returns the href of every <a> of an HTML document, in order, as
// written (entity-decoded by the tokenizer), and the src of every <img>.
func anchors(doc []byte) (hrefs, imgs []string) {
	z := xhtml.NewTokenizer(bytes.NewReader(doc))
	for {
		tt := z.Next()
		if tt == xhtml.ErrorToken {
			return hrefs, imgs
		}
		if tt != xhtml.StartTagToken && tt != xhtml.SelfClosingTagToken {
			continue
		}
		tok := z.Token()
		for _, a := range tok.Attr {
			switch {
			case tok.Data == "a" && a.Key == "href":
				hrefs = append(hrefs, a.Val)
			case tok.Data == "img" && a.Key == "src":
				imgs = append(imgs, a.Val)
			}
		}
		if tok.Data == "a" && !hasAttr(tok, "href") {
			hrefs = append(hrefs, "")
		}
	}
}

func hasAttr(t xhtml.Token, key string) bool {
	for _, a := range t.Attr {
		if a.Key == key {
			return true
		}
	}
	return false
}

var textTrackingURL = regexp.MustCompile(regexp.QuoteMeta(testPublicURL) + `/c/[A-Za-z0-9_-]+`)

// redeemer fetches tracking URLs through the real tracking handler.
type redeemer struct {
	t      *testing.T
	srv    *httptest.Server
	client *http.Client
	rec    *recorder
}

func newRedeemer(t *testing.T, codec *track.Codec) *redeemer {
	rec := &recorder{}
	srv := httptest.NewServer(track.NewHandler(codec, rec, zaptest.NewLogger(t)))
	t.Cleanup(srv.Close)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &redeemer{t: t, srv: srv, client: client, rec: rec}
}

// get fetches a tracking URL (on testPublicURL) from the test server.
func (r *redeemer) get(u string) *http.Response {
	r.t.Helper()
	resp, err := r.client.Get(r.srv.URL + strings.TrimPrefix(u, testPublicURL))
	if err != nil {
		r.t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body) //nolint:errcheck // drained for reuse only
	resp.Body.Close()
	return resp
}

// click redeems a click URL that should lead to want and checks the 302,
// its Location and the recorded event.
func (r *redeemer) click(u, want string, tc testCase) {
	r.t.Helper()
	resp := r.get(u)
	if resp.StatusCode != http.StatusFound {
		r.t.Errorf("GET %s: status %d, want 302", u, resp.StatusCode)
		return
	}
	if loc := resp.Header.Get("Location"); loc != iriToURI(want) {
		r.t.Errorf("GET %s: Location %q, want %q", u, loc, iriToURI(want))
	}
	r.checkEvent(track.EventClicked, want, tc)
}

// browserURL is the URL a browser opens for an href: WHATWG URL parsing
// first strips leading and trailing C0 controls and spaces, then removes
// every ASCII tab and newline (CR, LF) from the input.
func browserURL(href string) string {
	href = strings.TrimFunc(href, func(r rune) bool { return r <= ' ' })
	return strings.NewReplacer("\t", "", "\n", "", "\r", "").Replace(href)
}

// iriToURI percent-encodes the non-ASCII bytes of a URL (RFC 3987 §3.1), the
// only change an HTTP Location may make to the URL written in the mail.
func iriToURI(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 0x80 {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

func (r *redeemer) checkEvent(kind, url string, tc testCase) {
	r.t.Helper()
	ev := r.rec.take()
	if len(ev) != 1 {
		r.t.Errorf("recorder got %d events, want 1", len(ev))
		return
	}
	wantRcpt := ""
	if len(tc.recipients) == 1 {
		wantRcpt = tc.recipients[0]
	}
	if e := ev[0]; e.Kind != kind || e.MessageID != tc.messageID || e.Recipient != wantRcpt || e.URL != url {
		r.t.Errorf("event %+v, want kind %s, message %s, recipient %q, URL %q", e, kind, tc.messageID, wantRcpt, url)
	}
}

// directiveHeader reports whether a field name is a directive of tc's
// configuration.
func directiveHeader(name string, tc testCase) bool {
	n := strings.ToLower(name)
	prefixes := tc.prefixes
	if len(prefixes) == 0 {
		prefixes = []string{"X-Smtpgate-", "X-Smtpeter-"}
	}
	for _, v := range tc.vendors {
		switch v {
		case "mailgun":
			prefixes = append(prefixes, "X-Mailgun-")
		case "postmark":
			prefixes = append(prefixes, "X-PM-")
		case "emailengine":
			prefixes = append(prefixes, "X-EE-")
		case "sendgrid":
			if n == "x-smtpapi" {
				return true
			}
		}
	}
	for _, p := range prefixes {
		if strings.HasPrefix(n, strings.ToLower(p)) {
			return true
		}
	}
	return false
}

// TestCorpusRoundTrip checks every corpus output with independent parsers:
// it parses (go-message), shows the same words, every tracked link redeems
// through the real handler to exactly the input's URL, no directive header
// is left, every part the pipeline may not change is byte-identical, and no
// new line breaks RFC 5322's limits.
func TestCorpusRoundTrip(t *testing.T) {
	kit := newKit(t)
	for _, name := range corpusNames(t) {
		t.Run(name, func(t *testing.T) {
			tc := readCase(t, name)
			out, err := kit.pipeline(tc.config()).Apply(tc.input())
			if err != nil {
				if !tc.rejectMalformed {
					t.Fatalf("Apply: %v", err)
				}
				return
			}
			checkDirectivesGone(t, out.Raw, tc)
			checkLineLengths(t, tc.raw, out.Raw)
			in, inErr := leaves(tc.raw)
			got, outErr := leaves(out.Raw)
			if inErr != nil {
				// The input is not MIME an independent parser accepts: the
				// output must not be "better" than that, only stripped.
				if out.Stats.LinksTracked+out.Stats.PixelsAdded+out.Stats.CSSInlined > 0 {
					t.Errorf("input does not parse (%v) but the pipeline changed it", inErr)
				}
				return
			}
			if outErr != nil {
				t.Fatalf("output does not parse: %v", outErr)
			}
			if len(in) != len(got) {
				t.Fatalf("output has %d parts, input %d", len(got), len(in))
			}
			r := newRedeemer(t, kit.codec)
			clicks := 0
			for i := range in {
				clicks += checkPart(t, r, tc, in[i], got[i])
			}
			if clicks != out.Stats.LinksTracked {
				t.Errorf("redeemed %d tracked links, Stats.LinksTracked = %d", clicks, out.Stats.LinksTracked)
			}
		})
	}
}

// checkPart compares one part before and after; it returns the number of
// tracked links it redeemed.
func checkPart(t *testing.T, r *redeemer, tc testCase, in, got *leaf) int {
	t.Helper()
	if in.path != got.path || in.mediaType != got.mediaType {
		t.Errorf("part %s %s became %s %s", in.path, in.mediaType, got.path, got.mediaType)
		return 0
	}
	inHeader := in.header
	if in.path == "" {
		// The top header loses its directives, and nothing else.
		inHeader = in.header.Copy()
		for f := inHeader.Fields(); f.Next(); {
			if directiveHeader(f.Key(), tc) {
				f.Del()
			}
		}
	}
	unchanged := bytes.Equal(in.raw, got.raw) && sameHeader(inHeader, got.header)
	bodyText := !in.attachment() && (in.mediaType == "text/html" || in.mediaType == "text/plain")
	if !bodyText || in.decodeErr != nil {
		// Attachments, images, calendars, forwarded messages...: the same
		// bytes, the same header, the same decoded content.
		if !unchanged {
			t.Errorf("part %s (%s) changed: it must be byte-identical", in.path, in.mediaType)
		}
		if md5.Sum(in.decoded) != md5.Sum(got.decoded) || !bytes.Equal(in.decoded, got.decoded) {
			t.Errorf("part %s (%s): decoded content differs", in.path, in.mediaType)
		}
		return 0
	}
	if unchanged {
		return 0
	}
	if got.decodeErr != nil {
		t.Errorf("part %s: output does not decode: %v", in.path, got.decodeErr)
		return 0
	}
	if cs := got.params["charset"]; cs != "" && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, in.params["charset"]) {
		t.Errorf("part %s: charset %q, want utf-8 or the input's", in.path, cs)
	}
	if in.mediaType == "text/plain" {
		return checkText(t, r, tc, in, got)
	}
	return checkHTML(t, r, tc, in, got)
}

func sameHeader(a, b textproto.Header) bool {
	var x, y bytes.Buffer
	textproto.WriteHeader(&x, a) //nolint:errcheck // bytes.Buffer
	textproto.WriteHeader(&y, b) //nolint:errcheck // bytes.Buffer
	return bytes.Equal(x.Bytes(), y.Bytes())
}

// checkText: the output with every tracking URL replaced by where it
// redirects is the input.
func checkText(t *testing.T, r *redeemer, tc testCase, in, got *leaf) int {
	t.Helper()
	tokens := textTrackingURL.FindAllStringIndex(string(got.decoded), -1)
	want := strings.ReplaceAll(whatwgC1(string(in.decoded)), "https+notrack://", "https://")
	// Walk the output and the input together: the text between tracking
	// URLs must be the same, and each tracking URL must redeem to the
	// input's URL at that place.
	outText := string(got.decoded)
	prev, pos := 0, 0
	for _, loc := range tokens {
		lit := outText[prev:loc[0]]
		if !strings.HasPrefix(want[pos:], lit) {
			t.Errorf("part %s: text differs before tracking URL at %d:\n got %q\nwant %q", in.path, loc[0], lit, want[pos:min(len(want), pos+len(lit))])
			return len(tokens)
		}
		pos += len(lit)
		// The input's URL runs to where the output's literal text resumes:
		// the end of the input when no other tracking URL follows.
		rest := outText[loc[1]:]
		var next int
		if k := textTrackingURL.FindStringIndex(rest); k != nil {
			i := strings.Index(want[pos:], rest[:k[0]])
			if i < 0 || k[0] == 0 {
				t.Errorf("part %s: text after tracking URL not found in the input: %q", in.path, rest[:k[0]])
				return len(tokens)
			}
			next = pos + i
		} else {
			next = len(want) - len(rest)
			if next < pos || want[next:] != rest {
				t.Errorf("part %s: text differs at the end:\n got %q\nwant %q", in.path, rest, want[pos:])
				return len(tokens)
			}
		}
		r.click(outText[loc[0]:loc[1]], want[pos:next], tc)
		pos, prev = next, loc[1]
	}
	if len(tokens) == 0 && outText != want {
		t.Errorf("part %s: text differs:\n got %q\nwant %q", in.path, outText, want)
	}
	return len(tokens)
}

// checkHTML: same words; every <a> in the same place, tracked ones
// redirecting to the input's href; at most one new image, the pixel.
func checkHTML(t *testing.T, r *redeemer, tc testCase, in, got *leaf) int {
	t.Helper()
	if a, b := htmlText(in), htmlText(got); a != b {
		t.Errorf("part %s: visible text differs:\n in  %q\n out %q", in.path, a, b)
	}
	inHrefs, inImgs := anchors(in.decoded)
	outHrefs, outImgs := anchors(got.decoded)
	if len(inHrefs) != len(outHrefs) {
		t.Errorf("part %s: %d links, input has %d", in.path, len(outHrefs), len(inHrefs))
		return 0
	}
	n := 0
	for i, h := range outHrefs {
		if !strings.HasPrefix(h, testPublicURL+"/c/") || strings.HasPrefix(inHrefs[i], testPublicURL+"/") {
			if h != inHrefs[i] && h != strings.Replace(inHrefs[i], "https+notrack://", "https://", 1) {
				t.Errorf("part %s: untracked link %d changed from %q to %q", in.path, i, inHrefs[i], h)
			}
			continue
		}
		n++
		r.click(h, browserURL(html.UnescapeString(inHrefs[i])), tc)
	}
	switch extra := len(outImgs) - len(inImgs); extra {
	case 0:
	case 1:
		px := outImgs[len(outImgs)-1]
		if !strings.HasPrefix(px, testPublicURL+"/o/") {
			t.Errorf("part %s: new image %q is not the pixel", in.path, px)
			break
		}
		resp := r.get(px)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/gif" {
			t.Errorf("pixel: status %d, type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		r.checkEvent(track.EventOpened, "", tc)
	default:
		t.Errorf("part %s: %d images added", in.path, extra)
	}
	return n
}

// checkDirectivesGone fails if a directive header is left in the top header.
func checkDirectivesGone(t *testing.T, raw []byte, tc testCase) {
	t.Helper()
	h, _ := parseHeader(raw)
	for _, f := range h.fields {
		if f.name != "" && directiveHeader(f.name, tc) {
			t.Errorf("directive header left: %s", quote(f.raw))
		}
	}
}

// checkLineLengths fails for a line over 998 bytes that the input did not
// already have, and for a new body line over 76 in a quoted-printable or
// base64 part.
func checkLineLengths(t *testing.T, in, out []byte) {
	t.Helper()
	old := make(map[string]bool)
	for _, l := range lines(in) {
		old[string(l)] = true
	}
	for _, l := range lines(out) {
		if !old[string(l)] && len(l) > maxLine {
			t.Errorf("new line of %d bytes: %s", len(l), quote(l))
		}
	}
	got, err := leaves(out)
	if err != nil {
		return
	}
	for _, l := range got {
		cte := strings.ToLower(l.header.Get("Content-Transfer-Encoding"))
		if cte != "quoted-printable" && cte != "base64" {
			continue
		}
		for _, line := range lines(l.raw) {
			if !old[string(line)] && len(line) > 76 {
				t.Errorf("part %s: new %s line of %d bytes", l.path, cte, len(line))
			}
		}
	}
}
