package bounce

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // decode the human part of non-UTF-8 bounces
	"github.com/emersion/go-message/textproto"
	"golang.org/x/net/html"
)

// Limits of ParseDSN.
const (
	MaxHuman      = 4096 // bytes of Report.Human
	MaxRecipients = 1000 // recipients kept from one report
	maxField      = 1000 // bytes of one status field
	maxPartBytes  = 1 << 20
	maxDepth      = 8
	maxParts      = 100
)

// Report is what a bounce says.
type Report struct {
	// Reporting is the Reporting-MTA, without its "dns;" type.
	Reporting string `json:"reporting,omitempty"`
	// Original is the Message-ID of the returned message (from its
	// message/rfc822 or text/rfc822-headers part), as written.
	Original string `json:"original,omitempty"`
	// EnvelopeID is the Original-Envelope-Id (the ENVID given on MAIL FROM).
	EnvelopeID string `json:"envelope_id,omitempty"`
	// Recipients has one entry per per-recipient group of the report, or per
	// recipient paragraph of a plain-text bounce in qmail's QSBMF format.
	Recipients []RecipientStatus `json:"recipients,omitempty"`
	// IsDSN is true when the mail carries a message/delivery-status (or
	// message/global-delivery-status) part, normally as the second part of a
	// multipart/report; report-type=delivery-status.
	IsDSN bool `json:"is_dsn"`
	// Human is the first text part (text/plain, else text/html as text),
	// trimmed, cut before a returned copy of the message, at most MaxHuman
	// bytes of UTF-8 with "\n" line ends.
	Human string `json:"human,omitempty"`
}

// RecipientStatus is the delivery status of one recipient.
type RecipientStatus struct {
	Recipient  string `json:"recipient"`            // Final-Recipient address
	Original   string `json:"original,omitempty"`   // Original-Recipient address
	Action     string `json:"action,omitempty"`     // failed, delayed, delivered, relayed, expanded (lower case)
	Status     string `json:"status,omitempty"`     // enhanced status code, e.g. 5.1.1
	Diagnostic string `json:"diagnostic,omitempty"` // Diagnostic-Code without its "smtp;" type
	RemoteMTA  string `json:"remote_mta,omitempty"` // Remote-MTA without its "dns;" type
	// Permanent is true for a hard bounce: the MTA gave up (Action failed,
	// or no Action) and the status is 5.x.x or absent. A failed action with
	// a 4.x.x status (say 4.4.7, expired in the queue) is a soft bounce.
	Permanent bool `json:"permanent"`
}

// ParseDSN reads a bounce. A delivery status notification (RFC 3464) gives
// IsDSN true and its per-recipient statuses; any other mail (an autoreply, a
// plain-text bounce) gives IsDSN false with Human filled, and no error. The
// error is for input that is not a mail message at all (empty, or a header
// that cannot be read).
func ParseDSN(raw []byte) (*Report, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, errors.New("bounce: empty message")
	}
	e, err := message.Read(bytes.NewReader(raw))
	if e == nil {
		return nil, fmt.Errorf("bounce: reading message header: %w", err)
	}
	w := walker{r: &Report{}}
	w.walk(e, 0)
	r := w.r
	if r.Human == "" && w.html != "" {
		r.Human = w.html
	}
	if !r.IsDSN && len(r.Recipients) == 0 {
		r.Recipients = parseQSBMF(w.firstText)
	}
	if len(r.Recipients) > MaxRecipients {
		r.Recipients = r.Recipients[:MaxRecipients]
	}
	return r, nil
}

type walker struct {
	r         *Report
	parts     int
	html      string // text of the first text/html part, the fallback for Human
	firstText string // the first text/plain part, uncut
}

// walk visits an entity depth-first without descending into returned messages.
func (w *walker) walk(e *message.Entity, depth int) {
	w.parts++
	if depth > maxDepth || w.parts > maxParts {
		return
	}
	mediaType, _, err := e.Header.ContentType()
	if err != nil || mediaType == "" {
		mediaType = "text/plain"
	}
	switch mediaType {
	case "message/delivery-status", "message/global-delivery-status":
		w.r.IsDSN = true
		w.status(readPart(e.Body))
	case "message/rfc822", "message/global", "text/rfc822-headers", "message/global-headers", "text/global-headers":
		if w.r.Original == "" {
			h, _ := textproto.ReadHeader(bufio.NewReader(io.LimitReader(e.Body, maxPartBytes)))
			w.r.Original = clip(strings.TrimSpace(h.Get("Message-Id")), maxField)
		}
	case "text/plain":
		if w.r.Human == "" {
			text := normalize(readPart(e.Body))
			w.firstText = text
			w.r.Human = human(text)
		}
	case "text/html":
		if w.html == "" && w.r.Human == "" {
			w.html = human(htmlText(readPart(e.Body)))
		}
	default:
		mr := e.MultipartReader()
		if mr == nil {
			return
		}
		for {
			p, err := mr.NextPart()
			if p == nil || err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
				return
			}
			w.walk(p, depth+1)
			if w.parts > maxParts {
				return
			}
		}
	}
}

