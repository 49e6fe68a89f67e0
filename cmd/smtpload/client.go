package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// maxReply bounds the text of one server reply (all its lines).
const maxReply = 64 << 10

// ehloName is the name the client gives in EHLO.
const ehloName = "localhost"

// sender is what every connection shares: the settings and the message
// parts that do not change from one message to the next.
type sender struct {
	addr      string
	tlsMode   string      // starttls, implicit or none
	tlsConfig *tls.Config // nil for -tls none
	user      string      // empty: no AUTH
	pass      string
	pipeline  bool // pipeline MAIL, RCPT and DATA when the server offers PIPELINING
	from      string
	// The recipient of message n is toPrefix, n modulo span, toSuffix when
	// toNum, else toPrefix.
	toPrefix, toSuffix string
	toNum              bool
	span               int64
	body               []byte       // the header tail and body: CRLF, already dot-stuffed
	bodySize           int          // len(body) before dot-stuffing
	eightBit           bool         // body has bytes over 127
	resumed            atomic.Int64 // TLS handshakes that resumed a session
}

// newSender prepares what the connections of a run share.
func newSender(c config, body []byte, curves []tls.CurveID) (*sender, error) {
	s := &sender{addr: c.addr, tlsMode: c.tlsMode, user: c.user, pass: c.pass, pipeline: c.pipelining,
		from: c.from, span: int64(max(c.rcptSpan, 1)), bodySize: len(body)}
	switch c.tlsMode {
	case "starttls", "implicit":
		host, _, err := net.SplitHostPort(c.addr)
		if err != nil {
			return nil, fmt.Errorf("-addr %q: %w", c.addr, err)
		}
		s.tlsConfig = &tls.Config{
			ServerName:         host,
			InsecureSkipVerify: true, //nolint:gosec // a load generator against a local dev certificate
			CurvePreferences:   curves,
			// Records of up to 16 KB from the first byte, as OpenSSL
			// clients send them, rather than Go's small first records.
			DynamicRecordSizingDisabled: true,
		}
		if c.tlsResume {
			// One session cache for the run, as Postfix keeps one in
			// smtp_tls_session_cache_database: a connection after the
			// first resumes the session of an earlier one (still with
			// a fresh X25519 exchange in TLS 1.3).
			s.tlsConfig.ClientSessionCache = tls.NewLRUClientSessionCache(2 * max(c.conns, 1))
		}
	case "none":
	default:
		return nil, fmt.Errorf("-tls %q: want starttls, implicit or none", c.tlsMode)
	}
	s.toPrefix, s.toSuffix, s.toNum = strings.Cut(c.to, "%d")
	if !s.toNum {
		s.toPrefix = c.to
	}
	s.body = dotStuff(body)
	for _, b := range body {
		if b >= 0x80 {
			s.eightBit = true
			break
		}
	}
	return s, nil
}

// dotStuff returns b, which ends in CRLF or is made to, with a '.' added
// before every line that starts with one (RFC 5321 4.5.2).
func dotStuff(b []byte) []byte {
	out := make([]byte, 0, len(b)+len(b)/64+2)
	atLineStart := true
	for _, c := range b {
		if atLineStart && c == '.' {
			out = append(out, '.')
		}
		out = append(out, c)
		atLineStart = c == '\n'
	}
	if len(out) > 0 && !atLineStart {
		out = append(out, '\r', '\n')
	}
	return out
}

// replyError is a reply the client did not expect: the command it
// answered and the reply's full text.
type replyError struct {
	cmd   string
	reply string // the lines without CRLF, joined with "\n"
}

func (e *replyError) Error() string { return e.cmd + ": " + e.reply }

// client is one SMTP connection: greeting, EHLO, STARTTLS, AUTH PLAIN
// done; then messages, then QUIT.
type client struct {
	s          *sender
	conn       net.Conn
	r          *bufio.Reader
	stop       func() bool // ends the context watch
	pipelining bool        // the server offers PIPELINING and -pipelining is on
	size       bool        // the server offers SIZE
	eightBit   bool        // the server offers 8BITMIME
	broken     bool        // out of step with the server: close without QUIT

	// Buffers reused by every message.
	reply []byte // the last reply's text
	cmd   []byte // the commands being sent
	msg   []byte // the message being sent
	rcpt  []byte // the recipient of the message being sent
}

// dial connects, reads the greeting, says EHLO, starts TLS and
// authenticates. Every read and write of the connection ends at ctx's
// deadline, or when ctx is cancelled. The client reuses the buffers of
// prev, a closed client, if not nil.
func (s *sender) dial(ctx context.Context, prev *client) (*client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	cl := &client{}
	if prev != nil {
		cl.r, cl.reply, cl.cmd, cl.msg, cl.rcpt = prev.r, prev.reply, prev.cmd, prev.msg, prev.rcpt
	}
	cl.s, cl.conn = s, conn
	cl.stop = context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	if err := cl.open(ctx); err != nil {
		cl.close()
		return nil, err
	}
	return cl, nil
}

