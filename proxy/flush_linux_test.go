//go:build linux

package proxy

import (
	"encoding/binary"
	"net"
	"strings"
	"syscall"
	"testing"
	"unsafe"
)

// dataSegsIn returns how many TCP segments carrying data the socket under
// nc has received (tcpi_data_segs_in of TCP_INFO, Linux 4.6 and later). On
// loopback every write system call of the server (TCP_NODELAY) arrives as
// one segment.
func dataSegsIn(t testing.TB, nc net.Conn) uint32 {
	t.Helper()
	const offset = 152 // of tcpi_data_segs_in in struct tcp_info
	rc, err := nc.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var (
		info  [256]byte
		size  = uint32(len(info))
		errno syscall.Errno
	)
	if err := rc.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall6(syscall.SYS_GETSOCKOPT, fd, syscall.IPPROTO_TCP, syscall.TCP_INFO,
			uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&size)), 0)
	}); err != nil {
		t.Fatal(err)
	}
	if errno != 0 {
		t.Fatalf("getsockopt TCP_INFO: %v", errno)
	}
	if size < offset+4 {
		t.Skipf("TCP_INFO is %d bytes: no tcpi_data_segs_in in this kernel", size)
	}
	return binary.NativeEndian.Uint32(info[offset:])
}

// segments runs f and returns how many data segments raw received
// meanwhile. f must read everything the server sends in reply to what it
// sends.
func segments(t *testing.T, raw net.Conn, f func()) uint32 {
	t.Helper()
	before := dataSegsIn(t, raw)
	f()
	return dataSegsIn(t, raw) - before
}

// TestPipelinedRepliesShareOneWrite: the replies to commands a client
// pipelines (RFC 2920) leave the server in one write, one TCP segment,
// over STARTTLS, implicit TLS and plaintext, and the message still goes
// through. go-smtp alone writes each reply line on its own.
func TestPipelinedRepliesShareOneWrite(t *testing.T) {
	const group = "MAIL FROM:<alice@example.com>\r\nRCPT TO:<b@example.net>\r\nRCPT TO:<c@example.net>\r\nDATA\r\n"
	for _, tc := range []struct {
		listener string
		rcpts    string // RCPT TO addresses accepted there
	}{
		{"submission", ""},
		{"smtps", ""},
		{"bounces", "bounce"},
	} {
		t.Run(tc.listener, func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, nil)
			c := dialRaw(t, ts.addr(tc.listener))
			raw := c.Conn
			handler := ts.handler
			cmds := group
			switch tc.listener {
			case "submission":
				c.Expect("220 ")
				// The gate's refusals before STARTTLS are held too.
				if n := segments(t, raw, func() {
					c.Write("MAIL FROM:<alice@example.com>\r\nRCPT TO:<b@example.net>\r\nNOOP\r\n")
					c.Expect("530 5.7.0")
					c.Expect("530 5.7.0")
					c.Expect("250 2.0.0")
				}); n != 1 {
					t.Errorf("gate replies came in %d segments, want 1", n)
				}
				c.login(ts.clientTLS)
			case "smtps":
				c.Upgrade(ts.clientTLS)
				c.Expect("220 ")
				c.Do("EHLO client.test", "250 ")
				c.Do("AUTH PLAIN "+plainIR("", "alice", "secret"), "235 ")
			case "bounces":
				c.Expect("220 ")
				handler = &ts.bounces.testHandler
				cmds = strings.NewReplacer("alice@example.com", "", "b@example.net", "b+ok1@bounce.test",
					"c@example.net", "b+ok2@bounce.test").Replace(group)
			}
			// EHLO's multi-line reply is one write, not one per line.
			if n := segments(t, raw, func() {
				c.Do("EHLO client.test", "250 ")
			}); n != 1 || !strings.Contains(c.Last, "250-PIPELINING") {
				t.Errorf("EHLO reply %q came in %d segments, want 1", c.Last, n)
			}
			if n := segments(t, raw, func() {
				c.Write(cmds)
				c.Expect("250 2.0.0 Roger")
				c.Expect("250 2.0.0 I'll make sure")
				c.Expect("250 2.0.0 I'll make sure")
				c.Expect("354 ")
			}); n != 1 {
				t.Errorf("the replies to MAIL, RCPT, RCPT, DATA came in %d segments, want 1", n)
			}
			c.Write(message("pipelined", "one write") + ".\r\nQUIT\r\n")
			c.Expect("250 2.0.0 queued as")
			c.Expect("221 ")
			c.ExpectClosed()
			msgs := handler.messages()
			if len(msgs) != 1 || len(msgs[0].env.Recipients) != 2 || msgs[0].body != message("pipelined", "one write") {
				t.Fatalf("committed %+v, want the message to 2 recipients", msgs)
			}
		})
	}
}