// readPart reads up to maxPartBytes of a part; a decoding error ends it early.
func readPart(r io.Reader) []byte {
	b, _ := io.ReadAll(io.LimitReader(r, maxPartBytes))
	return b
}

// status reads the fields of a message/delivery-status part: a per-message
// group, then one group per recipient, separated by blank lines.
func (w *walker) status(body []byte) {
	for _, g := range fieldGroups(normalize(body)) {
		if v := g["reporting-mta"]; v != "" && w.r.Reporting == "" {
			w.r.Reporting = clip(stripType(v), maxField)
		}
		if v := g["original-envelope-id"]; v != "" && w.r.EnvelopeID == "" {
			w.r.EnvelopeID = clip(v, maxField)
		}
		final, orig := g["final-recipient"], g["original-recipient"]
		if final == "" && orig == "" {
			continue
		}
		if len(w.r.Recipients) >= MaxRecipients {
			return
		}
		rs := RecipientStatus{
			Recipient:  clip(address(final), maxField),
			Original:   clip(address(orig), maxField),
			Action:     strings.ToLower(firstWord(g["action"])),
			Diagnostic: clip(joinMultiline(stripType(g["diagnostic-code"])), maxField),
			RemoteMTA:  clip(stripType(g["remote-mta"]), maxField),
		}
		if rs.Recipient == "" {
			rs.Recipient = rs.Original
		}
		rs.Status = statusCode(g["status"])
		if rs.Status == "" {
			rs.Status = statusFromText(rs.Diagnostic)
		}
		rs.Permanent = permanent(rs.Action, rs.Status)
		w.r.Recipients = append(w.r.Recipients, rs)
	}
}

// permanent says whether a status is a hard bounce.
func permanent(action, status string) bool {
	switch action {
	case "failed":
		return status == "" || status[0] == '5'
	case "":
		return status != "" && status[0] == '5'
	}
	return false
}

// fieldGroups splits header-style text into groups of fields (lower-case
// names; the first occurrence of a name wins; folded lines are joined).
func fieldGroups(text string) []map[string]string {
	var groups []map[string]string
	var cur map[string]string
	var last string
	for _, line := range strings.Split(text, "\n") {
		switch {
		case strings.TrimSpace(line) == "":
			cur, last = nil, ""
		case line[0] == ' ' || line[0] == '\t':
			if cur != nil && last != "" && len(cur[last]) < maxField {
				cur[last] += " " + strings.TrimSpace(line)
			}
		default:
			name, value, ok := strings.Cut(line, ":")
			name = strings.ToLower(strings.TrimSpace(name))
			if !ok || name == "" || strings.ContainsAny(name, " \t") {
				last = ""
				continue
			}
			if cur == nil {
				cur = map[string]string{}
				groups = append(groups, cur)
			}
			if _, dup := cur[name]; dup {
				last = ""
				continue
			}
			cur[name], last = strings.TrimSpace(value), name
		}
	}
	return groups
}

var typeRE = regexp.MustCompile(`^\s*[A-Za-z][A-Za-z0-9-]*\s*;\s*`)

var multilineRE = regexp.MustCompile(`^(\d{3})-(\d\.\d{1,3}\.\d{1,3}\s)?`)

// joinMultiline turns an unfolded multiline SMTP reply ("550-5.1.1 a
// 550-5.1.1 b 550 5.1.1 c") into one ("550 5.1.1 a b c").
func joinMultiline(v string) string {
	m := multilineRE.FindStringSubmatch(v)
	if m == nil {
		return v
	}
	cont := regexp.MustCompile(`\s+` + m[1] + `[- ](?:` + regexp.QuoteMeta(strings.TrimSpace(m[2])) + `\s+)?`)
	return m[1] + " " + m[2] + strings.TrimLeft(cont.ReplaceAllString(v[len(m[0]):], " "), " ")
}

// stripType removes an RFC 3464 type ("rfc822;", "dns;", "smtp;") in front of a value.
func stripType(v string) string {
	return strings.TrimSpace(typeRE.ReplaceAllString(v, ""))
}

// address is a recipient field value without its type and angle brackets.
func address(v string) string {
	v = stripType(v)
	if strings.HasPrefix(v, "<") && strings.HasSuffix(v, ">") {
		v = v[1 : len(v)-1]
	}
	return strings.TrimSpace(v)
}

