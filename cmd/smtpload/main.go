// Command smtpload is smtpgate's load generator: it sends N messages over C
// concurrent SMTP connections, K messages per connection, and prints
// throughput and latency percentiles.
//
// It behaves like an MTA's SMTP client (Postfix's smtp, for one), with an
// SMTP client of its own that costs little CPU per message, so that a
// benchmark on one machine measures the server rather than the client. On
// each connection: the greeting, EHLO, STARTTLS (or implicit TLS, or none),
// EHLO again, AUTH PLAIN in one line; then per message, when the server
// offers PIPELINING (RFC 2920), MAIL FROM (with SIZE= when the server
// offers SIZE), RCPT TO and DATA in one write, their three replies, then
// the message in one write (the standard header lines, then the body,
// dot-stuffed once for the whole run) and its reply; then QUIT. With
// -pipelining=false, or a server without PIPELINING, each command waits
// for its reply. TLS offers only X25519 by default, what OpenSSL 3.0
// clients offer first (-curves default: Go's own list, with the
// post-quantum X25519MLKEM768 first), in records of up to 16 KB, and
// resumes the TLS session of an earlier connection as Postfix does with its
// TLS session cache (-tls-resume=false: a full handshake every time). Every
// read and write ends at -timeout.
//
// Latency is measured per message from the write of MAIL FROM to the final
// reply after the body (the "250 queued" that promises durability). A
// message whose transaction fails counts as an error, and so does every
// message still to send on its connection, which is closed.
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type config struct {
	addr     string
	tlsMode  string
	user     string
	pass     string
	from     string
	to       string
	total    int
	conns    int
	perConn  int
	size     int
	timeout  time.Duration
	jsonOut  bool
	devData  string
	rcptSpan int
	bodyFile string
	// pipelining: pipeline MAIL, RCPT and DATA when the server offers
	// PIPELINING.
	pipelining bool
	curves     string
	tlsResume  bool
}

