// Command smtpload is smtpgate's load generator: it sends N messages over C
// concurrent SMTP connections (STARTTLS or implicit TLS, then AUTH), K
// messages per connection, and prints throughput and latency percentiles.
// Latency is measured per message from MAIL FROM to the final reply after
// the body (the "250 queued" that promises durability).
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
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
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
}

func (r result) print(w io.Writer) {
	fmt.Fprintf(w, "sent %d messages (%d B) over %d connections x %d, %d errors in %.2fs\n",
		r.Sent, r.Size, r.Conns, r.PerConn, r.Errors, r.Seconds)
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
	var (
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
			defer func() { mu.Lock(); lat = append(lat, local...); mu.Unlock() }()
			for ctx.Err() == nil {
				first := next.Add(int64(c.perConn)) - int64(c.perConn)
				if first >= int64(c.total) {
					return
				}
				n := min(int64(c.perConn), int64(c.total)-first)
				cl, err := dial(c)
				if err != nil {
					fail(err)
					failed.Add(n - 1)
					continue
				}
				for i := int64(0); i < n; i++ {
					num := first + i
					t0 := time.Now()
					if err := sendOne(cl, c, num, body); err != nil {
						fail(err)
						failed.Add(n - i - 1)
						break
					}
					local = append(local, time.Since(t0))
					sent.Add(1)
				}
				cl.Quit() //nolint:errcheck
				cl.Close()
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		i := int(p * float64(len(lat)-1))
		return float64(lat[i].Microseconds()) / 1000
	}
	r := result{Sent: sent.Load(), Errors: failed.Load(), Seconds: el.Seconds(),
		MsgsPerSec: float64(sent.Load()) / el.Seconds(), P50ms: pct(0.50), P90ms: pct(0.90), P99ms: pct(0.99),
		MaxMs: pct(1), Conns: c.conns, PerConn: c.perConn, Size: c.size}
	if v, ok := firstErr.Load().(string); ok {
		r.FirstError = v
	}
	return r, nil
}

func dial(c config) (*smtp.Client, error) {
	tc := &tls.Config{InsecureSkipVerify: true} //nolint:gosec // a load generator against a local dev certificate
	var (
		cl  *smtp.Client
		err error
	)
	switch c.tlsMode {
	case "starttls":
		cl, err = smtp.DialStartTLS(c.addr, tc)
	case "implicit":
		cl, err = smtp.DialTLS(c.addr, tc)
	case "none":
		cl, err = smtp.Dial(c.addr)
	default:
		return nil, fmt.Errorf("-tls %q: want starttls, implicit or none", c.tlsMode)
	}
	if err != nil {
		return nil, err
	}
	if c.user != "" {
		if err := cl.Auth(sasl.NewPlainClient("", c.user, c.pass)); err != nil {
			cl.Close()
			return nil, fmt.Errorf("auth: %w", err)
		}
	}
	return cl, nil
}

func sendOne(cl *smtp.Client, c config, num int64, body []byte) error {
	to := c.to
	if strings.Contains(to, "%d") {
		to = fmt.Sprintf(to, num%int64(max(c.rcptSpan, 1)))
	}
	if err := cl.Mail(c.from, nil); err != nil {
		return err
	}
	if err := cl.Rcpt(to, nil); err != nil {
		return err
	}
	w, err := cl.Data()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "From: <%s>\r\nTo: <%s>\r\nSubject: load %d\r\nMessage-ID: <load-%d-%d@smtpload>\r\n", c.from, to, num, time.Now().UnixNano(), num)
	if _, err := w.Write(body); err != nil {
		return err
	}
	_, err = w.CloseWithResponse()
	return err
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
