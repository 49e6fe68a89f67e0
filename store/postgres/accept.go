package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/smtpgate/smtpgate/store"
)

// request is one Accept, AddEvents or CompleteAttempt for the group
// committer.
type request struct {
	row      *row  // an Accept, or
	events   []any // the arguments of insertEvents for an AddEvents, or
	complete []any // the arguments of completeAttempt for a CompleteAttempt
	nEvent   int   // the number of events given to AddEvents or CompleteAttempt
	size     int   // raw bytes, for the batch limit
}

// requestSize is what a request counts against maxBatchBytes.
func requestSize(r *request) int { return r.size }

// result is what a writer reports for one request.
type result struct {
	seq         int64    // Accept: the message's Seq
	eventSeqs   []int64  // the Seqs of the events, in the order given
	logins      []string // AddEvents: the Login of each event
	deliveryIDs []int64  // Accept: the delivery ids, in the order given
	messageID   string   // CompleteAttempt: the delivery's message
	login       string   // CompleteAttempt: the delivery's login
	err         error    // AddEvents, CompleteAttempt: the write failed alone
}

// row is one message encoded for the batch statements, made by the
// caller's goroutine so that a writer only gathers columns.
type row struct {
	id, login, route, mailFrom, remoteIP, helo string
	recipients, tags                           string // JSON arrays
	tls                                        bool
	received                                   time.Time
	size                                       int64
	summary, metadata, processing              string // JSON
	text, returnPath                           string
	sendAt                                     pgtype.Timestamptz
	subject, fromText, toText                  string
	hasAttachment                              bool
	raw, original                              []byte
	inboxes                                    []string
	events                                     []eventRow
	deliveries                                 []deliveryRow
	created                                    time.Time // of the deliveries
}

// eventRow is one of Message.Events, encoded.
type eventRow struct {
	typ, recipient, ip, userAgent, url, reply, detail string
	time                                              time.Time
}

// deliveryRow is one of Message.Deliveries, encoded.
type deliveryRow struct {
	route, domain, recipients, state, lastReply string
	attempts                                    int32
	next, expires                               time.Time
}

// The statements of a group commit, each for every message of the batch
// at once: the columns are sent as arrays and unnested in order. The
// identity columns draw their values in that order (the INSERT computes
// them above the ordered SELECT), so sorted RETURNING values map back to
// the input.
const (
	lockSeq = `SELECT pg_advisory_xact_lock($1)`

	insertBodies = `INSERT INTO bodies (id, raw, original)
SELECT * FROM unnest($1::text[], $2::bytea[], $3::bytea[])`

	insertMessages = `
INSERT INTO messages (id, login, route, mail_from, recipients, remote_ip, helo, tls, received, size,
	summary, tags, body_text, return_path, metadata, send_at, processing, subject, from_text, to_text, has_attachment)
SELECT x.id, x.login, x.route, x.mail_from,
	ARRAY(SELECT e FROM jsonb_array_elements_text(x.recipients::jsonb) WITH ORDINALITY AS r(e, n) ORDER BY n),
	x.remote_ip, x.helo, x.tls, x.received, x.size, x.summary::jsonb,
	ARRAY(SELECT e FROM jsonb_array_elements_text(x.tags::jsonb) WITH ORDINALITY AS t(e, n) ORDER BY n),
	x.body_text, x.return_path, x.metadata::jsonb, x.send_at, x.processing::jsonb, x.subject, x.from_text, x.to_text,
	x.has_attachment
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::boolean[],
	$9::timestamptz[], $10::bigint[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[],
	$16::timestamptz[], $17::text[], $18::text[], $19::text[], $20::text[], $21::boolean[])
	WITH ORDINALITY AS x(id, login, route, mail_from, recipients, remote_ip, helo, tls, received, size, summary, tags,
		body_text, return_path, metadata, send_at, processing, subject, from_text, to_text, has_attachment, ord)
ORDER BY x.ord
RETURNING seq`

	insertInboxes = `INSERT INTO inbox (inbox, seq, message_id, login, received)
SELECT x.inbox, m.seq, m.id, m.login, m.received
FROM unnest($1::text[], $2::text[]) AS x(id, inbox) JOIN messages m ON m.id = x.id`

	insertMessageEvents = `
INSERT INTO events (message_id, login, type, recipient, time, ip, user_agent, url, reply, detail)
SELECT m.id, m.login, x.type, x.recipient, x.time, x.ip, x.ua, x.url, x.reply, x.detail
FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])
	WITH ORDINALITY AS x(id, type, recipient, time, ip, ua, url, reply, detail, ord)
JOIN messages m ON m.id = x.id
ORDER BY x.ord
RETURNING seq`

	insertDeliveries = `
INSERT INTO deliveries (message_id, login, route, domain, recipients, state, attempts, next_attempt, expires,
	last_reply, created, updated)
SELECT m.id, m.login, x.route, x.domain, x.recipients::jsonb, x.state, x.attempts, x.next, x.expires, x.reply,
	x.created, x.created
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::integer[], $7::timestamptz[],
	$8::timestamptz[], $9::text[], $10::timestamptz[])
	WITH ORDINALITY AS x(id, route, domain, recipients, state, attempts, next, expires, reply, created, ord)
JOIN messages m ON m.id = x.id
ORDER BY x.ord
RETURNING id`
)

