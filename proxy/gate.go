package proxy

import (
	"bufio"
	"errors"
	"time"

	"go.uber.org/zap"
)

const (
	// gateBufSize bounds a command line before STARTTLS.
	gateBufSize = 2048
	// maxGateRejects is how many refused commands a client may send before
	// STARTTLS; the next one closes the connection.
	maxGateRejects = 10
)

// gate is the plaintext phase of a STARTTLS listener. go-smtp alone would
// accept MAIL, RCPT and DATA without TLS (only AUTH is refused, with 523),
// so before STARTTLS the gate reads the client's command lines itself and
// passes go-smtp only EHLO, HELO, NOOP, RSET, QUIT and STARTTLS. Every other
// command is answered here with "530 5.7.0 Must issue a STARTTLS command
// first", AUTH and BDAT included, and never reaches a Session.
//
// The gate hands go-smtp one line per Read. go-smtp only reads again once it
// has answered that line, so replies written here stay in order with
// go-smtp's even when the client pipelines. When STARTTLS goes through, the
// gate is dropped together with whatever the client sent after it in the
// same flight: plaintext commands injected before the TLS handshake
// (CVE-2011-0411 style) are discarded, never executed inside TLS.
type gate struct {
	br      *bufio.Reader
	pending []byte // rest of a passed line that did not fit go-smtp's buffer
	leave   bool   // STARTTLS passed: drop the gate once pending is out
	rejects int
}

func newGate(c *conn) *gate {
	return &gate{br: bufio.NewReaderSize(c.Conn, gateBufSize)}
}

// gateRead is conn.Read before STARTTLS.
func (c *conn) gateRead(p []byte) (int, error) {
	g := c.gate
	if len(g.pending) > 0 {
		n := copy(p, g.pending)
		g.pending = g.pending[n:]
		if len(g.pending) == 0 && g.leave {
			c.leaveGate()
		}
		return n, nil
	}
	for first := true; ; first = false {
		if !first {
			// go-smtp set the deadline for the line it asked for; the
			// lines the gate answers itself each get a fresh one.
			_ = c.Conn.SetReadDeadline(time.Now().Add(c.idle))
		}
		line, err := g.br.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				c.gateFinal(linePlainLineTooLong, "line too long")
				return 0, errClosed
			}
			return 0, c.readFailed(err)
		}
		if c.stopping.Load() {
			c.gateFinal(lineShuttingDown, "shutdown")
			return 0, errClosed
		}
		switch verb(line) {
		case "EHLO", "HELO", "NOOP", "RSET", "QUIT":
			return g.pass(p, line), nil
		case "STARTTLS":
			n := g.pass(p, line)
			c.tlsPending = true
			g.leave = true
			if len(g.pending) == 0 {
				c.leaveGate()
			}
			return n, nil
		case "BDAT":
			// The chunk that follows cannot be told apart from commands.
			c.gateFinal(linePlainBDATRejected, "bdat before starttls")
			return 0, errClosed
		}
		g.rejects++
		if g.rejects > maxGateRejects {
			c.gateFinal(linePlainTooManyErr, "too many commands before starttls")
			return 0, errClosed
		}
		if err := c.gateWrite(lineTLSRequired); err != nil {
			c.end("write failed")
			c.dead.Store(true)
			return 0, errClosed
		}
	}
}

// pass copies a line for go-smtp, keeping what does not fit in p.
func (g *gate) pass(p, line []byte) int {
	n := copy(p, line)
	if n < len(line) {
		g.pending = append(g.pending[:0], line[n:]...)
	}
	return n
}

// leaveGate drops the gate after STARTTLS together with anything the
// client sent after STARTTLS in plaintext.
func (c *conn) leaveGate() {
	if n := c.gate.br.Buffered(); n > 0 {
		c.srv.log.Info("discarded plaintext pipelined after STARTTLS",
			zap.Stringer("remote", c.remote), zap.Int("bytes", n))
	}
	c.gate = nil
}

// gateWrite writes a reply line on the plaintext socket.
func (c *conn) gateWrite(line string) error {
	_ = c.Conn.SetWriteDeadline(time.Now().Add(c.idle))
	_, err := c.Conn.Write([]byte(line))
	return err
}

// gateFinal writes a last reply line; the connection is then over.
func (c *conn) gateFinal(line, reason string) {
	c.end(reason)
	_ = c.gateWrite(line)
	c.dead.Store(true)
}

// verb returns the upper-cased command word of a command line.
func verb(line []byte) string {
	end := 0
	for end < len(line) && end < 9 && line[end] != ' ' && line[end] != '\r' && line[end] != '\n' {
		end++
	}
	var b [9]byte
	for i := 0; i < end; i++ {
		c := line[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		b[i] = c
	}
	switch string(b[:end]) { // no allocation: compared, not kept
	case "EHLO":
		return "EHLO"
	case "HELO":
		return "HELO"
	case "NOOP":
		return "NOOP"
	case "RSET":
		return "RSET"
	case "QUIT":
		return "QUIT"
	case "STARTTLS":
		return "STARTTLS"
	case "BDAT":
		return "BDAT"
	}
	return ""
}
