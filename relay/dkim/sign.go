package dkim

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	msgdkim "github.com/emersion/go-msgauth/dkim"
	"golang.org/x/text/transform"
)

// DefaultSpoolThreshold is how much of a message Sign keeps in memory before
// spooling it to a temporary file.
const DefaultSpoolThreshold = 1 << 20

// DefaultHeaderKeys returns the header fields signed when Options.HeaderKeys
// is empty: the originator, recipient and subject fields, the identity and
// threading fields, the MIME structure and the one-click unsubscribe pair
// (RFC 8058 requires List-Unsubscribe-Post to be signed).
func DefaultHeaderKeys() []string {
	return []string{
		"From", "Sender", "Reply-To", "To", "Cc", "Subject", "Date", "Message-ID",
		"In-Reply-To", "References", "MIME-Version", "Content-Type",
		"Content-Transfer-Encoding", "List-Unsubscribe", "List-Unsubscribe-Post",
	}
}

// Options tunes a Signer. The zero value signs DefaultHeaderKeys with no
// expiry.
type Options struct {
	// HeaderKeys lists the header fields to sign; From is always added.
	// Every field is signed in all its instances and oversigned once: h=
	// names it one more time than the message has it, so a verifier treats
	// any added instance (a forged From prepended above the signed one, a
	// second Subject, a Cc that was not there) as part of the signature and
	// the signature fails. Empty means DefaultHeaderKeys.
	HeaderKeys []string
	// Expiration, when positive, sets the x= tag to Now()+Expiration.
	Expiration time.Duration
	// Now is the clock for x=; nil means time.Now. The t= tag is stamped by
	// go-msgauth from the wall clock and does not use it.
	Now func() time.Time
	// TempDir is where messages above SpoolThreshold are spooled while being
	// signed; empty means os.TempDir(). The file is unlinked on creation.
	TempDir string
	// SpoolThreshold is the number of bytes kept in memory before spooling;
	// 0 means DefaultSpoolThreshold.
	SpoolThreshold int
}

// Signer signs messages with a fixed set of keys. It is safe for concurrent
// use.
type Signer struct {
	keys       []*Key
	headerKeys []string
	opts       Options
}

// NewSigner returns a Signer for keys. Several keys for one domain (say RSA
// and Ed25519) make Sign add one signature per key, in the order given. Key
// domains are compared in their lower-case A-label form; nil keys are
// ignored. A key that cannot sign (no Signer, a bad selector, an Algorithm
// that does not match the key) is reported by Sign when it is picked.
func NewSigner(keys []*Key, opts Options) *Signer {
	s := &Signer{opts: opts}
	for _, k := range keys {
		if k == nil {
			continue
		}
		c := *k
		if d, err := normalizeDomain(c.Domain); err == nil {
			c.Domain = d
		}
		s.keys = append(s.keys, &c)
	}
	if s.opts.Now == nil {
		s.opts.Now = time.Now
	}
	if s.opts.SpoolThreshold <= 0 {
		s.opts.SpoolThreshold = DefaultSpoolThreshold
	}
	hk := opts.HeaderKeys
	if len(hk) == 0 {
		hk = DefaultHeaderKeys()
	}
	s.headerKeys = dedupe(append([]string{"From"}, hk...))
	return s
}

// dedupe drops repeated names, case-insensitively, keeping the first spelling.
func dedupe(keys []string) []string {
	var out []string
	seen := make(map[string]bool, len(keys))
	for _, k := range keys {
		k = strings.TrimSpace(k)
		lk := strings.ToLower(k)
		if k == "" || seen[lk] {
			continue
		}
		seen[lk] = true
		out = append(out, k)
	}
	return out
}

// Domains returns the signing domains that have at least one key, in the
// order of the keys.
func (s *Signer) Domains() []string {
	var out []string
	for _, k := range s.keys {
		if !containsFold(out, k.Domain) {
			out = append(out, k.Domain)
		}
	}
	return out
}

func containsFold(list []string, v string) bool {
	for _, x := range list {
		if strings.EqualFold(x, v) {
			return true
		}
	}
	return false
}