func firstWord(v string) string {
	if f := strings.Fields(v); len(f) > 0 {
		return f[0]
	}
	return ""
}

var (
	statusRE   = regexp.MustCompile(`^\s*([245]\.\d{1,3}\.\d{1,3})\b`)
	enhancedRE = regexp.MustCompile(`(?:^|[\s(#\[])([245]\.\d{1,3}\.\d{1,3})\b`)
	replyRE    = regexp.MustCompile(`^\s*([245])\d\d\b`)
)

// statusCode reads the Status field: "5.1.1", possibly followed by a comment.
func statusCode(v string) string {
	if m := statusRE.FindStringSubmatch(v); m != nil {
		return m[1]
	}
	return ""
}

// statusFromText finds an enhanced status code in a diagnostic, or makes
// x.0.0 from its reply code.
func statusFromText(v string) string {
	if m := enhancedRE.FindStringSubmatch(v); m != nil {
		return m[1]
	}
	if m := replyRE.FindStringSubmatch(v); m != nil {
		return m[1] + ".0.0"
	}
	return ""
}

// normalize makes valid UTF-8 with "\n" line ends.
func normalize(b []byte) string {
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.ReplaceAll(s, "\r", "\n")
}

// copyMarkers start the returned copy of the message in plain-text bounces.
var copyMarkers = []string{
	"--- Below this line is a copy of the message.",                           // qmail
	"------ This is a copy of the message, including all the headers. ------", // Exim
	"----- Original message -----",
}

// human trims text, cuts it before a returned copy and to MaxHuman bytes.
func human(text string) string {
	for _, m := range copyMarkers {
		if i := strings.Index(text, m); i >= 0 {
			text = text[:i]
		}
	}
	text = blankLinesRE.ReplaceAllString(text, "\n\n")
	return clip(strings.TrimSpace(text), MaxHuman)
}

// htmlText is the visible text of an HTML part.
func htmlText(b []byte) string {
	var sb strings.Builder
	z := html.NewTokenizer(bytes.NewReader(b))
	skip := 0
	for {
		switch z.Next() {
		case html.ErrorToken:
			return normalize([]byte(collapse(sb.String())))
		case html.TextToken:
			if skip == 0 {
				sb.Write(z.Text())
			}
		case html.StartTagToken, html.EndTagToken, html.SelfClosingTagToken:
			tok := z.Token()
			switch tok.Data {
			case "script", "style", "head", "title":
				if tok.Type == html.StartTagToken {
					skip++
				} else if tok.Type == html.EndTagToken && skip > 0 {
					skip--
				}
			case "br", "p", "div", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table", "blockquote":
				sb.WriteByte('\n')
			}
		}
		if sb.Len() > maxPartBytes {
			return normalize([]byte(collapse(sb.String())))
		}
	}
}

var spaceRE = regexp.MustCompile(`[ \t\r\f\v\x{00a0}]+`)
var blankLinesRE = regexp.MustCompile(`\n\s*\n\s*(\n\s*)+`)

// collapse squeezes runs of blanks and of empty lines.
func collapse(s string) string {
	s = spaceRE.ReplaceAllString(s, " ")
	s = strings.ReplaceAll(s, " \n", "\n")
	s = strings.ReplaceAll(s, "\n ", "\n")
	return blankLinesRE.ReplaceAllString(s, "\n\n")
}

// clip cuts s to at most n bytes on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

var qmailAddrRE = regexp.MustCompile(`^<([^<>\s]+)>:\s*(.*)$`)

// parseQSBMF reads the recipient paragraphs of a qmail bounce (QSBMF,
// https://cr.yp.to/proto/qsbmf.txt): after "Hi. This is the qmail-send
// program", each paragraph starting "<address>:" is a failed recipient.
func parseQSBMF(text string) []RecipientStatus {
	if !strings.HasPrefix(strings.TrimSpace(text), "Hi. This is the qmail-send program") {
		return nil
	}
	if i := strings.Index(text, copyMarkers[0]); i >= 0 {
		text = text[:i]
	}
	var out []RecipientStatus
	for _, para := range strings.Split(text, "\n\n") {
		para = strings.TrimSpace(para)
		first, rest, _ := strings.Cut(para, "\n")
		m := qmailAddrRE.FindStringSubmatch(first)
		if m == nil {
			continue
		}
		diag := strings.Join(strings.Fields(m[2]+" "+rest), " ")
		rs := RecipientStatus{
			Recipient:  clip(m[1], maxField),
			Action:     "failed",
			Diagnostic: clip(diag, maxField),
			Status:     statusFromText(diag),
		}
		rs.Permanent = permanent(rs.Action, rs.Status)
		out = append(out, rs)
		if len(out) >= MaxRecipients {
			break
		}
	}
	return out
}
