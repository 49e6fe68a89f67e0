package track

import (
	"strings"

	"golang.org/x/net/idna"
)

// This file decides which URLs are tracked and how a tracked URL is sent
// back in a Location header. The rewriters and the handler share it, so a
// link the rewriter tracks is always one the handler redirects.

// cleanURL does to an href what a browser's URL parser does first (WHATWG
// URL parsing): it strips leading and trailing C0 controls and spaces and
// removes every ASCII tab, LF and CR inside, so an href broken over lines
// ("https://x.example/a" CRLF "b", from a generator folding at 76 columns or
// a badly decoded quoted-printable soft break) is the URL the browser opens:
// "https://x.example/ab". Other controls and inner spaces stay; location
// percent-encodes them as the browser does. The rewriters seal the cleaned
// URL and the handler redirects to it, so the recorded click, the redirect
// and a click in an untracked copy of the mail all name the same URL.
func cleanURL(s string) string {
	i, j := 0, len(s)
	for i < j && s[i] <= ' ' {
		i++
	}
	for j > i && s[j-1] <= ' ' {
		j--
	}
	s = s[i:j]
	if strings.IndexAny(s, "\t\n\r") < 0 {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != '\t' && c != '\n' && c != '\r' {
			b = append(b, c)
		}
	}
	return string(b)
}

// schemeLen returns the length of a leading "http://" or "https://" (any
// case) in u, or 0.
func schemeLen(u string) int {
	if len(u) >= 7 && strings.EqualFold(u[:7], "http://") {
		return 7
	}
	if len(u) >= 8 && strings.EqualFold(u[:8], "https://") {
		return 8
	}
	return 0
}

// notrackScheme recognises Postal's per-link opt-out spellings
// "http+notrack://" and "https+notrack://" (any case) and returns u with the
// plain scheme, or ok=false.
func notrackScheme(u string) (plain string, ok bool) {
	for _, s := range [...]string{"http", "https"} {
		p := s + "+notrack://"
		if len(u) >= len(p) && strings.EqualFold(u[:len(p)], p) {
			return s + "://" + u[len(p):], true
		}
	}
	return "", false
}

// splitAuthority splits an absolute http(s) URL into the authority (after
// "//") and the rest (path, query, fragment). ok is false without a scheme.
func splitAuthority(u string) (scheme, authority, rest string, ok bool) {
	n := schemeLen(u)
	if n == 0 {
		return "", "", "", false
	}
	end := len(u)
	for i := n; i < len(u); i++ {
		if c := u[i]; c == '/' || c == '?' || c == '#' || c == '\\' {
			end = i
			break
		}
	}
	return u[:n], u[n:end], u[end:], true
}

// hostOf returns the host part of an authority (no userinfo, no port).
func hostOf(authority string) (host, userinfo, port string) {
	if i := strings.LastIndexByte(authority, '@'); i >= 0 {
		userinfo, authority = authority[:i+1], authority[i+1:]
	}
	if strings.HasPrefix(authority, "[") { // IPv6 literal
		if i := strings.IndexByte(authority, ']'); i >= 0 {
			return authority[:i+1], userinfo, authority[i+1:]
		}
		return authority, userinfo, ""
	}
	if i := strings.LastIndexByte(authority, ':'); i >= 0 {
		return authority[:i], userinfo, authority[i:]
	}
	return authority, userinfo, ""
}

// location returns the value of the Location header that sends a browser
// to u, or ok=false if u is not an absolute http(s) URL with a host. u is
// read as a browser reads an href: cleaned first (see cleanURL: no tab, CR
// or LF anywhere, nothing at either end), then bytes a header cannot carry
// verbatim (non-ASCII, other controls, space) are percent-encoded as a
// browser would before requesting the URL, and a non-ASCII host becomes its
// IDNA (punycode) form, so non-browser clients follow the redirect too. A
// clean ASCII URL without spaces is returned as is.
func location(u string) (string, bool) {
	u = cleanURL(u)
	scheme, auth, rest, ok := splitAuthority(u)
	if !ok {
		return "", false
	}
	host, userinfo, port := hostOf(auth)
	if host == "" || host == "[]" || !validPort(port) {
		return "", false
	}
	for i := 0; i < len(host); i++ {
		if c := host[i]; c <= ' ' || c == 0x7f || c == '%' && !validEscape(host, i) {
			return "", false
		}
	}
	if isPlainASCII(u) {
		return u, true
	}
	if !isPlainASCII(host) {
		h, err := idna.Lookup.ToASCII(host)
		if err != nil || h == "" {
			return "", false
		}
		host = h
	}
	var b strings.Builder
	b.Grow(len(u) + 16)
	b.WriteString(strings.ToLower(scheme))
	escapeBytes(&b, userinfo)
	b.WriteString(host)
	b.WriteString(port)
	escapeBytes(&b, rest)
	return b.String(), true
}

func validPort(p string) bool {
	if p == "" {
		return true
	}
	if p[0] != ':' {
		return false
	}
	for i := 1; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
	}
	return true
}

// isPlainASCII reports whether s has only printable ASCII without spaces.
func isPlainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// escapeBytes writes s with non-printable-ASCII bytes and spaces
// percent-encoded.
func escapeBytes(b *strings.Builder, s string) {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// validEscape reports whether s[i] == '%' starts a %XX escape.
func validEscape(s string, i int) bool {
	return i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2])
}

// hasPlaceholder reports whether u still holds an unresolved merge tag:
// {{var}} (Handlebars, Liquid, SendGrid, Postmark, SparkPost), {%…%}, *|VAR|*
// (Mailchimp/Mandrill), or a '%' that is not a %XX escape (Mailgun's
// %recipient.var%, SFMC %%var%%). Such a link is left untracked: sealing it
// would freeze the placeholder inside the token where the service that fills
// it in can no longer see it.
func hasPlaceholder(u string) bool {
	for i := 0; i < len(u); i++ {
		switch u[i] {
		case '{':
			if i+1 < len(u) && (u[i+1] == '{' || u[i+1] == '%') {
				return true
			}
		case '*':
			if i+1 < len(u) && u[i+1] == '|' {
				return true
			}
		case '%':
			if !validEscape(u, i) {
				return true
			}
		}
	}
	return false
}

// underBase reports whether u already points at the tracking host base
// (scheme and host compared without case).
func underBase(u, base string) bool {
	if len(u) < len(base) || !strings.EqualFold(u[:len(base)], base) {
		return false
	}
	if len(u) == len(base) {
		return true
	}
	switch u[len(base)] {
	case '/', '?', '#':
		return true
	}
	return false
}

// trackable reports whether the (cleaned, entity-decoded) URL u gets a
// tracking link: an absolute http(s) URL with a valid host, no unresolved
// placeholder, and not already on the tracking host.
func trackable(u, base string) bool {
	if hasPlaceholder(u) || underBase(u, base) {
		return false
	}
	_, ok := location(u)
	return ok
}