// Accept commits msg durably with its inbox entries (capture route), its
// Events and its Deliveries, and sets msg.Seq and the fields the store
// assigns to events and deliveries. It waits in the writers' queue; if ctx
// ends while the message is still queued, Accept returns the context's
// error and the message is not stored. Once its group is being committed,
// Accept reports the true outcome whatever ctx does.
func (db *DB) Accept(ctx context.Context, msg *store.Message) error {
	req, created, err := encodeRequest(msg, time.Now().UTC())
	if err != nil {
		return err
	}
	res, err := db.commits.Submit(ctx, req)
	if err != nil {
		return fmt.Errorf("postgres: accept %s: %w", msg.ID, err)
	}
	if len(res.eventSeqs) != len(msg.Events) || len(res.deliveryIDs) != len(msg.Deliveries) {
		// Cannot happen: the statement inserts one row per element.
		return fmt.Errorf("postgres: accept %s: committed %d events and %d deliveries of %d and %d",
			msg.ID, len(res.eventSeqs), len(res.deliveryIDs), len(msg.Events), len(msg.Deliveries))
	}
	msg.Seq = res.seq
	for i, ev := range msg.Events {
		ev.Seq, ev.MessageID, ev.Login = res.eventSeqs[i], msg.ID, msg.Login
	}
	for i, d := range msg.Deliveries {
		d.ID, d.MessageID, d.Login, d.Created, d.Updated = res.deliveryIDs[i], msg.ID, msg.Login, created, created
	}
	return nil
}

