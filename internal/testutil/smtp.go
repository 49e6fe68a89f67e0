package testutil

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// SMTPTimeout bounds every read, write and dial of an SMTPClient.
const SMTPTimeout = 10 * time.Second

// SMTPClient is a line-oriented SMTP client on a raw socket, for tests
// that must send exactly the bytes they choose and see every reply. Its
// methods fail the test on a network error or an unexpected reply.
type SMTPClient struct {
	// Conn is the connection, a *tls.Conn after Upgrade.
	Conn net.Conn
	// Last is the last reply read, its lines joined with "\n".
	Last string

	tb testing.TB
	r  *bufio.Reader
}

// DialSMTP connects to addr without reading anything; the connection is
// closed when the test ends.
func DialSMTP(tb testing.TB, addr string) *SMTPClient {
	tb.Helper()
	conn, err := net.DialTimeout("tcp", addr, SMTPTimeout)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	return &SMTPClient{Conn: conn, tb: tb, r: bufio.NewReader(conn)}
}

// Upgrade runs a TLS client handshake on the connection.
func (c *SMTPClient) Upgrade(cfg *tls.Config) {
	c.tb.Helper()
	tc := tls.Client(c.Conn, cfg)
	_ = tc.SetDeadline(time.Now().Add(SMTPTimeout))
	if err := tc.Handshake(); err != nil {
		c.tb.Fatalf("TLS handshake: %v", err)
	}
	c.Conn = tc
	c.r = bufio.NewReader(tc)
}

// StartTLS issues STARTTLS, expects "220 2.0.0" and upgrades.
func (c *SMTPClient) StartTLS(cfg *tls.Config) {
	c.tb.Helper()
	c.Do("STARTTLS", "220 2.0.0")
	c.Upgrade(cfg)
}

// Write sends s verbatim.
func (c *SMTPClient) Write(s string) {
	c.tb.Helper()
	_ = c.Conn.SetWriteDeadline(time.Now().Add(SMTPTimeout))
	if _, err := io.WriteString(c.Conn, s); err != nil {
		c.tb.Fatalf("write %q: %v", s, err)
	}
}

// Cmd sends a command line (CRLF added).
func (c *SMTPClient) Cmd(line string) { c.tb.Helper(); c.Write(line + "\r\n") }

// Reply reads one reply, all the lines of a multi-line one, and returns
// them joined with "\n" (also kept in Last).
func (c *SMTPClient) Reply() (string, error) {
	_ = c.Conn.SetReadDeadline(time.Now().Add(SMTPTimeout))
	var lines []string
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return strings.Join(lines, "\n"), err
		}
		line = strings.TrimRight(line, "\r\n")
		lines = append(lines, line)
		if len(line) < 4 || line[3] != '-' {
			break
		}
	}
	c.Last = strings.Join(lines, "\n")
	return c.Last, nil
}

// Expect reads a reply, checks that its last line starts with prefix, and
// returns it.
func (c *SMTPClient) Expect(prefix string) string {
	c.tb.Helper()
	got, err := c.Reply()
	if err != nil {
		c.tb.Fatalf("reading reply (want %q): %v (got %q)", prefix, err, got)
	}
	lastLine := got[strings.LastIndexByte(got, '\n')+1:]
	if !strings.HasPrefix(lastLine, prefix) {
		c.tb.Fatalf("reply %q, want %q", got, prefix)
	}
	return got
}

// Do sends a command and expects a reply starting with prefix.
func (c *SMTPClient) Do(line, prefix string) string {
	c.tb.Helper()
	c.Cmd(line)
	return c.Expect(prefix)
}

// ReadToEOF reads everything the server sends until it closes the
// connection; a timeout error means it did not close it within
// SMTPTimeout.
func (c *SMTPClient) ReadToEOF() ([]byte, error) {
	_ = c.Conn.SetReadDeadline(time.Now().Add(SMTPTimeout))
	return io.ReadAll(c.r)
}

// ExpectClosed checks that the server closes the connection with nothing
// more to say.
func (c *SMTPClient) ExpectClosed() {
	c.tb.Helper()
	_ = c.Conn.SetReadDeadline(time.Now().Add(SMTPTimeout))
	line, err := c.r.ReadString('\n')
	if err == nil {
		c.tb.Fatalf("got %q, want the connection closed", line)
	}
	if isTimeout(err) {
		c.tb.Fatalf("connection still open after %v", SMTPTimeout)
	}
}

// Transaction sends one message on an SMTP client: MAIL FROM:<from>, a
// RCPT TO for each of rcpts, and body as DATA. It returns the reply to the
// end of DATA and fails the test on any error.
func Transaction(tb testing.TB, c *smtp.Client, from string, rcpts []string, body string) *smtp.DataResponse {
	tb.Helper()
	if err := c.Mail(from, nil); err != nil {
		tb.Fatalf("MAIL FROM:<%s>: %v", from, err)
	}
	for _, rcpt := range rcpts {
		if err := c.Rcpt(rcpt, nil); err != nil {
			tb.Fatalf("RCPT TO:<%s>: %v", rcpt, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		tb.Fatalf("DATA: %v", err)
	}
	if _, err := io.WriteString(w, body); err != nil {
		tb.Fatalf("message data: %v", err)
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		tb.Fatalf("end of DATA: %v", err)
	}
	return resp
}

// isTimeout reports whether err is a network timeout.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
