package web

import (
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/smtpgate/smtpgate/store"
)

// Limits of an address (RFC 5321 §4.5.3.1).
const (
	maxAddressLen = 254
	maxLocalLen   = 64
)

// inboxParam returns the {email} path parameter of r, validated and
// lower-cased, or a 400 error.
func inboxParam(r *http.Request) (string, error) {
	addr, msg := normalizeAddress(r.PathValue("email"))
	if msg != "" {
		return "", errorf(http.StatusBadRequest, "invalid email address in path: "+msg)
	}
	return addr, nil
}

// idParam returns the {id} path parameter of r, or the not-found error when
// it cannot be a message id.
func idParam(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if !store.ValidID(id) {
		return "", errMessageNotFound
	}
	return id, nil
}

// normalizeAddress checks that s (already percent-decoded) is one mailbox
// address and returns it lower-cased; otherwise it returns a reason.
func normalizeAddress(s string) (addr, reason string) {
	switch {
	case s == "":
		return "", "empty"
	case len(s) > maxAddressLen:
		return "", "longer than 254 bytes"
	case !utf8.ValidString(s):
		return "", "not valid UTF-8"
	case strings.Count(s, "@") != 1:
		return "", "must contain exactly one @"
	}
	for _, c := range s {
		if c <= ' ' || c == 0x7f || unicode.IsControl(c) || unicode.IsSpace(c) || c == '/' || c == '\\' {
			return "", "contains a space, control character or slash"
		}
	}
	local, domain, _ := strings.Cut(s, "@")
	switch {
	case local == "":
		return "", "empty local part"
	case len(local) > maxLocalLen:
		return "", "local part longer than 64 bytes"
	case !validDomain(domain):
		return "", "invalid domain"
	}
	return strings.ToLower(s), ""
}

// validDomain accepts a host name (letters, digits, hyphens, non-ASCII
// letters for IDNs, in dot-separated labels of at most 63 bytes) or an
// address literal in brackets.
func validDomain(d string) bool {
	if strings.HasPrefix(d, "[") && strings.HasSuffix(d, "]") && len(d) > 2 {
		lit := strings.TrimPrefix(d[1:len(d)-1], "IPv6:")
		for _, c := range lit {
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || c == '.' || c == ':') {
				return false
			}
		}
		return lit != ""
	}
	if d == "" || len(d) > 253 {
		return false
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c > 0x7f && (unicode.IsLetter(c) || unicode.IsNumber(c) || unicode.IsMark(c))) {
				return false
			}
		}
	}
	return true
}

// domainOf returns the part of addr after the @.
func domainOf(addr string) string {
	_, d, _ := strings.Cut(addr, "@")
	return d
}