// encodeRequest validates msg and encodes it for a writer. created is the
// time recorded as its deliveries' Created and Updated.
func encodeRequest(msg *store.Message, now time.Time) (req *request, created time.Time, err error) {
	if msg == nil || msg.ID == "" {
		return nil, time.Time{}, errors.New("postgres: accept: message without an id")
	}
	fail := func(what string, err error) (*request, time.Time, error) {
		return nil, time.Time{}, fmt.Errorf("postgres: accept %s: encode %s: %w", msg.ID, what, err)
	}
	jsonText := func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(cleanJSON(b)), err
	}
	created = msg.Received.UTC()
	if created.IsZero() {
		created = now
	}
	r := row{
		id: clean(msg.ID), login: clean(msg.Login), route: clean(msg.Route), mailFrom: clean(msg.MailFrom),
		remoteIP: clean(msg.RemoteIP), helo: clean(msg.Helo), tls: msg.TLS, received: msg.Received, size: msg.Size,
		text: clean(msg.Text), returnPath: clean(msg.ReturnPath),
		sendAt:  pgtype.Timestamptz{Time: msg.SendAt, Valid: !msg.SendAt.IsZero()},
		subject: clean(msg.Summary.Subject), fromText: clean(fromText(msg)), toText: clean(toText(msg)),
		hasAttachment: len(msg.Summary.Attachments) > 0,
		raw:           nonNilSlice(msg.Raw), original: nilIfEmpty(msg.Original),
		created: created,
	}
	if r.recipients, err = jsonText(cleanAll(msg.Recipients)); err != nil {
		return fail("recipients", err)
	}
	if r.tags, err = jsonText(cleanAll(msg.Tags)); err != nil {
		return fail("tags", err)
	}
	if r.summary, err = jsonText(msg.Summary); err != nil {
		return fail("summary", err)
	}
	if r.metadata, err = jsonText(nonNilMap(msg.Metadata)); err != nil {
		return fail("metadata", err)
	}
	if r.processing, err = jsonText(msg.Processing); err != nil {
		return fail("processing", err)
	}
	if msg.Route == store.RouteCapture {
		r.inboxes = store.Inboxes(cleanAll(msg.Recipients))
	}
	for _, ev := range msg.Events {
		if ev == nil {
			return fail("events", errors.New("nil event"))
		}
		r.events = append(r.events, eventRow{typ: clean(ev.Type), recipient: clean(ev.Recipient), ip: clean(ev.IP),
			userAgent: clean(ev.UserAgent), url: clean(ev.URL), reply: clean(ev.Reply), detail: clean(ev.Detail), time: ev.Time})
	}
	for _, d := range msg.Deliveries {
		if d == nil {
			return fail("deliveries", errors.New("nil delivery"))
		}
		deliveryDefaults(d, msg)
		rcpts, err := jsonText(nonNilSlice(d.Recipients))
		if err != nil {
			return fail("delivery recipients", err)
		}
		r.deliveries = append(r.deliveries, deliveryRow{route: clean(d.Route), domain: clean(d.Domain), recipients: rcpts,
			state: clean(d.State), lastReply: clean(d.LastReply), attempts: int32(d.Attempts), next: d.NextAttempt, expires: d.Expires})
	}
	return &request{row: &r, size: len(r.raw) + len(r.original)}, created, nil
}

// deliveryDefaults fills in what Accept defaults in a delivery of msg: an
// empty State is queued, an empty recipient State pending, and a zero
// NextAttempt is msg.SendAt, or msg.Received when that is zero too.
func deliveryDefaults(d *store.Delivery, msg *store.Message) {
	if d.State == "" {
		d.State = store.DeliveryQueued
	}
	for i := range d.Recipients {
		if d.Recipients[i].State == "" {
			d.Recipients[i].State = store.RecipientPending
		}
	}
	if d.NextAttempt.IsZero() {
		d.NextAttempt = msg.SendAt
		if d.NextAttempt.IsZero() {
			d.NextAttempt = msg.Received
		}
	}
}

// fromText is what SearchQuery.From matches: the From addresses and names
// and the envelope sender, one per line.
func fromText(msg *store.Message) string {
	parts := []string{msg.MailFrom}
	for _, a := range msg.Summary.From {
		parts = append(parts, a.Address, a.Name)
	}
	return strings.Join(parts, "\n")
}

