package sqlite

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/smtpgate/smtpgate/store"
	"github.com/smtpgate/smtpgate/summary"
)

// Listing limits of store.SearchQuery.
const (
	defaultSearchLimit = 50
	maxSearchLimit     = 1000
)

// searchRow is the search table's row of a captured message: the fields a
// SearchQuery matches, lower-cased (Unicode) by Go so that matching is
// case-insensitive beyond ASCII, in one dense table that a search scans
// newest first without touching the messages' JSON or bodies.
type searchRow struct {
	attach                      bool
	sender, rcpt, subject, text string
}

// insertSearch adds a captured message's search row.
const insertSearch = `INSERT INTO search (seq, login, received, attach, sender, rcpt, subject, text) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`

// newSearchRow lower-cases what Search matches in msg. Items of a list are
// separated by newlines, which a needle of one line cannot span.
func newSearchRow(msg *store.Message) *searchRow {
	var sender, rcpt strings.Builder
	sender.WriteString(msg.MailFrom)
	addresses(&sender, msg.Summary.From)
	for i, r := range msg.Recipients {
		if i > 0 {
			rcpt.WriteByte('\n')
		}
		rcpt.WriteString(r)
	}
	addresses(&rcpt, msg.Summary.To)
	addresses(&rcpt, msg.Summary.Cc)
	return &searchRow{
		attach:  len(msg.Summary.Attachments) > 0,
		sender:  toLower(sender.String()),
		rcpt:    toLower(rcpt.String()),
		subject: toLower(msg.Summary.Subject),
		text:    toLower(msg.Text),
	}
}

// toLower is strings.ToLower with a fast path for ASCII text (the common
// case of a message body), eight bytes at a time: strings.ToLower appends
// byte by byte, which cost as much as the rest of the search row.
func toLower(s string) string {
	const ones, high = 0x0101010101010101, 0x8080808080808080
	b := []byte(s)
	i := 0
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		if x&high != 0 {
			return strings.ToLower(s)
		}
		// A byte's high bit in a: it is >= 'A'; in z: it is > 'Z'.
		a := x + (0x80-'A')*ones
		z := x + (0x80-'Z'-1)*ones
		binary.LittleEndian.PutUint64(b[i:], x|(a&^z&high)>>2)
	}
	for ; i < len(b); i++ {
		c := b[i]
		if c >= utf8.RuneSelf {
			return strings.ToLower(s)
		}
		if c-'A' < 26 {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// addresses appends the names and addresses of list, one per line.
func addresses(b *strings.Builder, list []summary.Address) {
	for _, a := range list {
		b.WriteByte('\n')
		b.WriteString(a.Name)
		b.WriteByte('\n')
		b.WriteString(a.Address)
	}
}

// likePattern makes a LIKE pattern (with ESCAPE '\') that matches s,
// lower-cased, as a substring of a lower-cased column.
func likePattern(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(strings.ToLower(s)) + "%"
}

// Search finds captured messages (without Raw, Original and Text), each
// once. Every non-zero field of q narrows the result; string matches are
// case-insensitive substrings. With AfterSeq the result is oldest first
// from AfterSeq, otherwise newest first below BeforeSeq. The search table
// is scanned in Seq order (through one inbox's index when q.Inbox is set)
// and the scan stops at the limit.
func (db *DB) Search(ctx context.Context, q store.SearchQuery) ([]*store.Message, error) {
	if !scopeSeesAnything(q.Scope) {
		return []*store.Message{}, nil
	}
	limit := q.Limit
	if limit <= 0 {
		limit = defaultSearchLimit
	}
	limit = min(limit, maxSearchLimit)
	var where []string
	var args []any
	add := func(cond string, a ...any) {
		where = append(where, cond)
		args = append(args, a...)
	}
	from, seq := `search s JOIN messages m ON m.seq = s.seq`, `s.seq`
	if q.Inbox != "" {
		from, seq = `inbox i JOIN search s ON s.seq = i.seq JOIN messages m ON m.seq = i.seq`, `i.seq`
		add(`i.inbox = ?`, store.NormalizeInbox(q.Inbox))
	}
	if !q.Scope.All {
		logins, err := json.Marshal(q.Scope.Logins)
		if err != nil {
			return nil, fmt.Errorf("sqlite: search: %w", err)
		}
		add(`s.login IN (SELECT value FROM json_each(?))`, logins)
	}
	if q.Login != "" {
		add(`s.login = ?`, q.Login)
	}
	if q.From != "" {
		add(`s.sender LIKE ? ESCAPE '\'`, likePattern(q.From))
	}
	if q.To != "" {
		add(`s.rcpt LIKE ? ESCAPE '\'`, likePattern(q.To))
	}
	if q.Subject != "" {
		add(`s.subject LIKE ? ESCAPE '\'`, likePattern(q.Subject))
	}
	if q.Text != "" {
		p := likePattern(q.Text)
		add(`(s.subject LIKE ? ESCAPE '\' OR s.text LIKE ? ESCAPE '\')`, p, p)
	}
	if q.Tag != "" {
		add(`EXISTS (SELECT 1 FROM json_each(m.tags) t WHERE t.value = ?)`, q.Tag)
	}
	if !q.Since.IsZero() {
		add(`s.received >= ?`, q.Since.UnixMilli())
	}
	if !q.Until.IsZero() {
		add(`s.received < ?`, q.Until.UnixMilli())
	}
	if q.HasAttachment != nil {
		add(`s.attach = ?`, *q.HasAttachment)
	}
	order := `DESC`
	if q.AfterSeq > 0 {
		add(seq+` > ?`, q.AfterSeq)
		order = `ASC`
	} else if q.BeforeSeq > 0 {
		add(seq+` < ?`, q.BeforeSeq)
	}
	query := `SELECT ` + messageColumns + ` FROM ` + from
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	query += ` ORDER BY ` + seq + ` ` + order + ` LIMIT ?`
	rows, err := db.rdb.QueryContext(ctx, query, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: search: %w", err)
	}
	defer rows.Close()
	out := []*store.Message{}
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: search: %w", err)
		}
		if q.Scope.Allows(m.Login) && m.Route == store.RouteCapture {
			out = append(out, m) // the SQL filter already did this; never trust one check
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: search: %w", err)
	}
	return out, nil
}
