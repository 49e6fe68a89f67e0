package proxy

import (
	"errors"
	"net/netip"
	"strings"
	"unicode/utf8"
)

var (
	errAddrSyntax = errors.New("bad address syntax")
	errAddrUTF8   = errors.New("non-ASCII address without SMTPUTF8")
)

// checkAddress checks a mailbox as go-smtp hands it over (local@domain,
// brackets and source route removed). It is stricter than go-smtp, which
// takes almost anything up to a space or ">" as the domain: the local part
// must be a dot-atom (go-smtp has already unquoted a quoted local part, so
// one with spaces or specials is refused), the domain a host name or an
// address literal. Non-ASCII is allowed only with SMTPUTF8 (RFC 6531) and
// must be valid UTF-8. It returns errAddrSyntax or errAddrUTF8.
func checkAddress(addr string, smtputf8 bool) error {
	if len(addr) > 254 {
		return errAddrSyntax
	}
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 {
		return errAddrSyntax
	}
	local, domain := addr[:at], addr[at+1:]
	ascii := true
	if len(local) > 64 {
		return errAddrSyntax
	}
	prev := byte('.')
	for i := 0; i < len(local); i++ {
		c := local[i]
		switch {
		case c == '.':
			if prev == '.' {
				return errAddrSyntax // leading dot or ".."
			}
		case c >= 0x80:
			ascii = false
		case !isAtext(c):
			return errAddrSyntax
		}
		prev = c
	}
	if prev == '.' {
		return errAddrSyntax
	}
	if domain[0] == '[' {
		if !validLiteral(domain) {
			return errAddrSyntax
		}
	} else {
		ok, asciiDomain := validDomain(domain)
		if !ok {
			return errAddrSyntax
		}
		ascii = ascii && asciiDomain
	}
	if !ascii {
		if !utf8.ValidString(addr) {
			return errAddrSyntax
		}
		if !smtputf8 {
			return errAddrUTF8
		}
	}
	return nil
}

// isAtext reports whether c is an RFC 5322 atext character.
func isAtext(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// validDomain checks a host name: dot-separated labels of 1 to 63 letters,
// digits and hyphens, no hyphen at either end of a label. Bytes >= 0x80 are
// accepted as parts of U-labels; ascii reports whether there were none.
func validDomain(d string) (ok, ascii bool) {
	if len(d) > 253 {
		return false, false
	}
	ascii = true
	for label := range strings.SplitSeq(d, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false, false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			switch {
			case c >= 0x80:
				ascii = false
			case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-':
			default:
				return false, false
			}
		}
	}
	return true, ascii
}

// validLiteral checks an address literal: [192.0.2.1] or [IPv6:2001:db8::1].
func validLiteral(d string) bool {
	if len(d) < 3 || d[len(d)-1] != ']' {
		return false
	}
	inner := d[1 : len(d)-1]
	if len(inner) > 5 && strings.EqualFold(inner[:5], "IPv6:") {
		a, err := netip.ParseAddr(inner[5:])
		return err == nil && a.Is6() && a.Zone() == ""
	}
	a, err := netip.ParseAddr(inner)
	return err == nil && a.Is4()
}
