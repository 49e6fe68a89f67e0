package inline

import (
	"bytes"
	"strings"
)

// quirksDoctype reports whether a document whose first significant token is
// the DOCTYPE raw (nil when there is none) renders in quirks mode, following
// the HTML standard (13.2.6.4.1, "the initial insertion mode"). In quirks
// mode class and id selectors match without regard to ASCII case.
func quirksDoctype(raw []byte) bool {
	if raw == nil {
		return true
	}
	s := bytes.TrimSuffix(raw, []byte(">"))
	if len(s) < len("<!doctype") || !equalFoldASCII(s[:len("<!doctype")], "<!doctype") {
		return true
	}
	s = s[len("<!doctype"):]
	rest := strings.TrimLeft(string(s), htmlSpace)
	i := strings.IndexAny(rest, htmlSpace)
	if i < 0 {
		i = len(rest)
	}
	if !strings.EqualFold(rest[:i], "html") {
		return true // no name, or another name
	}
	rest = strings.TrimLeft(rest[i:], htmlSpace)
	if rest == "" {
		return false
	}
	if len(rest) < 6 {
		return true
	}
	keyword := strings.ToLower(rest[:6])
	rest = rest[6:]
	var public, system string
	var hasSystem bool
	quoted := func() (string, bool) {
		rest = strings.TrimLeft(rest, htmlSpace)
		if rest == "" || rest[0] != '"' && rest[0] != '\'' {
			return "", false
		}
		q := strings.IndexByte(rest[1:], rest[0])
		if q < 0 {
			return "", false // unterminated: force-quirks
		}
		id := rest[1 : 1+q]
		rest = rest[2+q:]
		return id, true
	}
	switch keyword {
	case "public":
		var ok bool
		if public, ok = quoted(); !ok {
			return true
		}
		if strings.TrimLeft(rest, htmlSpace) != "" {
			if system, ok = quoted(); !ok {
				return true
			}
			hasSystem = true
		}
	case "system":
		var ok bool
		if system, ok = quoted(); !ok {
			return true
		}
		hasSystem = true
	default:
		return true
	}
	if strings.TrimLeft(rest, htmlSpace) != "" {
		return false // trailing junk is a parse error, not quirks
	}
	public = strings.ToLower(public)
	switch public {
	case "-//w3o//dtd w3 html strict 3.0//en//", "-/w3c/dtd html 4.0 transitional/en", "html":
		return true
	}
	for q := range strings.Lines(quirkyIDs) {
		if strings.HasPrefix(public, strings.TrimSuffix(q, "\n")) {
			return true
		}
	}
	if !hasSystem && (strings.HasPrefix(public, "-//w3c//dtd html 4.01 frameset//") ||
		strings.HasPrefix(public, "-//w3c//dtd html 4.01 transitional//")) {
		return true
	}
	return strings.EqualFold(system, "http://www.ibm.com/data/dtd/v11/ibmxhtml1-transitional.dtd")
}

// htmlSpace is HTML white space.
const htmlSpace = " \t\n\f\r"

// quirkyIDs lists, one a line, the public identifiers that put a
// document in quirks mode, in lower case (from golang.org/x/net/html, BSD
// licence, which takes them from the HTML standard).
const quirkyIDs = `+//silmaril//dtd html pro v0r11 19970101//
-//advasoft ltd//dtd html 3.0 aswedit + extensions//
-//as//dtd html 3.0 aswedit + extensions//
-//ietf//dtd html 2.0 level 1//
-//ietf//dtd html 2.0 level 2//
-//ietf//dtd html 2.0 strict level 1//
-//ietf//dtd html 2.0 strict level 2//
-//ietf//dtd html 2.0 strict//
-//ietf//dtd html 2.0//
-//ietf//dtd html 2.1e//
-//ietf//dtd html 3.0//
-//ietf//dtd html 3.2 final//
-//ietf//dtd html 3.2//
-//ietf//dtd html 3//
-//ietf//dtd html level 0//
-//ietf//dtd html level 1//
-//ietf//dtd html level 2//
-//ietf//dtd html level 3//
-//ietf//dtd html strict level 0//
-//ietf//dtd html strict level 1//
-//ietf//dtd html strict level 2//
-//ietf//dtd html strict level 3//
-//ietf//dtd html strict//
-//ietf//dtd html//
-//metrius//dtd metrius presentational//
-//microsoft//dtd internet explorer 2.0 html strict//
-//microsoft//dtd internet explorer 2.0 html//
-//microsoft//dtd internet explorer 2.0 tables//
-//microsoft//dtd internet explorer 3.0 html strict//
-//microsoft//dtd internet explorer 3.0 html//
-//microsoft//dtd internet explorer 3.0 tables//
-//netscape comm. corp.//dtd html//
-//netscape comm. corp.//dtd strict html//
-//o'reilly and associates//dtd html 2.0//
-//o'reilly and associates//dtd html extended 1.0//
-//o'reilly and associates//dtd html extended relaxed 1.0//
-//softquad software//dtd hotmetal pro 6.0::19990601::extensions to html 4.0//
-//softquad//dtd hotmetal pro 4.0::19971010::extensions to html 4.0//
-//spyglass//dtd html 2.0 extended//
-//sq//dtd html 2.0 hotmetal + extensions//
-//sun microsystems corp.//dtd hotjava html//
-//sun microsystems corp.//dtd hotjava strict html//
-//w3c//dtd html 3 1995-03-24//
-//w3c//dtd html 3.2 draft//
-//w3c//dtd html 3.2 final//
-//w3c//dtd html 3.2//
-//w3c//dtd html 3.2s draft//
-//w3c//dtd html 4.0 frameset//
-//w3c//dtd html 4.0 transitional//
-//w3c//dtd html experimental 19960712//
-//w3c//dtd html experimental 970421//
-//w3c//dtd w3 html//
-//w3o//dtd w3 html 3.0//
-//webtechs//dtd mozilla html 2.0//
-//webtechs//dtd mozilla html//
`
