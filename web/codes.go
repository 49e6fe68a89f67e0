package web

import (
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"

	"github.com/smtpgate/smtpgate/summary"
)

// apiCode is a one-time code found in a message.
type apiCode struct {
	Code    string `json:"code"`
	Source  string `json:"source"`            // subject, text or html
	Keyword string `json:"keyword,omitempty"` // the nearby word that marks it as a code; "" for a bare number
	Context string `json:"context"`           // the words around it
}

// apiLink is a link found in a message with the text it is written under.
type apiLink struct {
	URL    string `json:"url"`    // as delivered (a tracking redirect when click tracking ran)
	Text   string `json:"text"`   // the link text ("" for a bare URL in the text body)
	Source string `json:"source"` // html or text
	// OriginalURL is the link's URL in the message as submitted, when the
	// features changed the message and the link could be matched.
	OriginalURL string `json:"original_url,omitempty"`
}

// Limits of code extraction.
const (
	codeScanBytes  = 64 << 10 // of each source
	keywordBefore  = 80       // bytes between a keyword and a code after it
	keywordAfter   = 40       // bytes between a code and a keyword after it
	yearReach      = 0        // a year-like number is a code only right after its keyword
	codeContext    = 40       // bytes of context on each side
	maxCodes       = 20
	maxLinkTextLen = 200
)

// codeKeyword matches the words that announce a one-time code, in a few
// languages. It is matched against lower-cased text.
var codeKeyword = regexp.MustCompile(`code|codigo|código|codice|kod|\botp\b|passcode|\bpin\b|verif|one[- ]time|\b2fa\b|\bmfa\b|token|confirm|security|auth|sign[- ]?in|log[- ]?in|验证码|認証|コード`)

// maskURLs matches what must never be read as a code: URLs, e-mail
// addresses, times, dates and decimal or grouped numbers.
var maskURLs = regexp.MustCompile(`(?i)\b(?:https?://|www\.)[^\s<>"]+|[^\s<>"@]+@[^\s<>"@]+\.[a-z]{2,}|\b\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}\b|\b\d{1,2}:\d{2}(?::\d{2})?\b|\d+[.,]\d+`)

// findCodes returns the one-time codes of a message: first the 4 to 8
// digit numbers and the 4 to 12 character letter-and-digit codes that
// stand near a word like "code", "OTP", "verification" or "PIN" (before or
// after), then, when none does, bare 4 to 8 digit numbers. The subject
// comes first, then the text body, then the text of the HTML body.
func findCodes(subject string, c *summary.Content) []apiCode {
	sources := []struct{ name, text string }{{"subject", subject}, {"text", c.Text}}
	if c.HTML != "" {
		sources = append(sources, struct{ name, text string }{"html", htmlToText(c.HTML)})
	}
	var near []candidate
	var bare []apiCode
	seen := map[string]bool{}
	for _, src := range sources {
		text := src.text
		if len(text) > codeScanBytes {
			text = text[:codeScanBytes]
		}
		for _, cand := range codeCandidates(text) {
			if seen[cand.Code] {
				continue
			}
			cand.Source = src.name
			if cand.Keyword != "" && looksLikeYear(cand.Code) && cand.score > yearReach {
				cand.Keyword = "" // "© 2026 Acme · Security": a year, unless "PIN: 2026"
			}
			if cand.Keyword != "" {
				seen[cand.Code] = true
				near = append(near, cand)
			} else if cand.digits && !looksLikeYear(cand.Code) {
				bare = append(bare, cand.apiCode)
			}
		}
	}
	// The code closest to its keyword first; a keyword before the code
	// ("your code is 1234") counts as closer than one after it.
	slices.SortStableFunc(near, func(a, b candidate) int { return a.score - b.score })
	out := make([]apiCode, 0, len(near))
	for _, c := range near {
		out = append(out, c.apiCode)
	}
	if len(out) == 0 {
		for _, c := range bare {
			if !seen[c.Code] {
				seen[c.Code] = true
				out = append(out, c)
			}
		}
	}
	if len(out) > maxCodes {
		out = out[:maxCodes]
	}
	return out
}