// Sign reads a message from r and writes it to w with a DKIM-Signature field
// prepended for every key of the signing domain. It returns one entry per
// signature, "d=<domain> s=<selector> a=<algorithm>", in the order written.
//
// The signing domain is domainOverride when it is not empty, otherwise the
// domain of the message's From address. A key signs only when its Domain is
// exactly that domain: a key for example.com does not sign mail from
// news.example.com (pass domainOverride to sign with a parent domain's key,
// which DMARC relaxed alignment accepts). When no key matches, the message is
// copied to w unsigned and signedWith is empty.
//
// Line endings are normalised to CRLF before signing (bare LF and bare CR
// become CRLF, and the last line gets a CRLF), and w receives the normalised
// bytes: what go-smtp's client then sends is exactly what was signed. A
// message that ends inside its header gets the blank line ending the header.
//
// The message is streamed through the signers while it is spooled (memory up
// to Options.SpoolThreshold, then a temporary file). Nothing is written to w
// until every signature is made, so an error from r or ctx while signing, a
// bad key, or a message without a usable From (ErrNoSigningDomain) leaves w
// untouched. An unsigned copy is streamed straight to w, and a failing w
// fails after a partial write: in those cases the caller must abandon the
// output (for SMTP, drop the DATA instead of ending it with a dot).
func (s *Signer) Sign(ctx context.Context, w io.Writer, r io.Reader, domainOverride string) (signedWith []string, err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(transform.NewReader(ctxReader{ctx, r}, &crlfTransformer{}), 8<<10)
	if len(s.keys) == 0 {
		return nil, passThrough(w, br)
	}
	h, err := readHeader(br, MaxHeaderBytes)
	if err != nil {
		return nil, err
	}
	keys, err := s.keysFor(h, domainOverride)
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		if _, err := w.Write(h.raw); err != nil {
			return nil, fmt.Errorf("dkim: copy unsigned message: %w", err)
		}
		return nil, passThrough(w, br)
	}

	sp := &spool{dir: s.opts.TempDir, limit: s.opts.SpoolThreshold}
	defer sp.Close()
	sigs, signedWith, err := s.sign(h, keys, func(mw io.Writer) error {
		mw = io.MultiWriter(sp, mw)
		if _, err := mw.Write(h.raw); err != nil {
			return err
		}
		_, err := io.Copy(mw, br)
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, sig := range sigs {
		if _, err := io.WriteString(w, sig); err != nil {
			return nil, fmt.Errorf("dkim: write signed message: %w", err)
		}
	}
	if err := sp.copyTo(ctx, w); err != nil {
		return nil, fmt.Errorf("dkim: write signed message: %w", err)
	}
	return signedWith, nil
}

// SignBytes signs msg, a whole message in memory, as Sign does (the same
// keys, domain selection, errors and output), and returns the signed
// message. When msg is already CRLF-normalised with its header ended by a
// blank line, which is how stored messages are, it is hashed where it lies
// instead of being normalised, spooled and copied: the result is then the
// signature fields followed by msg in one new buffer, or msg itself when no
// key signs it. Other input goes through Sign. The caller must not modify
// msg while the result is in use.
func (s *Signer) SignBytes(ctx context.Context, msg []byte, domainOverride string) ([]byte, []string, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	hdrEnd := headerEnd(msg)
	if !crlfNormal(msg) || (len(s.keys) > 0 && hdrEnd < 0) {
		var buf bytes.Buffer
		buf.Grow(len(msg) + len(msg)/16 + 1024)
		with, err := s.Sign(ctx, &buf, bytes.NewReader(msg), domainOverride)
		if err != nil {
			return nil, nil, err
		}
		return buf.Bytes(), with, nil
	}
	if len(s.keys) == 0 {
		return msg, nil, nil
	}
	h := parseHeader(msg[:hdrEnd:hdrEnd])
	keys, err := s.keysFor(h, domainOverride)
	if err != nil || len(keys) == 0 {
		return msg, nil, err
	}
	sigs, signedWith, err := s.sign(h, keys, func(w io.Writer) error {
		_, err := w.Write(msg)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	n := len(msg)
	for _, sig := range sigs {
		n += len(sig)
	}
	out := make([]byte, 0, n)
	for _, sig := range sigs {
		out = append(out, sig...)
	}
	return append(out, msg...), signedWith, nil
}

// crlfNormal reports whether msg is what the CRLF normaliser would leave
// unchanged: not empty, every CR followed by LF, every LF preceded by CR,
// and a final CRLF.
func crlfNormal(msg []byte) bool {
	if len(msg) < 2 || msg[len(msg)-1] != '\n' {
		return false
	}
	lines := 0
	for i := 0; i < len(msg); i++ {
		j := bytes.IndexByte(msg[i:], '\n')
		if j < 0 {
			break
		}
		i += j
		if i == 0 || msg[i-1] != '\r' {
			return false
		}
		lines++
	}
	// Every LF has its CR: any other CR is a bare one.
	return bytes.Count(msg, []byte{'\r'}) == lines
}

// headerEnd returns the length of msg's header block with the blank line
// that ends it, as readHeader reads it from CRLF-normalised input, or -1
// when readHeader would not find it as is (no blank line, a block over
// MaxHeaderBytes, a first line starting with white space).
func headerEnd(msg []byte) int {
	if len(msg) > 0 && (msg[0] == ' ' || msg[0] == '\t') {
		return -1
	}
	if bytes.HasPrefix(msg, []byte("\r\n")) {
		return 2
	}
	i := bytes.Index(msg, []byte("\r\n\r\n"))
	if i < 0 || i+4 > MaxHeaderBytes {
		return -1
	}
	return i + 4
}

// keysFor returns the keys that sign a message with header h: those of the
// domain override, or of the From domain.
func (s *Signer) keysFor(h *header, domainOverride string) ([]*Key, error) {
	domain := domainOverride
	var err error
	if domain != "" {
		if domain, err = normalizeDomain(domain); err != nil {
			return nil, fmt.Errorf("dkim: domain override: %w", err)
		}
	} else if domain, err = h.fromDomain(); err != nil {
		return nil, err
	}
	var keys []*Key
	for _, k := range s.keys {
		if k.Domain == domain {
			keys = append(keys, k)
		}
	}
	return keys, nil
}

// sign makes one signature per key of the message that write writes to the
// writer it is given (the header block h.raw first), and returns the
// DKIM-Signature fields and the signedWith descriptions.
func (s *Signer) sign(h *header, keys []*Key, write func(io.Writer) error) (sigs, signedWith []string, err error) {
	headerKeys := s.oversign(h)
	var expiration time.Time
	if s.opts.Expiration > 0 {
		expiration = s.opts.Now().Add(s.opts.Expiration)
	}
	signers := make([]*msgdkim.Signer, 0, len(keys))
	defer func() {
		// Stop the go-msgauth goroutines of signers not closed below.
		for _, sg := range signers {
			_ = sg.Close()
		}
	}()
	writers := make([]io.Writer, 0, len(keys))
	algs := make([]string, len(keys))
	for i, k := range keys {
		if algs[i], err = k.check(); err != nil {
			return nil, nil, err
		}
		sg, err := msgdkim.NewSigner(&msgdkim.SignOptions{
			Domain:                 k.Domain,
			Selector:               k.Selector,
			Signer:                 k.Signer,
			Hash:                   crypto.SHA256,
			HeaderCanonicalization: msgdkim.CanonicalizationRelaxed,
			BodyCanonicalization:   msgdkim.CanonicalizationRelaxed,
			HeaderKeys:             headerKeys,
			Expiration:             expiration,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("dkim: key %s: %w", k.name(), err)
		}
		signers = append(signers, sg)
		writers = append(writers, sg)
	}
	var w io.Writer = signers[0]
	if len(writers) > 1 {
		w = io.MultiWriter(writers...)
	}
	if err := write(w); err != nil {
		return nil, nil, fmt.Errorf("dkim: sign: %w", err)
	}
	sigs = make([]string, len(signers))
	signedWith = make([]string, len(signers))
	for i, sg := range signers {
		if err := sg.Close(); err != nil {
			return nil, nil, fmt.Errorf("dkim: key %s: %w", keys[i].name(), err)
		}
		sigs[i] = sg.Signature()
		signedWith[i] = fmt.Sprintf("d=%s s=%s a=%s-sha256", keys[i].Domain, keys[i].Selector, algs[i])
	}
	return sigs, signedWith, nil
}

// oversign builds the h= list for a message: each configured field as many
// times as the message has it, plus once.
func (s *Signer) oversign(h *header) []string {
	var out []string
	for _, k := range s.headerKeys {
		for range h.count(k) + 1 {
			out = append(out, k)
		}
	}
	return out
}

func passThrough(w io.Writer, r io.Reader) error {
	if _, err := io.Copy(w, r); err != nil {
		return fmt.Errorf("dkim: copy unsigned message: %w", err)
	}
	return nil
}

// name identifies a key in errors.
func (k *Key) name() string { return RecordName(k.Selector, k.Domain) }

// check reports whether k can sign and returns its algorithm.
func (k *Key) check() (string, error) {
	if k.Signer == nil {
		return "", fmt.Errorf("dkim: key %s has no private key", k.name())
	}
	if err := checkSelector(k.Selector); err != nil {
		return "", fmt.Errorf("dkim: key for %s: %w", k.Domain, err)
	}
	alg, bits := describe(k.Signer.Public())
	if alg == "" {
		return "", fmt.Errorf("dkim: key %s: unsupported key type %T", k.name(), k.Signer.Public())
	}
	if k.Algorithm != "" && k.Algorithm != alg {
		return "", fmt.Errorf("dkim: key %s: algorithm is %q but the key is %s", k.name(), k.Algorithm, keyDescription(alg, bits))
	}
	var weak *WeakKeyError
	if err := checkRSABits(alg, bits); err != nil && !errors.As(err, &weak) {
		return "", fmt.Errorf("dkim: key %s: %w", k.name(), err)
	}
	return alg, nil
}
