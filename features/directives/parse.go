package directives

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/mail"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/smtpgate/smtpgate/features"
)

// Ranks: lower wins when two directives set the same thing.
const (
	rankOwn = iota
	rankVendor
	rankVendorGeneral
)

// classify returns a directive for a lower-cased header name, or nil when the
// header is not one to strip.
func classify(key string, prefixes []string, vendors map[string]bool) *directive {
	for _, p := range prefixes {
		if strings.HasPrefix(key, p) {
			return own(key[len(p):])
		}
	}
	switch {
	case vendors[Mailgun] && strings.HasPrefix(key, "x-mailgun-"):
		return mailgun(key[len("x-mailgun-"):])
	case vendors[Postmark] && strings.HasPrefix(key, "x-pm-"):
		return postmark(key[len("x-pm-"):])
	case vendors[EmailEngine] && strings.HasPrefix(key, "x-ee-"):
		return emailEngine(key[len("x-ee-"):])
	case vendors[SendGrid] && key == "x-smtpapi":
		return &directive{name: "sendgrid:x-smtpapi", dedup: "sendgrid:x-smtpapi", rank: rankVendor, parse: parseSMTPAPI}
	}
	return nil
}

// boolFeature is a directive that sets one or more features to one boolean.
func boolFeature(names ...string) func(*directive) {
	return func(d *directive) {
		v, ok := parseBool(d.value)
		if !ok {
			d.fail("want true or false, got %s", quote(d.value))
			return
		}
		d.set(v, names...)
	}
}

func unknown(reason string) func(*directive) {
	return func(d *directive) { d.ignore(reason) }
}

// own maps the name after an own prefix (lower case) to a directive.
func own(name string) *directive {
	d := &directive{name: name, dedup: name, rank: rankOwn}
	switch name {
	case "inlinecss", "inlinizecss":
		d.name, d.dedup, d.parse = "inlinecss", "inlinecss", boolFeature(features.InlineCSS)
	case "trackclicks":
		d.parse = boolFeature(features.TrackClicks)
	case "tracktext":
		d.parse = boolFeature(features.TrackTextLinks)
	case "trackopens":
		d.parse = boolFeature(features.TrackOpens)
	case "trackbounces":
		d.parse = boolFeature(features.TrackBounces)
	case "preventscam":
		d.parse = boolFeature(features.PreventScam)
	case "tags":
		d.parse = parseTagList
	case "send-at":
		d.parse = func(d *directive) {
			t, err := time.Parse(time.RFC3339, strings.TrimSpace(d.value))
			if err != nil {
				d.fail("want an RFC 3339 time such as 2030-01-02T15:04:05Z, got %s", quote(d.value))
				return
			}
			d.setSendAt(t)
		}
	default:
		if key, ok := strings.CutPrefix(name, "metadata-"); ok {
			d.name = "metadata"
			d.parse = func(d *directive) { d.metaValue(key) }
			break
		}
		d.dedup = ""
		d.parse = unknown("unknown directive")
	}
	return d
}

func mailgun(name string) *directive {
	d := &directive{name: Mailgun + ":" + name, dedup: Mailgun + ":" + name, rank: rankVendor}
	switch name {
	case "track":
		d.rank = rankVendorGeneral
		d.parse = boolFeature(features.TrackClicks, features.TrackTextLinks, features.TrackOpens)
	case "track-clicks":
		d.parse = func(d *directive) {
			switch v := strings.ToLower(strings.TrimSpace(d.value)); v {
			case "htmlonly":
				d.set(true, features.TrackClicks)
				d.set(false, features.TrackTextLinks)
			default:
				b, ok := parseBool(v)
				if !ok {
					d.fail("want yes, no or htmlonly, got %s", quote(d.value))
					return
				}
				d.set(b, features.TrackClicks, features.TrackTextLinks)
			}
		}
	case "track-opens":
		d.parse = boolFeature(features.TrackOpens)
	case "tag":
		d.dedup = "" // repeatable
		d.parse = func(d *directive) {
			t, err := checkTag(decodeWords(d.value))
			switch {
			case err != nil:
				d.fail("%v", err)
			case t == "":
				d.ignore("empty tag")
			default:
				d.tags = []string{t}
			}
		}
	case "deliver-by":
		d.parse = func(d *directive) {
			t, err := mail.ParseDate(strings.TrimSpace(d.value))
			if err != nil {
				d.fail("want an RFC 2822 date such as Thu, 13 Oct 2011 18:02:00 GMT, got %s", quote(d.value))
				return
			}
			d.setSendAt(t)
		}
	case "variables":
		d.parse = func(d *directive) {
			obj, ok := d.jsonObject(d.value)
			if ok {
				d.metaObject(obj, "variable")
			}
		}
	default:
		d.dedup = ""
		d.parse = unknown("Mailgun header not supported")
	}
	return d
}

