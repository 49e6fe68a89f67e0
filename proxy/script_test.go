package proxy

import (
	"bufio"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSessionScripts replays the SMTP dialogues in testdata/sessions
// against a fresh server each, over real sockets and real TLS.
//
// Script lines (blank lines and lines starting with # are skipped):
//
//	listener NAME        dial that listener (smtps is dialed with TLS)
//	limits K=V ...       Limits fields for this script's server (before listener)
//	C: LINE              send LINE + CRLF
//	W: "GO STRING"       send the quoted bytes verbatim
//	S: PREFIX            read a reply; its last line must start with PREFIX
//	S= TEXT              read a reply; it must be exactly TEXT
//	S~ TEXT              the last reply must contain TEXT
//	S! TEXT              the last reply must not contain TEXT
//	TLS                  TLS handshake (after STARTTLS's 220)
//	LOGIN                EHLO, STARTTLS, EHLO, AUTH PLAIN as alice
//	EOF                  the server must close the connection
//	MESSAGES N           the Handler must have committed N messages
//	BOUNCES N            the BounceReceiver must have committed N messages
//	BODY "GO STRING"     the last body the Handler committed must be exactly this
//	BOUNCEBODY "..."     the same for the BounceReceiver
func TestSessionScripts(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "sessions", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no scripts in testdata/sessions")
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
			t.Parallel()
			runScript(t, f)
		})
	}
}

func runScript(t *testing.T, path string) {
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var (
		ts     *testServer
		c      *client
		limits Limits
	)
	sc := bufio.NewScanner(fh)
	for lineNo := 1; sc.Scan(); lineNo++ {
		line := sc.Text()
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		op, arg, _ := strings.Cut(line, " ")
		where := func() string { return path + ":" + strconv.Itoa(lineNo) }
		unquote := func() string {
			s, err := strconv.Unquote(arg)
			if err != nil {
				t.Fatalf("%s: bad quoted string %s: %v", where(), arg, err)
			}
			return s
		}
		needConn := func() {
			if c == nil {
				t.Fatalf("%s: %s before listener", where(), op)
			}
		}
		switch op {
		case "limits":
			setLimits(t, where(), &limits, arg)
		case "listener":
			ts = startServer(t, nil, withLimits(mergeTestLimits(limits)))
			if arg == "smtps" {
				c = dialTLS(t, ts.addr(arg), ts.clientTLS)
			} else {
				c = dial(t, ts.addr(arg))
			}
		case "C:":
			needConn()
			c.Cmd(arg)
		case "W:":
			needConn()
			c.Write(unquote())
		case "S:":
			needConn()
			got, err := c.Reply()
			if err != nil || !strings.HasPrefix(got[strings.LastIndexByte(got, '\n')+1:], arg) {
				t.Fatalf("%s: reply %q (err %v), want prefix %q", where(), got, err, arg)
			}
		case "S=":
			needConn()
			got, err := c.Reply()
			if err != nil || got != arg {
				t.Fatalf("%s: reply %q (err %v), want exactly %q", where(), got, err, arg)
			}
		case "S~":
			if !strings.Contains(c.Last, arg) {
				t.Fatalf("%s: reply %q does not contain %q", where(), c.Last, arg)
			}
		case "S!":
			if strings.Contains(c.Last, arg) {
				t.Fatalf("%s: reply %q contains %q", where(), c.Last, arg)
			}
		case "TLS":
			needConn()
			c.Upgrade(ts.clientTLS)
		case "LOGIN":
			needConn()
			c.login(ts.clientTLS)
		case "EOF":
			needConn()
			c.ExpectClosed()
		case "MESSAGES", "BOUNCES":
			want, err := strconv.Atoi(arg)
			if err != nil {
				t.Fatalf("%s: %v", where(), err)
			}
			h := ts.handler
			if op == "BOUNCES" {
				h = &ts.bounces.testHandler
			}
			if got := len(h.messages()); got != want {
				t.Fatalf("%s: %d messages committed, want %d", where(), got, want)
			}
		case "BODY", "BOUNCEBODY":
			h := ts.handler
			if op == "BOUNCEBODY" {
				h = &ts.bounces.testHandler
			}
			msgs := h.messages()
			if len(msgs) == 0 {
				t.Fatalf("%s: no message committed", where())
			}
			if got, want := msgs[len(msgs)-1].body, unquote(); got != want {
				t.Fatalf("%s: body %q, want %q", where(), got, want)
			}
		default:
			t.Fatalf("%s: unknown directive %q", where(), op)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
}

// mergeTestLimits puts the startServer test defaults under a script's limits.
func mergeTestLimits(l Limits) Limits {
	if l.MaxMessageBytes == 0 {
		l.MaxMessageBytes = 64 << 10
	}
	if l.MaxRecipients == 0 {
		l.MaxRecipients = 5
	}
	if l.AuthFailureDelay == 0 {
		l.AuthFailureDelay = 5 * time.Millisecond
	}
	if l.CommandTimeout == 0 {
		l.CommandTimeout = 10 * time.Second
	}
	return l
}

// setLimits parses "Field=value ..." into Limits (ints and durations).
func setLimits(t *testing.T, where string, l *Limits, arg string) {
	v := reflect.ValueOf(l).Elem()
	for _, kv := range strings.Fields(arg) {
		k, val, _ := strings.Cut(kv, "=")
		f := v.FieldByName(k)
		if !f.IsValid() {
			t.Fatalf("%s: no limit %q", where, k)
		}
		if f.Type() == reflect.TypeFor[time.Duration]() {
			d, err := time.ParseDuration(val)
			if err != nil {
				t.Fatalf("%s: %s: %v", where, k, err)
			}
			f.SetInt(int64(d))
			continue
		}
		n, err := strconv.ParseInt(val, 10, 64)
		if err != nil {
			t.Fatalf("%s: %s: %v", where, k, err)
		}
		f.SetInt(n)
	}
}