type candidate struct {
	apiCode
	digits bool // only digits
	score  int  // how far its keyword is; lower is likelier
}

// codeCandidates lists the code-shaped words of text in order, each with
// the keyword near it, if any.
func codeCandidates(text string) []candidate {
	masked := []byte(text)
	for _, loc := range maskURLs.FindAllStringIndex(text, -1) {
		for i := loc[0]; i < loc[1]; i++ {
			masked[i] = ' '
		}
	}
	lower := strings.ToLower(string(masked))
	keywords := codeKeyword.FindAllStringIndex(lower, -1)
	var out []candidate
	for i := 0; i < len(masked); {
		r, size := utf8.DecodeRune(masked[i:])
		if !isCodeRune(r) {
			i += size
			continue
		}
		start := i
		for i < len(masked) {
			r, size := utf8.DecodeRune(masked[i:])
			// Digit groups joined by one hyphen or space are one number
			// ("123-456", "123 456"; a phone number gets too long).
			joiner := (r == '-' || r == ' ') && i+1 < len(masked) && isASCIIDigit(masked[i+1]) && isASCIIDigit(masked[i-1])
			if !isCodeRune(r) && !joiner {
				break
			}
			i += size
		}
		word := string(masked[start:i])
		code, digits, ok := codeShape(word)
		if !ok {
			continue
		}
		kw, score := nearKeyword(lower, keywords, start, i)
		if kw == "" && !digits {
			continue // letters and digits mixed are a code only when announced
		}
		out = append(out, candidate{apiCode: apiCode{Code: code, Keyword: kw, Context: contextOf(text, start, i)}, digits: digits, score: score})
	}
	return out
}

func isCodeRune(r rune) bool {
	return r < utf8.RuneSelf && (r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
}

func isASCIIDigit(b byte) bool { return b >= '0' && b <= '9' }

// codeShape reports whether word is a code: 4 to 8 digits (digit groups
// joined by hyphens or spaces count without them), or 4 to 12 letters and
// digits with at least one of each and no lower-case letter.
func codeShape(word string) (code string, digits, ok bool) {
	if strings.ContainsAny(word, "- ") {
		joined := strings.NewReplacer("-", "", " ", "").Replace(word)
		if n := len(joined); n >= 4 && n <= 8 && allDigits(joined) {
			return joined, true, true
		}
		return "", false, false
	}
	n := len(word)
	if allDigits(word) {
		return word, true, n >= 4 && n <= 8
	}
	if n < 4 || n > 12 {
		return "", false, false
	}
	hasDigit, hasLetter := false, false
	for _, r := range word {
		switch {
		case r >= '0' && r <= '9':
			hasDigit = true
		case unicode.IsLower(r):
			return "", false, false
		default:
			hasLetter = true
		}
	}
	return word, false, hasDigit && hasLetter
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isASCIIDigit(s[i]) {
			return false
		}
	}
	return s != ""
}

// looksLikeYear reports whether a bare number is more likely a year.
func looksLikeYear(code string) bool {
	return len(code) == 4 && (strings.HasPrefix(code, "19") || strings.HasPrefix(code, "20"))
}

// nearKeyword returns the keyword closest to text[start:end] within reach
// (up to keywordBefore bytes before it or keywordAfter bytes after it) and
// a score: the letters and digits between them, leaving out filler words
// ("your code is: 1234" scores 0), plus keywordAfter for a keyword after
// the code.
func nearKeyword(lower string, keywords [][]int, start, end int) (string, int) {
	best, bestScore := "", 1<<30
	for _, k := range keywords {
		var score int
		switch {
		case k[1] <= start && start-k[1] <= keywordBefore:
			score = gapScore(lower[k[1]:start])
		case k[0] >= end && k[0]-end <= keywordAfter:
			score = gapScore(lower[end:k[0]]) + keywordAfter
		default:
			continue
		}
		if score < bestScore {
			best, bestScore = lower[k[0]:k[1]], score
		}
	}
	return best, bestScore
}

// fillerWords do not separate a keyword from its code.
var fillerWords = setOf("is", "are", "was", "be", "your", "the", "a", "an", "here", "below", "this", "of", "for", "to", "use", "enter")