func (cl *client) open(ctx context.Context) error {
	s := cl.s
	if s.tlsMode == "implicit" {
		if err := cl.handshake(ctx); err != nil {
			return err
		}
	} else {
		cl.setReader(cl.conn)
	}
	if err := cl.expect('2', "greeting"); err != nil {
		return err
	}
	ext, err := cl.ehlo()
	if err != nil {
		return err
	}
	if s.tlsMode == "starttls" {
		if !hasExt(ext, "STARTTLS") {
			return fmt.Errorf("the server does not offer STARTTLS: %s", cl.reply)
		}
		if err := cl.do("STARTTLS\r\n", '2'); err != nil {
			return err
		}
		if cl.r.Buffered() > 0 {
			return errors.New("the server sent more after its STARTTLS reply")
		}
		if err := cl.handshake(ctx); err != nil {
			return err
		}
		if ext, err = cl.ehlo(); err != nil {
			return err
		}
	}
	cl.pipelining = s.pipeline && hasExt(ext, "PIPELINING")
	cl.size = hasExt(ext, "SIZE")
	cl.eightBit = hasExt(ext, "8BITMIME")
	if s.user != "" {
		cred := base64.StdEncoding.EncodeToString([]byte("\x00" + s.user + "\x00" + s.pass))
		cl.cmd = append(append(append(cl.cmd[:0], "AUTH PLAIN "...), cred...), "\r\n"...)
		if err := cl.write(cl.cmd); err != nil {
			return err
		}
		if err := cl.expect('2', "AUTH PLAIN"); err != nil {
			return err
		}
	}
	return nil
}

// handshake runs the TLS client handshake on the connection.
func (cl *client) handshake(ctx context.Context) error {
	tc := tls.Client(cl.conn, cl.s.tlsConfig)
	if err := tc.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("TLS handshake: %w", err)
	}
	if tc.ConnectionState().DidResume {
		cl.s.resumed.Add(1)
	}
	cl.conn = tc
	cl.setReader(tc)
	return nil
}

// setReader makes cl.r read from c.
func (cl *client) setReader(c net.Conn) {
	if cl.r == nil {
		cl.r = bufio.NewReader(c)
	} else {
		cl.r.Reset(c)
	}
}

// ehlo says EHLO and returns the extension lines of the reply (after the
// first), upper-cased.
func (cl *client) ehlo() ([]string, error) {
	if err := cl.do("EHLO "+ehloName+"\r\n", '2'); err != nil {
		return nil, err
	}
	lines := strings.Split(string(cl.reply), "\n")[1:]
	for i, l := range lines {
		lines[i] = strings.ToUpper(l[min(4, len(l)):])
	}
	return lines, nil
}

// hasExt reports whether the EHLO extension lines offer the keyword ext.
func hasExt(lines []string, ext string) bool {
	for _, l := range lines {
		if kw, _, _ := strings.Cut(l, " "); kw == ext {
			return true
		}
	}
	return false
}

// send sends message number num and returns the time from the write of
// MAIL FROM to the final reply after the body. With PIPELINING MAIL, RCPT
// and DATA go in one write, then the message in another; without, one
// command per round trip.
func (cl *client) send(num int64) (time.Duration, error) {
	s := cl.s
	nano := time.Now().UnixNano()
	cl.rcpt = append(cl.rcpt[:0], s.toPrefix...)
	if s.toNum {
		cl.rcpt = append(strconv.AppendInt(cl.rcpt, num%s.span, 10), s.toSuffix...)
	}

	m := append(cl.msg[:0], "From: <"...)
	m = append(append(m, s.from...), ">\r\nTo: <"...)
	m = append(append(m, cl.rcpt...), ">\r\nSubject: load "...)
	m = append(strconv.AppendInt(m, num, 10), "\r\nMessage-ID: <load-"...)
	m = append(strconv.AppendInt(m, nano, 10), '-')
	m = append(strconv.AppendInt(m, num, 10), "@smtpload>\r\n"...)
	headerLen := len(m)
	m = append(append(m, s.body...), ".\r\n"...)
	cl.msg = m

	c := append(cl.cmd[:0], "MAIL FROM:<"...)
	c = append(append(c, s.from...), '>')
	if cl.size {
		c = strconv.AppendInt(append(c, " SIZE="...), int64(headerLen+s.bodySize), 10)
	}
	if cl.eightBit && s.eightBit {
		c = append(c, " BODY=8BITMIME"...)
	}
	c = append(c, "\r\n"...)
	mailEnd := len(c)
	c = append(append(append(c, "RCPT TO:<"...), cl.rcpt...), ">\r\n"...)
	rcptEnd := len(c)
	c = append(c, "DATA\r\n"...)
	cl.cmd = c
	cmds := [3][]byte{c[:mailEnd], c[mailEnd:rcptEnd], c[rcptEnd:]}
	want := [3]byte{'2', '2', '3'}

	t0 := time.Now()
	if cl.pipelining {
		if err := cl.write(c); err != nil {
			return 0, err
		}
		// Read all three replies whatever they say, to stay in step.
		var first error
		for i := range cmds {
			err := cl.expectCmd(want[i], cmds[i])
			var re *replyError
			if err != nil && !errors.As(err, &re) {
				return 0, err
			}
			if first == nil {
				first = err
			}
		}
		if first != nil {
			if cl.reply[0] == '3' {
				// DATA accepted after a refused MAIL or RCPT: the
				// server waits for a message; hang up rather than
				// send one.
				cl.broken = true
			}
			return 0, first
		}
	} else {
		for i := range cmds {
			if err := cl.write(cmds[i]); err != nil {
				return 0, err
			}
			if err := cl.expectCmd(want[i], cmds[i]); err != nil {
				return 0, err
			}
		}
	}
	if err := cl.write(m); err != nil {
		return 0, err
	}
	if err := cl.expect('2', "end of DATA"); err != nil {
		return 0, err
	}
	return time.Since(t0), nil
}