// toText is what SearchQuery.To matches: the envelope recipients and the
// To and Cc addresses, one per line.
func toText(msg *store.Message) string {
	parts := append([]string{}, msg.Recipients...)
	for _, a := range msg.Summary.To {
		parts = append(parts, a.Address)
	}
	for _, a := range msg.Summary.Cc {
		parts = append(parts, a.Address)
	}
	return strings.Join(parts, "\n")
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func nonNilSlice[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// insert commits batch in one transaction, its statements sent as one
// pgx.Batch: the bodies of the Accepts first, then the seq lock, then
// their messages, inbox entries, events and deliveries (each table in one
// statement), then one statement per CompleteAttempt and per AddEvents.
// Nothing of the batch is stored if it fails; a write that fails alone
// (lease lost, message missing) has its error in its result.
func (db *DB) insert(batch []*request) ([]result, error) {
	// Not a caller's context: once a batch starts it finishes, so that
	// results are truthful.
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	results := make([]result, len(batch))
	var c columns
	var accepts []int // indexes in batch of the Accepts
	for i, r := range batch {
		if r.row != nil {
			c.add(r.row)
			accepts = append(accepts, i)
		}
	}
	b := &pgx.Batch{}
	if len(accepts) > 0 {
		b.Queue(insertBodies, c.ids, c.raws, c.originals)
	}
	b.Queue(lockSeq, db.lockKey)
	if len(accepts) > 0 {
		b.Queue(insertMessages, c.messageArgs()...).Query(func(rows pgx.Rows) error {
			seqs, err := sortedInt64s(rows, len(accepts))
			for k, i := range accepts {
				results[i].seq = seqs[k]
			}
			return err
		})
	}
	if len(c.inboxIDs) > 0 {
		b.Queue(insertInboxes, c.inboxIDs, c.inboxes)
	}
	if len(c.evIDs) > 0 {
		b.Queue(insertMessageEvents, c.evIDs, c.evType, c.evRecipient, c.evTime, c.evIP, c.evUA, c.evURL, c.evReply, c.evDetail).
			Query(func(rows pgx.Rows) error {
				seqs, err := sortedInt64s(rows, len(c.evIDs))
				for _, i := range accepts {
					n := len(batch[i].row.events)
					results[i].eventSeqs, seqs = seqs[:n:n], seqs[n:]
				}
				return err
			})
	}
	if len(c.dIDs) > 0 {
		b.Queue(insertDeliveries, c.dIDs, c.dRoute, c.dDomain, c.dRecipients, c.dState, c.dAttempts, c.dNext, c.dExpires,
			c.dReply, c.dCreated).Query(func(rows pgx.Rows) error {
			ids, err := sortedInt64s(rows, len(c.dIDs))
			for _, i := range accepts {
				n := len(batch[i].row.deliveries)
				results[i].deliveryIDs, ids = ids[:n:n], ids[n:]
			}
			return err
		})
	}
	for i, r := range batch {
		if r.complete == nil {
			continue
		}
		b.Queue(completeAttempt, r.complete...).QueryRow(func(row pgx.Row) error {
			var applied, exists bool
			res := &results[i]
			if err := row.Scan(&applied, &exists, &res.messageID, &res.login, &res.eventSeqs); err != nil {
				return err
			}
			switch {
			case !exists:
				res.err = store.ErrNotFound
			case !applied:
				res.err = store.ErrLeaseLost
			case len(res.eventSeqs) != r.nEvent:
				return fmt.Errorf("inserted %d of %d events", len(res.eventSeqs), r.nEvent)
			}
			return nil
		})
	}
	for i, r := range batch {
		if r.events == nil {
			continue
		}
		// An AddEvents whose message is missing inserts nothing and fails
		// alone; the rest of the batch goes on.
		b.Queue(insertEvents, r.events...).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var seq int64
				var login string
				if err := rows.Scan(&seq, &login); err != nil {
					return err
				}
				results[i].eventSeqs, results[i].logins = append(results[i].eventSeqs, seq), append(results[i].logins, login)
			}
			if err := rows.Err(); err != nil {
				return err
			}
			switch len(results[i].eventSeqs) {
			case r.nEvent:
			case 0:
				results[i].err = store.ErrNotFound
			default:
				return fmt.Errorf("inserted %d of %d events", len(results[i].eventSeqs), r.nEvent)
			}
			return nil
		})
	}
	if err := db.sendTx(ctx, b); err != nil {
		if len(batch) == 1 && batch[0].row != nil && isUniqueViolation(err) {
			return nil, store.ErrDuplicateID
		}
		if len(batch) == 1 && batch[0].events != nil && isForeignKeyViolation(err) {
			// A message was deleted while its events went in.
			return nil, store.ErrNotFound
		}
		return nil, fmt.Errorf("group commit of %d: %w", len(batch), err)
	}
	return results, nil
}

// sortedInt64s reads exactly n int64 values from rows, in ascending order.
func sortedInt64s(rows pgx.Rows, n int) ([]int64, error) {
	vals, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return make([]int64, n), err
	}
	if len(vals) != n {
		return make([]int64, n), fmt.Errorf("inserted %d rows, want %d", len(vals), n)
	}
	slices.Sort(vals)
	return vals, nil
}

