// Package summary parses a raw RFC 5322 message into the small structured
// view that the capture store indexes and the APIs return: addresses,
// subject, attachments with their MD5, and the links in the body.
package summary

import "time"

// Address is one mailbox from a header.
type Address struct {
	Address string `json:"address"`
	Name    string `json:"name"`
}

// Attachment describes one attachment or inline part with a file name.
type Attachment struct {
	Filename    string `json:"filename"`
	ContentType string `json:"contentType"`
	ContentID   string `json:"cid,omitempty"`
	Size        int64  `json:"size"` // decoded bytes
	MD5         string `json:"md5"`  // hex of the decoded bytes
	Inline      bool   `json:"inline,omitempty"`
}

// Summary is the parsed view of one message.
type Summary struct {
	From        []Address    `json:"from"`
	To          []Address    `json:"to"`
	Cc          []Address    `json:"cc"`
	Bcc         []Address    `json:"bcc"`
	ReplyTo     []Address    `json:"replyTo"`
	Subject     string       `json:"subject"`
	MessageID   string       `json:"messageId"`
	Date        time.Time    `json:"date"` // zero when absent or unparsable
	Attachments []Attachment `json:"attachments"`
	Links       []string     `json:"links"` // distinct http(s) URLs from the HTML and text bodies, in order
	HasHTML     bool         `json:"hasHtml"`
	HasText     bool         `json:"hasText"`
}