func postmark(name string) *directive {
	d := &directive{name: Postmark + ":" + name, dedup: Postmark + ":" + name, rank: rankVendor}
	switch name {
	case "trackopens":
		d.parse = boolFeature(features.TrackOpens)
	case "tracklinks":
		d.parse = func(d *directive) {
			var html, text bool
			switch strings.ToLower(strings.TrimSpace(d.value)) {
			case "none":
			case "htmlandtext":
				html, text = true, true
			case "htmlonly":
				html = true
			case "textonly":
				text = true
			default:
				d.fail("want None, HtmlAndText, HtmlOnly or TextOnly, got %s", quote(d.value))
				return
			}
			d.set(html, features.TrackClicks)
			d.set(text, features.TrackTextLinks)
		}
	case "tag":
		d.parse = func(d *directive) {
			t, err := checkTag(decodeWords(d.value))
			switch {
			case err != nil:
				d.fail("%v", err)
			case t == "":
				d.ignore("empty tag")
			default:
				d.tags = []string{t}
			}
		}
	default:
		if key, ok := strings.CutPrefix(name, "metadata-"); ok {
			d.name = Postmark + ":metadata"
			d.parse = func(d *directive) { d.metaValue(key) }
			break
		}
		d.dedup = ""
		d.parse = unknown("Postmark header not supported")
	}
	return d
}

func emailEngine(name string) *directive {
	d := &directive{name: EmailEngine + ":" + name, dedup: EmailEngine + ":" + name, rank: rankVendor}
	switch name {
	case "send-at":
		d.parse = func(d *directive) {
			t, ok := parseISOOrMillis(strings.TrimSpace(d.value))
			if !ok {
				d.fail("want an ISO 8601 time or epoch milliseconds, got %s", quote(d.value))
				return
			}
			d.setSendAt(t)
		}
	case "tracking-enabled":
		d.rank = rankVendorGeneral
		d.parse = boolFeature(features.TrackClicks, features.TrackTextLinks, features.TrackOpens)
	default:
		d.dedup = ""
		d.parse = unknown("EmailEngine header not supported")
	}
	return d
}