// columns gathers the rows of a batch column by column.
type columns struct {
	ids, logins, routes, mailFroms, recipients, remoteIPs, helos []string
	tls                                                          []bool
	received                                                     []time.Time
	sizes                                                        []int64
	summaries, tags, texts, returnPaths, metadata                []string
	sendAts                                                      []pgtype.Timestamptz
	processing, subjects, fromTexts, toTexts                     []string
	hasAttachment                                                []bool
	raws, originals                                              [][]byte

	inboxIDs, inboxes []string

	evIDs, evType, evRecipient, evIP, evUA, evURL, evReply, evDetail []string
	evTime                                                           []time.Time

	dIDs, dRoute, dDomain, dRecipients, dState, dReply []string
	dAttempts                                          []int32
	dNext, dExpires, dCreated                          []time.Time
}

// add appends r to the columns.
func (c *columns) add(r *row) {
	c.ids, c.logins, c.routes, c.mailFroms = append(c.ids, r.id), append(c.logins, r.login), append(c.routes, r.route), append(c.mailFroms, r.mailFrom)
	c.recipients, c.remoteIPs, c.helos = append(c.recipients, r.recipients), append(c.remoteIPs, r.remoteIP), append(c.helos, r.helo)
	c.tls, c.received, c.sizes = append(c.tls, r.tls), append(c.received, r.received), append(c.sizes, r.size)
	c.summaries, c.tags, c.texts = append(c.summaries, r.summary), append(c.tags, r.tags), append(c.texts, r.text)
	c.returnPaths, c.metadata, c.sendAts = append(c.returnPaths, r.returnPath), append(c.metadata, r.metadata), append(c.sendAts, r.sendAt)
	c.processing, c.subjects = append(c.processing, r.processing), append(c.subjects, r.subject)
	c.fromTexts, c.toTexts, c.hasAttachment = append(c.fromTexts, r.fromText), append(c.toTexts, r.toText), append(c.hasAttachment, r.hasAttachment)
	c.raws, c.originals = append(c.raws, r.raw), append(c.originals, r.original)
	for _, in := range r.inboxes {
		c.inboxIDs, c.inboxes = append(c.inboxIDs, r.id), append(c.inboxes, in)
	}
	for _, e := range r.events {
		c.evIDs, c.evType, c.evRecipient, c.evTime = append(c.evIDs, r.id), append(c.evType, e.typ), append(c.evRecipient, e.recipient), append(c.evTime, e.time)
		c.evIP, c.evUA, c.evURL = append(c.evIP, e.ip), append(c.evUA, e.userAgent), append(c.evURL, e.url)
		c.evReply, c.evDetail = append(c.evReply, e.reply), append(c.evDetail, e.detail)
	}
	for _, d := range r.deliveries {
		c.dIDs, c.dRoute, c.dDomain, c.dRecipients = append(c.dIDs, r.id), append(c.dRoute, d.route), append(c.dDomain, d.domain), append(c.dRecipients, d.recipients)
		c.dState, c.dReply, c.dAttempts = append(c.dState, d.state), append(c.dReply, d.lastReply), append(c.dAttempts, d.attempts)
		c.dNext, c.dExpires, c.dCreated = append(c.dNext, d.next), append(c.dExpires, d.expires), append(c.dCreated, r.created)
	}
}

// messageArgs are the arguments of insertMessages.
func (c *columns) messageArgs() []any {
	return []any{c.ids, c.logins, c.routes, c.mailFroms, c.recipients, c.remoteIPs, c.helos, c.tls, c.received, c.sizes,
		c.summaries, c.tags, c.texts, c.returnPaths, c.metadata, c.sendAts, c.processing, c.subjects, c.fromTexts,
		c.toTexts, c.hasAttachment}
}

// sendTx runs b in one transaction, committed only if every statement and
// every result callback succeeded.
func (db *DB) sendTx(ctx context.Context, b *pgx.Batch) error {
	return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		return tx.SendBatch(ctx, b).Close()
	})
}

// isUniqueViolation reports whether err is PostgreSQL's unique_violation.
func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}
