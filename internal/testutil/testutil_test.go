package testutil

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
	"github.com/jackc/pgx/v5"
)

// TestSelfSignedTLS runs a handshake over loopback with the two configs,
// and checks that another test certificate is not trusted.
func TestSelfSignedTLS(t *testing.T) {
	server, client := SelfSignedTLS(t)
	_, otherClient := SelfSignedTLS(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", server)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), client)
	if err != nil {
		t.Fatalf("handshake with the trusting client config: %v", err)
	}
	c.Close()
	if c, err := tls.Dial("tcp", ln.Addr().String(), otherClient); err == nil {
		c.Close()
		t.Fatal("a client trusting another test certificate completed the handshake")
	}
}

// TestSMTPClient talks to a scripted loopback server: a multi-line reply
// is read whole, Do checks the last line, and ExpectClosed sees the close.
func TestSMTPClient(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		r := bufio.NewReader(conn)
		io.WriteString(conn, "220 mx.test ESMTP\r\n")
		line, _ := r.ReadString('\n')
		got <- line
		io.WriteString(conn, "250-mx.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n")
		r.ReadString('\n')
		io.WriteString(conn, "221 2.0.0 Bye\r\n")
	}()
	c := DialSMTP(t, ln.Addr().String())
	c.Expect("220 mx.test")
	if reply := c.Do("EHLO client.test", "250 STARTTLS"); reply != "250-mx.test\n250-PIPELINING\n250 STARTTLS" || c.Last != reply {
		t.Errorf("EHLO reply %q (Last %q), want the three lines", reply, c.Last)
	}
	if line := <-got; line != "EHLO client.test\r\n" {
		t.Errorf("server read %q", line)
	}
	c.Do("QUIT", "221 2.0.0")
	c.ExpectClosed()
}

// TestTransaction sends a message with go-smtp's client to a scripted
// loopback server, which sees the envelope and the data and answers the
// end of DATA with a reply Transaction returns.
func TestTransaction(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	seen := make(chan []string, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		r := bufio.NewReader(conn)
		var lines []string
		io.WriteString(conn, "220 mx.test ESMTP\r\n")
		inData := false
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				seen <- lines
				return
			}
			lines = append(lines, strings.TrimRight(line, "\r\n"))
			switch {
			case inData && line == ".\r\n":
				inData = false
				io.WriteString(conn, "250 2.0.0 queued as ID1\r\n")
			case inData:
			case strings.HasPrefix(line, "EHLO"):
				io.WriteString(conn, "250-mx.test\r\n250 ENHANCEDSTATUSCODES\r\n")
			case strings.HasPrefix(line, "DATA"):
				inData = true
				io.WriteString(conn, "354 go ahead\r\n")
			case strings.HasPrefix(line, "QUIT"):
				io.WriteString(conn, "221 2.0.0 bye\r\n")
				seen <- lines
				return
			default:
				io.WriteString(conn, "250 2.0.0 ok\r\n")
			}
		}
	}()
	c, err := smtp.Dial(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	resp := Transaction(t, c, "", []string{"a@example.org", "b@example.org"}, "Subject: hi\r\n\r\nbody\r\n")
	if !strings.HasSuffix(resp.StatusText, "queued as ID1") {
		t.Errorf("DATA reply text %q, want it to end with %q", resp.StatusText, "queued as ID1")
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(<-seen, "|")
	want := "MAIL FROM:<>|RCPT TO:<a@example.org>|RCPT TO:<b@example.org>|DATA|Subject: hi||body|.|QUIT"
	if !strings.HasSuffix(got, want) {
		t.Errorf("server saw %q, want it to end with %q", got, want)
	}
}

// TestWithSearchPath sets search_path in both DSN forms.
func TestWithSearchPath(t *testing.T) {
	for _, tc := range []struct{ dsn, want string }{
		{"postgres://u@h:5432/db?sslmode=disable", "postgres://u@h:5432/db?search_path=s1&sslmode=disable"},
		{"postgresql://u@h/db", "postgresql://u@h/db?search_path=s1"},
		{"host=h dbname=db", "host=h dbname=db search_path=s1"},
	} {
		if got := WithSearchPath(t, tc.dsn, "s1"); got != tc.want {
			t.Errorf("WithSearchPath(%q) = %q, want %q", tc.dsn, got, tc.want)
		}
	}
}

// TestPostgresSchema opens the schema's DSN, finds the schema current, and
// finds it gone once its test has ended.
func TestPostgresSchema(t *testing.T) {
	base := PostgresDSN(t)
	var schema string
	t.Run("schema", func(t *testing.T) {
		dsn := PostgresSchema(t)
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if err := conn.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
			t.Fatalf("current_schema: %v", err)
		}
		if !strings.HasPrefix(schema, "smtpgate_test_") {
			t.Fatalf("current schema %q", schema)
		}
	})
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM information_schema.schemata WHERE schema_name = $1`, schema).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("schema %s still exists after its test", schema)
	}
}