// parseSMTPAPI reads SendGrid's X-SMTPAPI JSON object.
func parseSMTPAPI(d *directive) {
	obj, ok := d.jsonObject(d.value)
	if !ok {
		return
	}
	var unsupported []string
	for _, k := range sortedKeys(obj) {
		v := obj[k]
		switch k {
		case "filters":
			var filters map[string]json.RawMessage
			if json.Unmarshal(v, &filters) != nil || filters == nil {
				d.fail("filters: want a JSON object")
				return
			}
			for _, name := range sortedKeys(filters) {
				if name != "clicktrack" && name != "opentrack" {
					unsupported = append(unsupported, "filters."+name)
					continue
				}
				var f struct {
					Settings map[string]json.RawMessage `json:"settings"`
				}
				if json.Unmarshal(filters[name], &f) != nil {
					d.fail("filters.%s: want {\"settings\": {...}}", name)
					return
				}
				if !d.smtpapiFilter(name, f.Settings) {
					return
				}
			}
		case "category":
			var one string
			var many []string
			switch {
			case json.Unmarshal(v, &one) == nil:
				many = []string{one}
			case json.Unmarshal(v, &many) == nil:
			default:
				d.fail("category: want a string or an array of strings")
				return
			}
			for _, c := range many {
				t, err := checkTag(c)
				if err != nil {
					d.fail("category: %v", err)
					return
				}
				if t != "" && !slices.Contains(d.tags, t) {
					d.tags = append(d.tags, t)
				}
			}
		case "unique_args":
			var args map[string]json.RawMessage
			if json.Unmarshal(v, &args) != nil || args == nil {
				d.fail("unique_args: want a JSON object")
				return
			}
			if !d.metaObject(args, "unique_args") {
				return
			}
		case "send_at":
			n, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil || n <= 0 || n > maxEpochMillis/1000 {
				d.fail("send_at: want unix seconds, got %s", quote(string(v)))
				return
			}
			d.setSendAt(time.Unix(n, 0))
		default:
			unsupported = append(unsupported, k)
		}
	}
	if len(unsupported) > 0 {
		d.note("not supported: %s", strings.Join(unsupported, ", "))
	}
}

// smtpapiFilter maps filters.clicktrack / filters.opentrack settings.
func (d *directive) smtpapiFilter(name string, settings map[string]json.RawMessage) bool {
	flag := func(key string) (value, present bool) {
		raw, ok := settings[key]
		if !ok {
			return false, false
		}
		b, ok := jsonFlag(raw)
		if !ok {
			d.fail("filters.%s.settings.%s: want 0 or 1, got %s", name, key, quote(string(raw)))
			return false, false
		}
		return b, true
	}
	enable, hasEnable := flag("enable")
	if d.outcome == Malformed {
		return false
	}
	if name == "opentrack" {
		if hasEnable {
			d.set(enable, features.TrackOpens)
		}
		return true
	}
	text, hasText := flag("enable_text")
	if d.outcome == Malformed {
		return false
	}
	switch {
	case hasEnable:
		d.set(enable, features.TrackClicks)
		d.set(enable && text, features.TrackTextLinks)
	case hasText:
		d.set(text, features.TrackTextLinks)
	}
	return true
}

// jsonFlag reads 0/1, true/false or a boolean string.
func jsonFlag(raw json.RawMessage) (bool, bool) {
	var b bool
	if json.Unmarshal(raw, &b) == nil {
		return b, true
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		switch n {
		case "0":
			return false, true
		case "1":
			return true, true
		}
		return false, false
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return parseBool(s)
	}
	return false, false
}

// jsonObject decodes a JSON object no larger than MaxJSON.
func (d *directive) jsonObject(v string) (map[string]json.RawMessage, bool) {
	if len(v) > MaxJSON {
		d.fail("%d bytes of JSON, more than the %d allowed", len(v), MaxJSON)
		return nil, false
	}
	dec := json.NewDecoder(strings.NewReader(v))
	dec.UseNumber()
	var obj map[string]json.RawMessage
	if err := dec.Decode(&obj); err != nil || obj == nil {
		d.fail("want a JSON object")
		return nil, false
	}
	if _, err := dec.Token(); err == nil {
		d.fail("data after the JSON object")
		return nil, false
	}
	return obj, true
}

// metaObject turns a JSON object into metadata (keys in sorted order).
func (d *directive) metaObject(obj map[string]json.RawMessage, what string) bool {
	for _, k := range sortedKeys(obj) {
		if err := checkMetaKey(k); err != nil {
			d.fail("%s %v", what, err)
			return false
		}
		v := jsonText(obj[k])
		if err := checkMetaValue(v); err != nil {
			d.fail("%s %s: %v", what, quote(k), err)
			return false
		}
		d.meta = append(d.meta, kv{k, v})
	}
	return true
}

