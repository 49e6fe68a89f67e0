package smtpclient

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"

	"github.com/emersion/go-smtp"
)

// Limits on what a server may send in one reply: RFC 5321 section 4.5.3.1.5
// caps a reply line at 512 octets; a line longer than the read buffer, or a
// reply of more lines than maxReplyLines, is a protocol error rather than
// memory the server may make us spend.
const (
	replyBufferSize = 4 << 10
	maxReplyLines   = 128
	// writeBufferSize holds a pipelined command group, and a usual message
	// with its final dot, so that each goes out in one write.
	writeBufferSize = 16 << 10
)

// wire is a session's mail-transaction channel once EHLO (and AUTH) are
// done: commands are buffered and go out when flushed, so that a pipelined
// group (RFC 2920) is one write, and replies are read in order.
type wire struct {
	r *bufio.Reader
	w *bufio.Writer
}

func newWire(conn net.Conn) *wire {
	return &wire{r: bufio.NewReaderSize(conn, replyBufferSize), w: bufio.NewWriterSize(conn, writeBufferSize)}
}

// command buffers one command line; its parts are written one after the
// other, then CRLF.
func (w *wire) command(parts ...string) {
	for _, p := range parts {
		w.w.WriteString(p)
	}
	w.w.WriteString("\r\n")
}

// flush sends the buffered commands.
func (w *wire) flush() error { return w.w.Flush() }

// errProtocol marks replies that do not follow RFC 5321's syntax.
var errProtocol = errors.New("malformed reply")

// reply reads one reply and returns its code and its text: the lines after
// the code joined with "\n", as net/textproto does. A reply whose code is
// not in class (2 for "2xx") is returned as an *smtp.SMTPError as well.
func (w *wire) reply(class int) (int, string, error) {
	var text strings.Builder
	code := 0
	for n := 0; ; n++ {
		line, err := w.r.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return 0, "", fmt.Errorf("%w: a line longer than %d bytes", errProtocol, replyBufferSize)
			}
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, "", err
		}
		if n == maxReplyLines {
			return 0, "", fmt.Errorf("%w: more than %d lines", errProtocol, maxReplyLines)
		}
		line = bytes.TrimRight(line, "\r\n")
		c, more, rest, ok := replyLine(line)
		if !ok {
			return 0, "", fmt.Errorf("%w: %q", errProtocol, truncate(line, 64))
		}
		if n > 0 && c != code {
			return 0, "", fmt.Errorf("%w: code %d in a reply that started with %d", errProtocol, c, code)
		}
		code = c
		if n > 0 {
			text.WriteByte('\n')
		}
		text.Write(rest)
		if !more {
			break
		}
	}
	msg := text.String()
	if code/100 != class {
		return code, msg, smtpError(code, msg)
	}
	return code, msg, nil
}

// replyLine parses "250-text" (more follows), "250 text" or "250".
func replyLine(line []byte) (code int, more bool, text []byte, ok bool) {
	if len(line) < 3 || line[0] < '2' || line[0] > '5' || !isDigit(line[1]) || !isDigit(line[2]) {
		return 0, false, nil, false
	}
	code = int(line[0]-'0')*100 + int(line[1]-'0')*10 + int(line[2]-'0')
	if len(line) == 3 {
		return code, false, nil, true
	}
	switch line[3] {
	case '-':
		return code, true, line[4:], true
	case ' ':
		return code, false, line[4:], true
	}
	return 0, false, nil, false
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// smtpError makes the error of a reply, with its enhanced status code
// (RFC 3463) taken out of the text when there is one; RFC 2034 repeats it
// on every line, and the repetitions are dropped too.
func smtpError(code int, msg string) *smtp.SMTPError {
	se := &smtp.SMTPError{Code: code, Message: msg}
	first, rest, ok := strings.Cut(msg, " ")
	if !ok {
		return se
	}
	if enh, ok := parseEnhanced(first); ok {
		se.EnhancedCode = enh
		se.Message = strings.ReplaceAll(rest, "\n"+first+" ", "\n")
	}
	return se
}

// parseEnhanced parses "class.subject.detail".
func parseEnhanced(s string) (smtp.EnhancedCode, bool) {
	var e smtp.EnhancedCode
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return e, false
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || len(p) > 3 {
			return e, false
		}
		e[i] = n
	}
	return e, true
}

// writeData writes msg dot-stuffed (RFC 5321 section 4.5.2) and ended by
// the final dot, every line ending made CRLF as net/textproto's DotWriter
// makes it (a bare LF becomes CRLF, and so does a CR that ends the message;
// a last line without an ending gets one; an empty message is one empty
// line), and a bare CR within a line passed through. It only buffers:
// flush sends.
func (w *wire) writeData(msg []byte) {
	if len(msg) == 0 {
		w.w.WriteString("\r\n")
	}
	for len(msg) > 0 {
		var line []byte
		if lf := bytes.IndexByte(msg, '\n'); lf >= 0 {
			line, msg = msg[:lf], msg[lf+1:]
		} else {
			line, msg = msg, nil
		}
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		if len(line) > 0 && line[0] == '.' {
			w.w.WriteByte('.')
		}
		w.w.Write(line)
		w.w.WriteString("\r\n")
	}
	w.w.WriteString(".\r\n")
}