// gapScore counts the letters and digits of the words in gap that are not
// filler words.
func gapScore(gap string) int {
	n := 0
	for _, w := range strings.FieldsFunc(gap, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
		if !fillerWords[w] {
			n += utf8.RuneCountInString(w)
		}
	}
	return n
}

// contextOf returns the words around text[start:end] on one line.
func contextOf(text string, start, end int) string {
	from, to := max(0, start-codeContext), min(len(text), end+codeContext)
	for from > 0 && !utf8.RuneStart(text[from]) {
		from--
	}
	for to < len(text) && !utf8.RuneStart(text[to]) {
		to++
	}
	return strings.Join(strings.Fields(text[from:to]), " ")
}

// collectLinks returns the links of a message from the anchors of its
// HTML body and the links of its Summary: every <a href> of the HTML body
// with its text, then the URLs that only the text body has.
func collectLinks(as []apiLink, summaryLinks []string) []apiLink {
	out := httpLinks(as)
	seen := make(map[string]bool, len(out))
	for _, l := range out {
		seen[l.URL] = true
	}
	for _, u := range summaryLinks {
		if !seen[u] {
			seen[u] = true
			out = append(out, apiLink{URL: u, Source: "text"})
		}
	}
	return out
}

// linksOf returns the links of a message whose content is c: every <a
// href> of the HTML body with its text, then the URLs that only the text
// body has (from summaryLinks). With orig, the content of the message as
// submitted, each link gets its OriginalURL.
//
// The content features only rewrite the href of an <a> and the URLs of a
// text body, in place; they never add or remove a link (the open pixel is
// an <img>). So the n-th <a href> of the delivered HTML body was the n-th
// of the submitted one, and the n-th URL of the delivered text body the
// n-th of the submitted text: links are matched by position. A body whose
// count of links differs between the two (which the features never cause)
// leaves its links without OriginalURL rather than guess.
func linksOf(c *summary.Content, summaryLinks []string, orig *summary.Content) []apiLink {
	as := anchors(c.HTML)
	out := collectLinks(as, summaryLinks)
	if orig == nil {
		return out
	}
	byURL := map[string]map[string]string{
		"html": alignLinks(hrefs(as), hrefs(anchors(orig.HTML))),
		"text": alignLinks(textURLs(c.Text), textURLs(orig.Text)),
	}
	other := map[string]string{"html": "text", "text": "html"}
	for i := range out {
		l := &out[i]
		if u, ok := byURL[l.Source][l.URL]; ok {
			l.OriginalURL = u
		} else if u, ok := byURL[other[l.Source]][l.URL]; ok {
			// A text-body entry whose URL the HTML body also has.
			l.OriginalURL = u
		}
	}
	return out
}

// alignLinks maps each delivered URL to the submitted URL at the same
// position, "+notrack" schemes made plain as the tracker makes them; nil
// when the lists differ in length. A URL found at several positions keeps
// its first match.
func alignLinks(delivered, submitted []string) map[string]string {
	if len(delivered) != len(submitted) {
		return nil
	}
	out := make(map[string]string, len(delivered))
	for i, u := range delivered {
		if _, dup := out[u]; dup {
			continue
		}
		o := submitted[i]
		if plain, ok := notrackPlain(o); ok {
			o = plain
		}
		out[u] = o
	}
	return out
}

// hrefs returns the URLs of links.
func hrefs(links []apiLink) []string {
	out := make([]string, len(links))
	for i, l := range links {
		out[i] = l.URL
	}
	return out
}

// notrackPlain turns Postal's per-link opt-out spellings "http+notrack://"
// and "https+notrack://" (any case) into the plain scheme, as the click
// tracker does.
func notrackPlain(u string) (string, bool) {
	for _, s := range [...]string{"http", "https"} {
		p := s + "+notrack://"
		if len(u) >= len(p) && strings.EqualFold(u[:len(p)], p) {
			return s + "://" + u[len(p):], true
		}
	}
	return "", false
}

