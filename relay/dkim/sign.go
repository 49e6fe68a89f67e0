package dkim

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

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
	// Now is the clock for the t= and x= tags; nil means time.Now.
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
	sigs, signedWith, err := s.sign(h, keys, func(body io.Writer) error {
		if _, err := sp.Write(h.raw); err != nil {
			return err
		}
		_, err := io.Copy(io.MultiWriter(sp, body), br)
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
	sigs, signedWith, err := s.sign(h, keys, func(body io.Writer) error {
		_, err := body.Write(msg[hdrEnd:])
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

// sign makes one signature per key of the message whose header is h and
// whose body writeBody writes to the writer it is given, and returns the
// DKIM-Signature fields and the signedWith descriptions. The signatures
// are relaxed/relaxed with SHA-256 (RFC 6376, RFC 8463 for Ed25519), made
// here rather than by go-msgauth's signer, which runs a goroutine and a
// pipe per signature and canonicalizes byte by byte: the body is
// canonicalized and hashed once for every key, in runs, and each key then
// hashes the canonical header fields and its own signature field.
func (s *Signer) sign(h *header, keys []*Key, writeBody func(io.Writer) error) (sigs, signedWith []string, err error) {
	algs := make([]string, len(keys))
	for i, k := range keys {
		if algs[i], err = k.check(); err != nil {
			return nil, nil, err
		}
	}
	hasher := sha256.New()
	body := newRelaxedBody(hasher)
	if err := writeBody(body); err != nil {
		return nil, nil, fmt.Errorf("dkim: sign: %w", err)
	}
	var sum [sha256.Size]byte
	bh := base64.StdEncoding.EncodeToString(body.sum(sum[:0]))

	// The signed fields, canonical, in h= order: each configured name as
	// often as the message has it, bottom up (the order in which a
	// verifier picks them), plus once more for none (oversigning).
	headerKeys := s.oversign(h)
	canon := make([]byte, 0, len(h.raw)+256)
	for _, key := range s.headerKeys {
		for i := len(h.keys) - 1; i >= 0; i-- {
			if strings.EqualFold(h.keys[i], key) {
				canon = appendRelaxedHeader(canon, h.keys[i], h.values[i])
			}
		}
	}
	signedFields := len(canon)

	now := s.opts.Now()
	var expiration int64
	if s.opts.Expiration > 0 {
		expiration = now.Add(s.opts.Expiration).Unix()
	}
	sigs = make([]string, len(keys))
	signedWith = make([]string, len(keys))
	for i, k := range keys {
		field := signatureField(k, algs[i], bh, headerKeys, now.Unix(), expiration)
		// The field as it is signed: b= empty, canonical, without its CRLF.
		canon = appendRelaxedHeader(canon[:signedFields], "DKIM-Signature", field[len("DKIM-Signature:"):])
		hasher.Reset()
		hasher.Write(canon[:len(canon)-2])
		digest := hasher.Sum(sum[:0])
		opts := crypto.Hash(0) // Ed25519 signs the digest itself (RFC 8463)
		if algs[i] == AlgorithmRSA {
			opts = crypto.SHA256
		}
		sig, err := k.Signer.Sign(rand.Reader, digest, opts)
		if err != nil {
			return nil, nil, fmt.Errorf("dkim: key %s: %w", k.name(), err)
		}
		sigs[i] = appendFolded([]byte(field), base64.StdEncoding.EncodeToString(sig))
		signedWith[i] = "d=" + k.Domain + " s=" + k.Selector + " a=" + algs[i] + "-sha256"
	}
	return sigs, signedWith, nil
}

// foldWidth is the line length the signature field is folded to (RFC 5322
// recommends at most 78 characters).
const foldWidth = 76

// signatureField formats a DKIM-Signature field up to and including its
// empty b= tag, folded: each tag ends with ';', h= may fold between names,
// and b= starts a line of its own.
func signatureField(k *Key, alg, bh string, headerKeys []string, t, x int64) string {
	f := folder{b: make([]byte, 0, 512)}
	f.b = append(f.b, "DKIM-Signature:"...)
	f.line = len(f.b)
	f.word(" ", "v=1;")
	f.word(" ", "a="+alg+"-sha256;")
	f.word(" ", "c=relaxed/relaxed;")
	f.word(" ", "d="+k.Domain+";")
	f.word(" ", "s="+k.Selector+";")
	f.word(" ", "t="+strconv.FormatInt(t, 10)+";")
	if x != 0 {
		f.word(" ", "x="+strconv.FormatInt(x, 10)+";")
	}
	for i, name := range headerKeys {
		switch {
		case i == 0 && len(headerKeys) == 1:
			f.word(" ", "h="+name+";")
		case i == 0:
			f.word(" ", "h="+name)
		case i == len(headerKeys)-1:
			f.word("", ":"+name+";")
		default:
			f.word("", ":"+name)
		}
	}
	f.word(" ", "bh="+bh+";")
	f.b = append(f.b, "\r\n b="...)
	return string(f.b)
}

// appendFolded completes a field from signatureField with the b= value,
// folded, and the final CRLF.
func appendFolded(field []byte, b64 string) string {
	line := len(" b=")
	for len(b64) > 0 {
		n := min(len(b64), foldWidth-line)
		if n <= 0 {
			field = append(field, "\r\n "...)
			line = 1
			continue
		}
		field = append(field, b64[:n]...)
		b64 = b64[n:]
		line += n
	}
	return string(append(field, "\r\n"...))
}

// folder writes folded header text.
type folder struct {
	b    []byte
	line int // length of the current line
}

// word appends sep and w, or a fold and w when the line would be too long.
func (f *folder) word(sep, w string) {
	if f.line+len(sep)+len(w) > foldWidth && f.line > 1 {
		f.b = append(f.b, "\r\n "...)
		f.line = 1
		sep = ""
	}
	f.b = append(f.b, sep...)
	f.b = append(f.b, w...)
	f.line += len(sep) + len(w)
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
