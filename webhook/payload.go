package webhook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/smtpgate/smtpgate/store"
)

// Info is what a payload carries about the event's message besides the
// event itself. Config.MessageInfo supplies it.
type Info struct {
	MessageIDHeader string            // the Message-ID header, with its angle brackets
	Subject         string            // decoded
	Tags            []string          // from the tags directive
	Metadata        map[string]string // from metadata directives
}

// Payload is the JSON body of a delivery. Receivers written in Go can
// decode into it.
type Payload struct {
	// ID identifies the delivery of this event to this endpoint; it is the
	// same on every retry (and in the Smtpgate-Delivery header).
	ID string `json:"id"`
	// Seq is the event's position in the store's event log: increasing,
	// so receivers can order events whose deliveries a retry reordered.
	Seq   int64  `json:"seq"`
	Event string `json:"event"` // the event type: sent, bounced, opened, …
	// Timestamp is when the event happened (not when it was delivered), UTC.
	Timestamp       time.Time         `json:"timestamp"`
	Webhook         string            `json:"webhook"`    // the endpoint's name in the policy
	MessageID       string            `json:"message_id"` // smtpgate's id of the message
	MessageIDHeader string            `json:"message_id_header,omitempty"`
	Login           string            `json:"login"` // the SMTP login that submitted the message
	Recipient       string            `json:"recipient,omitempty"`
	Subject         string            `json:"subject,omitempty"`
	Tags            []string          `json:"tags"`                 // never null
	Metadata        map[string]string `json:"metadata"`             // never null
	Reply           string            `json:"reply,omitempty"`      // sent, deferred, bounced, failed: the SMTP reply
	URL             string            `json:"url,omitempty"`        // clicked: the original URL
	IP              string            `json:"ip,omitempty"`         // opened, clicked
	UserAgent       string            `json:"user_agent,omitempty"` // opened, clicked
	Detail          string            `json:"detail,omitempty"`
}

// NewPayload builds the payload that delivery id of ev to the endpoint
// named webhook carries.
func NewPayload(id int64, webhook string, ev *store.Event, info Info) Payload {
	p := Payload{
		ID:              strconv.FormatInt(id, 10),
		Seq:             ev.Seq,
		Event:           ev.Type,
		Timestamp:       ev.Time.UTC(),
		Webhook:         webhook,
		MessageID:       ev.MessageID,
		MessageIDHeader: info.MessageIDHeader,
		Login:           ev.Login,
		Recipient:       ev.Recipient,
		Subject:         info.Subject,
		Tags:            info.Tags,
		Metadata:        info.Metadata,
		Reply:           ev.Reply,
		URL:             ev.URL,
		IP:              ev.IP,
		UserAgent:       ev.UserAgent,
		Detail:          ev.Detail,
	}
	if p.Tags == nil {
		p.Tags = []string{}
	}
	if p.Metadata == nil {
		p.Metadata = map[string]string{}
	}
	return p
}

// Marshal returns the payload's JSON, the exact bytes that are signed and
// sent: compact, with <, > and & left as they are.
func (p Payload) Marshal() ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(p); err != nil {
		return nil, fmt.Errorf("webhook: encoding payload %s: %w", p.ID, err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte{'\n'}), nil
}
