// Package dkim signs outgoing mail with DKIM (RFC 6376, RFC 8463). It is
// the last transform before a message leaves smtpgate: the relay worker
// hands it the final bytes and sends exactly what it writes.
//
// A Signer holds the configured keys. Sign picks the keys whose domain equals
// the signing domain (the From domain, or an override), normalises line
// endings to CRLF, and writes one DKIM-Signature per key (RSA-SHA256 and/or
// Ed25519-SHA256, relaxed/relaxed) followed by the message. Messages are
// streamed: bodies above Options.SpoolThreshold spill to a temporary file, so
// memory stays bounded whatever the message size.
//
// The canonicalization and signing are this package's own (one pass over
// the body for every key, no goroutines); they compute exactly what
// github.com/emersion/go-msgauth/dkim verifies, which the tests check
// against it on every signed message.
//
// Keys come from PEM files (LoadKey, ParseKey) or are made by Generate;
// DNSRecord and RecordName give the TXT record to publish for a key.
package dkim