// quit says QUIT, reads the reply and closes the connection.
func (cl *client) quit() {
	if !cl.broken && cl.write([]byte("QUIT\r\n")) == nil {
		_ = cl.readReply()
	}
	cl.close()
}

func (cl *client) close() {
	cl.stop()
	cl.conn.Close()
}

func (cl *client) write(b []byte) error {
	_, err := cl.conn.Write(b)
	return err
}

// do writes the command line cmd (with its CRLF) and expects a reply
// whose code starts with the digit want.
func (cl *client) do(cmd string, want byte) error {
	if _, err := io.WriteString(cl.conn, cmd); err != nil {
		return err
	}
	return cl.expect(want, strings.TrimSuffix(cmd, "\r\n"))
}

// expect reads a reply and returns a *replyError naming cmd unless its
// code starts with the digit want.
func (cl *client) expect(want byte, cmd string) error {
	if err := cl.readReply(); err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	if cl.reply[0] != want {
		return &replyError{cmd: cmd, reply: string(cl.reply)}
	}
	return nil
}

// expectCmd is expect for a command line held in a buffer: the command's
// text is made only for an error.
func (cl *client) expectCmd(want byte, cmd []byte) error {
	if err := cl.readReply(); err != nil {
		return fmt.Errorf("%s: %w", strings.TrimSuffix(string(cmd), "\r\n"), err)
	}
	if cl.reply[0] != want {
		return &replyError{cmd: strings.TrimSuffix(string(cmd), "\r\n"), reply: string(cl.reply)}
	}
	return nil
}

// readReply reads one reply, every line of a multi-line one, into
// cl.reply.
func (cl *client) readReply() error {
	var err error
	cl.reply, err = readReply(cl.r, cl.reply[:0])
	return err
}

// readReply appends one reply read from r to buf: its lines without CRLF,
// joined with "\n". Every line is a three-digit code, the same on every
// line, then '-' (more lines follow), ' ' or nothing (the last line).
func readReply(r *bufio.Reader, buf []byte) ([]byte, error) {
	replyStart := len(buf)
	for first := true; ; first = false {
		if !first {
			buf = append(buf, '\n')
		}
		start := len(buf)
		for {
			frag, err := r.ReadSlice('\n')
			buf = append(buf, frag...)
			if len(buf) > maxReply {
				return buf, fmt.Errorf("reply longer than %d bytes", maxReply)
			}
			if err == bufio.ErrBufferFull {
				continue
			}
			if err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return buf, fmt.Errorf("reading the reply (got %q): %w", buf[replyStart:], err)
			}
			break
		}
		buf = buf[:len(buf)-1] // the '\n'
		if len(buf) > start && buf[len(buf)-1] == '\r' {
			buf = buf[:len(buf)-1]
		}
		line := buf[start:]
		if len(line) < 3 || !isDigit(line[0]) || !isDigit(line[1]) || !isDigit(line[2]) ||
			(len(line) > 3 && line[3] != '-' && line[3] != ' ') ||
			(!first && string(line[:3]) != string(buf[replyStart:replyStart+3])) {
			return buf, fmt.Errorf("malformed reply %q", buf[replyStart:])
		}
		if len(line) == 3 || line[3] == ' ' {
			return buf, nil
		}
	}
}

func isDigit(b byte) bool { return '0' <= b && b <= '9' }