// metaValue reads a metadata-<key> header; header names are case-insensitive,
// so the key is lower case.
func (d *directive) metaValue(key string) {
	d.dedup = d.name + "-" + key
	if err := checkMetaKey(key); err != nil {
		d.fail("metadata %v", err)
		return
	}
	v := strings.TrimSpace(decodeWords(d.value))
	if err := checkMetaValue(v); err != nil {
		d.fail("metadata %s: %v", quote(key), err)
		return
	}
	d.meta = []kv{{key, v}}
}

// jsonText is a JSON value as metadata text: strings unquoted, the rest compact.
func jsonText(raw json.RawMessage) string {
	var s string
	if len(raw) > 0 && raw[0] == '"' && json.Unmarshal(raw, &s) == nil {
		return s
	}
	var b bytes.Buffer
	if json.Compact(&b, raw) == nil {
		return b.String()
	}
	return string(raw)
}

func (d *directive) setSendAt(t time.Time) {
	t = t.UTC()
	if t.Year() < 1970 || t.Year() > 9999 {
		d.fail("send time %s is out of range", quote(d.value))
		return
	}
	d.sendAt = t
}

// parseTagList reads a comma list of tags.
func parseTagList(d *directive) {
	for _, t := range strings.Split(decodeWords(d.value), ",") {
		t, err := checkTag(t)
		if err != nil {
			d.fail("%v", err)
			return
		}
		if t != "" && !slices.Contains(d.tags, t) {
			d.tags = append(d.tags, t)
		}
	}
	if len(d.tags) == 0 {
		d.ignore("no tags in value")
	}
}

func checkTag(t string) (string, error) {
	t = strings.TrimSpace(t)
	if len(t) > MaxTagLen {
		return "", fmt.Errorf("tag %s is longer than %d bytes", quote(t), MaxTagLen)
	}
	if !printable(t) {
		return "", fmt.Errorf("tag %s has control characters or invalid UTF-8", quote(t))
	}
	return t, nil
}

func checkMetaKey(k string) error {
	switch {
	case k == "":
		return fmt.Errorf("key is empty")
	case len(k) > MaxMetadataKey:
		return fmt.Errorf("key %s is longer than %d bytes", quote(k), MaxMetadataKey)
	case !printable(k):
		return fmt.Errorf("key %s has control characters or invalid UTF-8", quote(k))
	}
	return nil
}

func checkMetaValue(v string) error {
	switch {
	case len(v) > MaxMetadataValue:
		return fmt.Errorf("value is longer than %d bytes", MaxMetadataValue)
	case !printable(v):
		return fmt.Errorf("value has control characters or invalid UTF-8")
	}
	return nil
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// parseBool reads true/false, yes/no, 1/0 and on/off in any case.
func parseBool(v string) (bool, bool) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true", "yes", "1", "on":
		return true, true
	case "false", "no", "0", "off":
		return false, true
	}
	return false, false
}

// parseISOOrMillis reads EmailEngine's X-EE-Send-At: epoch milliseconds or an
// ISO 8601 date-time (no zone means UTC).
func parseISOOrMillis(v string) (time.Time, bool) {
	if v != "" && strings.Trim(v, "0123456789") == "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n > maxEpochMillis {
			return time.Time{}, false
		}
		return time.UnixMilli(n), true
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// decodeWords decodes RFC 2047 encoded words; undecodable text stays as is.
func decodeWords(s string) string {
	if !strings.Contains(s, "=?") {
		return s
	}
	var dec mime.WordDecoder
	if out, err := dec.DecodeHeader(s); err == nil {
		return out
	}
	return s
}

// quote renders a value for a Reason: a Go-quoted ASCII string of at most
// about maxReasonValue bytes, so that a Reason fits an SMTP reply.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		var q string
		switch r {
		case '"':
			q = `\"`
		case '\'':
			q = "'"
		default:
			q = strconv.QuoteRuneToASCII(r)
			q = q[1 : len(q)-1]
		}
		if b.Len()+len(q) > maxReasonValue {
			b.WriteString("...")
			break
		}
		b.WriteString(q)
	}
	b.WriteByte('"')
	return b.String()
}

func quoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = quote(s)
	}
	return strings.Join(q, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
