package policy

import (
	"errors"
	"fmt"
	"strings"
)

// checkPattern checks a lower-case allow_from pattern:
//
//	"*"                 any sender, the null sender included
//	"user@example.com"  exactly this address
//	"*@example.com"     any address at example.com
//	"*@*.example.com"   any address at a subdomain of example.com (not example.com itself)
func checkPattern(pat string) error {
	if pat == "*" {
		return nil
	}
	local, domain, ok := strings.Cut(pat, "@")
	if !ok {
		return fmt.Errorf("%q has no @: use \"user@domain\", \"*@domain\", \"*@*.domain\" or \"*\"", pat)
	}
	if strings.Contains(domain, "@") {
		return fmt.Errorf("%q has more than one @", pat)
	}
	switch {
	case local == "":
		return fmt.Errorf("%q has an empty local part", pat)
	case local != "*" && strings.ContainsAny(local, "* \t\r\n\"<>"):
		return fmt.Errorf("%q: the local part is either \"*\" or a whole local part without wildcards", pat)
	}
	if err := checkPatternDomain(strings.TrimPrefix(domain, "*.")); err != nil {
		return fmt.Errorf("%q: %w", pat, err)
	}
	return nil
}

// checkPatternDomain checks the domain of a pattern. It accepts non-ASCII
// labels, for internationalised addresses.
func checkPatternDomain(d string) error {
	if d == "" {
		return errors.New("the domain is empty")
	}
	if strings.Contains(d, "*") {
		return errors.New(`a wildcard is only allowed as "*@*.domain", for subdomains`)
	}
	for label := range strings.SplitSeq(d, ".") {
		if label == "" {
			return errors.New("the domain has an empty label")
		}
		if strings.ContainsAny(label, " \t\r\n<>()[]\\,;:\"") {
			return fmt.Errorf("the domain label %q has a character that no domain has", label)
		}
	}
	return nil
}

// Name returns the credential's label, the SMTP login name.
func (c *Credential) Name() string { return c.Label }

// SenderAllowed reports whether the credential may send as addr (an envelope
// sender or From address; "" is the null sender). Matching ignores case. With
// no allow_from every sender is allowed; the null sender is allowed only then
// or when allow_from has "*".
func (c *Credential) SenderAllowed(addr string) bool {
	if c.AllowFrom == nil {
		return true
	}
	addr = strings.ToLower(addr)
	local, domain := "", ""
	if i := strings.LastIndexByte(addr, '@'); i > 0 && i < len(addr)-1 {
		local, domain = addr[:i], strings.TrimSuffix(addr[i+1:], ".")
	}
	for _, pat := range c.AllowFrom {
		if pat == "*" {
			return true
		}
		if domain == "" {
			continue
		}
		pl, pd, _ := strings.Cut(pat, "@")
		if pl != "*" && pl != local {
			continue
		}
		if sub, ok := strings.CutPrefix(pd, "*."); ok {
			if strings.HasSuffix(domain, "."+sub) {
				return true
			}
		} else if pd == domain {
			return true
		}
	}
	return false
}