func main() {
	var c config
	flag.StringVar(&c.addr, "addr", "127.0.0.1:2587", "SMTP address")
	flag.StringVar(&c.tlsMode, "tls", "starttls", "starttls, implicit or none")
	flag.StringVar(&c.user, "user", "dev", "AUTH user (empty: no AUTH)")
	flag.StringVar(&c.pass, "pass", "", "AUTH password")
	flag.StringVar(&c.devData, "dev-data", "", "read the dev password from DIR/dev-secrets.json")
	flag.StringVar(&c.from, "from", "load@example.com", "envelope sender")
	flag.StringVar(&c.to, "to", "inbox%d@example.com", "recipient; %d is replaced by the message number modulo -rcpts")
	flag.IntVar(&c.rcptSpan, "rcpts", 100, "number of distinct recipients")
	flag.IntVar(&c.total, "n", 5000, "messages in total")
	flag.IntVar(&c.conns, "c", 50, "concurrent connections")
	flag.IntVar(&c.perConn, "k", 10, "messages per connection")
	flag.IntVar(&c.size, "size", 5120, "message size in bytes")
	flag.StringVar(&c.bodyFile, "body", "", "send FILE after the standard headers instead of a -size text body: its own header lines (Content-Type, ...), a blank line, the body; LF line endings become CRLF")
	flag.DurationVar(&c.timeout, "timeout", 2*time.Minute, "give up after this long")
	flag.BoolVar(&c.jsonOut, "json", false, "print the result as JSON")
	flag.BoolVar(&c.pipelining, "pipelining", true, "send MAIL FROM, RCPT TO and DATA in one write when the server offers PIPELINING; false: one command per round trip")
	flag.BoolVar(&c.tlsResume, "tls-resume", true, "resume TLS sessions across connections, as Postfix does with smtp_tls_session_cache_database (set by Debian's suggested TLS settings); false: a full handshake on every connection")
	flag.StringVar(&c.curves, "curves", "x25519", "TLS key exchange groups offered, in order: a comma list of x25519, p256, x25519mlkem768; or default (Go's own, X25519MLKEM768 first)")
	flag.Parse()
	if c.devData != "" && c.pass == "" {
		b, err := os.ReadFile(filepath.Join(c.devData, "dev-secrets.json"))
		if err != nil {
			fatal(err)
		}
		var s struct{ Password string }
		if err := json.Unmarshal(b, &s); err != nil {
			fatal(err)
		}
		c.pass = s.Password
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	res, err := run(ctx, c)
	if err != nil {
		fatal(err)
	}
	if c.jsonOut {
		json.NewEncoder(os.Stdout).Encode(res) //nolint:errcheck
	} else {
		res.print(os.Stdout)
	}
	if res.Errors > 0 {
		os.Exit(1)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "smtpload:", err)
	os.Exit(2)
}

// result is what a run measured.
type result struct {
	Sent       int64   `json:"sent"`
	Errors     int64   `json:"errors"`
	FirstError string  `json:"first_error,omitempty"`
	Seconds    float64 `json:"seconds"`
	MsgsPerSec float64 `json:"msgs_per_sec"`
	P50ms      float64 `json:"p50_ms"`
	P90ms      float64 `json:"p90_ms"`
	P99ms      float64 `json:"p99_ms"`
	MaxMs      float64 `json:"max_ms"`
	Conns      int     `json:"conns"`
	PerConn    int     `json:"per_conn"`
	Size       int     `json:"size"`
	// Pipelining is true when every connection pipelined its commands
	// (-pipelining and a server that offers PIPELINING).
	Pipelining bool   `json:"pipelining"`
	Curves     string `json:"curves"`
	// Resumed is the number of connections whose TLS handshake resumed an
	// earlier connection's session (-tls-resume).
	Resumed int64 `json:"resumed"`
}

func (r result) print(w io.Writer) {
	pipe := "off"
	if r.Pipelining {
		pipe = "on"
	}
	fmt.Fprintf(w, "sent %d messages (%d B) over %d connections x %d, %d errors in %.2fs; pipelining %s, curves %s, %d TLS sessions resumed\n",
		r.Sent, r.Size, r.Conns, r.PerConn, r.Errors, r.Seconds, pipe, r.Curves, r.Resumed)
	fmt.Fprintf(w, "throughput %.0f msgs/s\nlatency p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  max %.2f ms\n",
		r.MsgsPerSec, r.P50ms, r.P90ms, r.P99ms, r.MaxMs)
	if r.FirstError != "" {
		fmt.Fprintf(w, "first error: %s\n", r.FirstError)
	}
}

func run(ctx context.Context, c config) (result, error) {
	if c.conns < 1 || c.perConn < 1 || c.total < 1 {
		return result{}, errors.New("-n, -c and -k must be positive")
	}
	body := makeBody(c.size)
	if c.bodyFile != "" {
		b, err := readBody(c.bodyFile)
		if err != nil {
			return result{}, err
		}
		body, c.size = b, len(b)
	}
	curves, curveNames, err := parseCurves(c.curves)
	if err != nil {
		return result{}, err
	}
	snd, err := newSender(c, body, curves)
	if err != nil {
		return result{}, err
	}
	var (
		unpiped  atomic.Bool  // a connection did not pipeline
		next     atomic.Int64 // message numbers handed out
		sent     atomic.Int64
		failed   atomic.Int64
		firstErr atomic.Value
		mu       sync.Mutex
		lat      = make([]time.Duration, 0, c.total)
		wg       sync.WaitGroup
	)
	fail := func(err error) {
		failed.Add(1)
		firstErr.CompareAndSwap(nil, err.Error())
	}
	start := time.Now()
	for w := 0; w < c.conns; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, c.total/c.conns+1)
			var prev *client // its buffers serve the next connection
			defer func() { mu.Lock(); lat = append(lat, local...); mu.Unlock() }()
			for ctx.Err() == nil {
				first := next.Add(int64(c.perConn)) - int64(c.perConn)
				if first >= int64(c.total) {
					return
				}
				n := min(int64(c.perConn), int64(c.total)-first)
				cl, err := snd.dial(ctx, prev)
				if err != nil {
					fail(err)
					failed.Add(n - 1)
					continue
				}
				if !cl.pipelining {
					unpiped.Store(true)
				}
				for i := int64(0); i < n; i++ {
					d, err := cl.send(first + i)
					if err != nil {
						if !errors.As(err, new(*replyError)) {
							cl.broken = true
						}
						fail(err)
						failed.Add(n - i - 1)
						break
					}
					local = append(local, d)
					sent.Add(1)
				}
				cl.quit()
				prev = cl
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	slices.Sort(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		i := int(p * float64(len(lat)-1))
		return float64(lat[i].Microseconds()) / 1000
	}
	r := result{Sent: sent.Load(), Errors: failed.Load(), Seconds: el.Seconds(),
		MsgsPerSec: float64(sent.Load()) / el.Seconds(), P50ms: pct(0.50), P90ms: pct(0.90), P99ms: pct(0.99),
		MaxMs: pct(1), Conns: c.conns, PerConn: c.perConn, Size: c.size,
		Pipelining: c.pipelining && !unpiped.Load(), Curves: curveNames, Resumed: snd.resumed.Load()}
	if v, ok := firstErr.Load().(string); ok {
		r.FirstError = v
	}
	return r, nil
}

// parseCurves parses -curves: "default" (nil: Go's own groups), or a comma
// list of x25519, p256 and x25519mlkem768. It returns the groups and the
// list as given, lower-cased.
func parseCurves(s string) ([]tls.CurveID, string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "default" {
		return nil, s, nil
	}
	var ids []tls.CurveID
	names := strings.Split(s, ",")
	for i, name := range names {
		name = strings.TrimSpace(name)
		names[i] = name
		var id tls.CurveID
		switch name {
		case "x25519":
			id = tls.X25519
		case "p256":
			id = tls.CurveP256
		case "x25519mlkem768":
			id = tls.X25519MLKEM768
		default:
			return nil, "", fmt.Errorf("-curves %q: %q is not x25519, p256 or x25519mlkem768 (or the whole list: default)", s, name)
		}
		if slices.Contains(ids, id) {
			return nil, "", fmt.Errorf("-curves %q: %s twice", s, name)
		}
		ids = append(ids, id)
	}
	return ids, strings.Join(names, ","), nil
}

// readBody reads the -body file: the header lines after the standard ones,
// a blank line and the body, with every line ending made CRLF.
func readBody(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("-body: %w", err)
	}
	s := strings.ReplaceAll(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n", "\r\n")
	head, _, ok := strings.Cut("\r\n"+s, "\r\n\r\n")
	if !ok {
		return nil, fmt.Errorf("-body %s: no blank line between its header lines and the body", path)
	}
	for _, l := range strings.Split(head, "\r\n")[1:] {
		if name, _, ok := strings.Cut(l, ":"); l[0] != ' ' && l[0] != '\t' && (!ok || name == "" || strings.ContainsAny(name, " \t<")) {
			return nil, fmt.Errorf("-body %s: %q is not a header line (the file starts with header lines such as Content-Type, then a blank line)", path, l)
		}
	}
	if !strings.HasSuffix(s, "\r\n") {
		s += "\r\n"
	}
	return []byte(s), nil
}

// makeBody returns a header tail and body of about size bytes, in 76-byte
// lines.
func makeBody(size int) []byte {
	var b strings.Builder
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
	line := strings.Repeat("The quick brown fox jumps over the lazy dog. ", 2)[:74] + "\r\n"
	for b.Len() < size-120 {
		b.WriteString(line)
	}
	return []byte(b.String())
}
