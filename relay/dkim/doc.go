// Package dkim signs outgoing mail with DKIM (RFC 6376) on top of
// github.com/emersion/go-msgauth/dkim. It is the last transform before a
// message leaves smtpgate: the relay worker hands it the final bytes and
// sends exactly what it writes.
//
// A Signer holds the configured keys. Sign picks the keys whose domain equals
// the signing domain (the From domain, or an override), normalises line
// endings to CRLF, and writes one DKIM-Signature per key (RSA-SHA256 and/or
// Ed25519-SHA256, relaxed/relaxed) followed by the message. Messages are
// streamed: bodies above Options.SpoolThreshold spill to a temporary file, so
// memory stays bounded whatever the message size.
//
// Keys come from PEM files (LoadKey, ParseKey) or are made by Generate;
// DNSRecord and RecordName give the TXT record to publish for a key.
package dkim