// textURLs lists the URLs of a text body in order, duplicates included,
// found as the click tracker finds the URLs it rewrites in text: a scheme
// (http, https, http+notrack, https+notrack; any case) not glued to a
// preceding letter, digit, '+', '-' or '.', then "://" and everything up
// to white space, a control character, invalid UTF-8, '<', '>' or '"',
// less trailing . , ; : ! ? ' * and unbalanced ')' or ']'.
func textURLs(text string) []string {
	var out []string
	i := 0
	for i < len(text) {
		k := strings.Index(text[i:], "://")
		if k < 0 {
			break
		}
		k += i
		start := k
		for start > i && isSchemeByte(text[start-1]) {
			start--
		}
		if !isTextScheme(text[start:k]) {
			i = k + 3
			continue
		}
		end := textURLEnd(text, start, k+3)
		out = append(out, text[start:end])
		i = end
	}
	return out
}

func isSchemeByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'
}

func isTextScheme(s string) bool {
	for _, v := range [...]string{"http", "https", "http+notrack", "https+notrack"} {
		if strings.EqualFold(s, v) {
			return true
		}
	}
	return false
}

// textURLEnd returns the end of the URL of text that starts at start and
// whose authority starts at from.
func textURLEnd(text string, start, from int) int {
	e := from
	for e < len(text) {
		c := text[e]
		if c < utf8.RuneSelf {
			if c <= ' ' || c == 0x7f || c == '<' || c == '>' || c == '"' {
				break
			}
			e++
			continue
		}
		r, size := utf8.DecodeRuneInString(text[e:])
		if r == utf8.RuneError && size == 1 || unicode.IsSpace(r) || unicode.IsControl(r) {
			break
		}
		e += size
	}
	for e > from {
		switch text[e-1] {
		case '.', ',', ';', ':', '!', '?', '\'', '*':
			e--
			continue
		case ')':
			if strings.Count(text[start:e], "(") < strings.Count(text[start:e], ")") {
				e--
				continue
			}
		case ']':
			if strings.Count(text[start:e], "[") < strings.Count(text[start:e], "]") {
				e--
				continue
			}
		}
		break
	}
	return e
}

// httpLinks keeps the http(s) links of anchors, each distinct pair of URL
// and text once.
func httpLinks(as []apiLink) []apiLink {
	out := []apiLink{}
	seen := map[apiLink]bool{}
	for _, l := range as {
		lower := strings.ToLower(l.URL)
		if !strings.HasPrefix(lower, "http://") && !strings.HasPrefix(lower, "https://") {
			continue
		}
		if !seen[l] {
			seen[l] = true
			out = append(out, l)
		}
	}
	return out
}

// anchors lists every <a href> of an HTML document in document order, any
// scheme, with its text, duplicates included.
func anchors(src string) []apiLink {
	if src == "" {
		return nil
	}
	doc, err := html.Parse(strings.NewReader(src))
	if err != nil {
		return nil
	}
	var out []apiLink
	for n := range doc.Descendants() {
		if n.Type != html.ElementNode || n.DataAtom != atom.A {
			continue
		}
		href, ok := attrValue(n, "href")
		if !ok {
			continue
		}
		var b strings.Builder
		linkText(&b, n)
		text := strings.Join(strings.Fields(b.String()), " ")
		if len(text) > maxLinkTextLen {
			cut := maxLinkTextLen
			for cut > 0 && !utf8.RuneStart(text[cut]) {
				cut--
			}
			text = text[:cut] + "…"
		}
		out = append(out, apiLink{URL: stripURLSpace(href), Text: text, Source: "html"})
	}
	return out
}

// linkText writes the text under n, and the alt text of its images.
func linkText(b *strings.Builder, n *html.Node) {
	for c := range n.ChildNodes() {
		switch {
		case c.Type == html.TextNode:
			b.WriteString(c.Data)
		case c.Type == html.ElementNode && c.DataAtom == atom.Img:
			if alt, ok := attrValue(c, "alt"); ok {
				b.WriteString(" " + alt + " ")
			}
		case c.Type == html.ElementNode && c.DataAtom != atom.Script && c.DataAtom != atom.Style:
			linkText(b, c)
		}
	}
}
