package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// smtpgateBin is the binary under test, set once by TestMain before any test
// runs and only read afterwards.
var smtpgateBin string

const (
	readyTimeout = 20 * time.Second // from start to the ready file
	inboxTimeout = 10 * time.Second // from an acknowledged send to the message in the API

	keyOne = "key-one" // API key scoped to app1
	keyAll = "key-all" // API key for every login
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if p := os.Getenv("SMTPGATE_E2E_BIN"); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		}
		smtpgateBin = abs
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "smtpgate-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	smtpgateBin = filepath.Join(dir, "smtpgate")
	build := exec.Command("go", "build", "-o", smtpgateBin, "github.com/smtpgate/smtpgate/cmd/smtpgate")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/smtpgate: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// credential is one login of a generated policy.
type credential struct {
	Login     string
	Password  string
	AllowFrom []string
	Hash      string // filled in by renderPolicy
}

// Logins used across the tests.
var (
	app1 = credential{Login: "app1", Password: "app1-Secret-Pw", AllowFrom: []string{"*@app1.test"}}
	app2 = credential{Login: "app2", Password: "app2-Secret-Pw"}
	app3 = credential{Login: "app3", Password: "app3-Secret-Pw"}
)

// policyConf is what testdata/policy.hcl.tmpl is rendered from.
type policyConf struct {
	DataDir     string
	Credentials []credential
}

// renderPolicy hashes the passwords with `smtpgate hash-password` and renders
// the policy template.
func renderPolicy(t testing.TB, conf policyConf) []byte {
	t.Helper()
	tmpl, err := template.ParseFiles(filepath.Join("testdata", "policy.hcl.tmpl"))
	if err != nil {
		t.Fatalf("policy template: %v", err)
	}
	creds := make([]credential, len(conf.Credentials))
	for i, c := range conf.Credentials {
		if c.Hash == "" {
			c.Hash = hashPassword(t, c.Password)
		}
		creds[i] = c
	}
	conf.Credentials = creds
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, conf); err != nil {
		t.Fatalf("policy template: %v", err)
	}
	return buf.Bytes()
}

// hashPassword runs `smtpgate hash-password` with password on standard input.
func hashPassword(t testing.TB, password string) string {
	t.Helper()
	cmd := exec.Command(smtpgateBin, "hash-password")
	cmd.Stdin = strings.NewReader(password + "\n")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("smtpgate hash-password: %v\n%s", err, stderr.Bytes())
	}
	h := strings.TrimSpace(string(out))
	if h == "" || strings.Contains(h, password) {
		t.Fatalf("smtpgate hash-password printed %q", h)
	}
	return h
}

// lockedBuffer collects a process's output while tests read it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// readyAddrs is the JSON smtpgate writes to --ready-file.
type readyAddrs struct {
	SMTP map[string]string `json:"smtp"`
	HTTP string            `json:"http"`
}

// instance is one running smtpgate process.
type instance struct {
	dir        string // holds the policy and ready files
	policyPath string // "" for the embedded dev policy
	dataDir    string
	args       []string
	cmd        *exec.Cmd
	stdout     *lockedBuffer
	stderr     *lockedBuffer
	exited     chan struct{}
	waitErr    error // valid once exited is closed
	addrs      readyAddrs
}

// start writes a policy with the given credentials (default app1 and app2)
// into a new temp dir and runs `smtpgate serve` on it.
func start(t testing.TB, creds ...credential) *instance {
	t.Helper()
	if len(creds) == 0 {
		creds = []credential{app1, app2}
	}
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	policyPath := filepath.Join(dir, "policy.hcl")
	src := renderPolicy(t, policyConf{DataDir: dataDir, Credentials: creds})
	if err := os.WriteFile(policyPath, src, 0o600); err != nil {
		t.Fatal(err)
	}
	return launch(t, dir, policyPath, dataDir, "serve", "--policy", policyPath, "--log-level", "debug")
}

// restart runs a new process with the same policy and data directory; in
// must have exited.
func (in *instance) restart(t testing.TB) *instance {
	t.Helper()
	select {
	case <-in.exited:
	default:
		t.Fatal("restart of a running instance")
	}
	return launch(t, in.dir, in.policyPath, in.dataDir, in.args...)
}

// launch runs smtpgate with args plus --ready-file and waits until it is
// listening. The process is stopped, and its output logged if the test
// failed, when the test ends.
func launch(t testing.TB, dir, policyPath, dataDir string, args ...string) *instance {
	t.Helper()
	ready := filepath.Join(dir, "ready.json")
	_ = os.Remove(ready)
	in := &instance{
		dir: dir, policyPath: policyPath, dataDir: dataDir, args: args,
		stdout: &lockedBuffer{}, stderr: &lockedBuffer{}, exited: make(chan struct{}),
	}
	in.cmd = exec.Command(smtpgateBin, append(append([]string{}, args...), "--ready-file", ready)...)
	in.cmd.Dir = dir
	in.cmd.Stdout = in.stdout
	in.cmd.Stderr = in.stderr
	if err := in.cmd.Start(); err != nil {
		t.Fatalf("start smtpgate: %v", err)
	}
	go func() {
		in.waitErr = in.cmd.Wait()
		close(in.exited)
	}()
	t.Cleanup(func() {
		in.stop()
		if t.Failed() {
			t.Logf("smtpgate %s (pid %d) stdout:\n%s", strings.Join(args, " "), in.cmd.Process.Pid, tail(in.stdout.String(), 100))
			t.Logf("smtpgate (pid %d) stderr:\n%s", in.cmd.Process.Pid, tail(in.stderr.String(), 300))
		}
	})

	deadline := time.Now().Add(readyTimeout)
	for {
		if b, err := os.ReadFile(ready); err == nil && len(b) > 0 {
			if err := json.Unmarshal(b, &in.addrs); err != nil {
				t.Fatalf("ready file %s: %v: %q", ready, err, b)
			}
			return in
		}
		select {
		case <-in.exited:
			t.Fatalf("smtpgate exited before it was ready: %v\nstdout:\n%s\nstderr:\n%s", in.waitErr, in.stdout, tail(in.stderr.String(), 100))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("smtpgate wrote no ready file within %v", readyTimeout)
		}
	}
}

// stop ends the process: SIGTERM, then SIGKILL after 10 s.
func (in *instance) stop() {
	select {
	case <-in.exited:
		return
	default:
	}
	_ = in.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-in.exited:
	case <-time.After(10 * time.Second):
		_ = in.cmd.Process.Kill()
		<-in.exited
	}
}

// kill ends the process with SIGKILL and waits for it.
func (in *instance) kill(t testing.TB) {
	t.Helper()
	if err := in.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("kill smtpgate: %v", err)
	}
	<-in.exited
}

// signal sends sig to the process.
func (in *instance) signal(t testing.TB, sig os.Signal) {
	t.Helper()
	if err := in.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
}

// smtpAddr is the bound address of the named listener.
func (in *instance) smtpAddr(t testing.TB, listener string) string {
	t.Helper()
	a := in.addrs.SMTP[listener]
	if a == "" {
		t.Fatalf("no listener %q in the ready file: %+v", listener, in.addrs)
	}
	return a
}

// hostPort splits the address of the named listener.
func (in *instance) hostPort(t testing.TB, listener string) (string, string) {
	t.Helper()
	host, port, err := net.SplitHostPort(in.smtpAddr(t, listener))
	if err != nil {
		t.Fatal(err)
	}
	return host, port
}

// certFile is smtpgate's self-signed certificate, which clients trust.
func (in *instance) certFile() string { return filepath.Join(in.dataDir, "tls", "cert.pem") }

// clientTLS trusts only smtpgate's own certificate.
func (in *instance) clientTLS(t testing.TB) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(in.certFile())
	if err != nil {
		t.Fatalf("smtpgate certificate: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificate in %s", in.certFile())
	}
	return &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

// apiMessage is a message in the Mailsac-compatible listing.
type apiMessage struct {
	ID      string       `json:"_id"`
	Subject string       `json:"subject"`
	From    []apiAddress `json:"from"`
	To      []apiAddress `json:"to"`
	Via     string       `json:"via"`
	RTLS    bool         `json:"rtls"`
}

type apiAddress struct {
	Address string `json:"address"`
	Name    string `json:"name"`
}

// get performs an API request with key and returns the status, the headers
// and the body.
func (in *instance) get(t testing.TB, key, path string) (int, http.Header, []byte) {
	t.Helper()
	if in.addrs.HTTP == "" {
		t.Fatalf("smtpgate has no HTTP listener: %+v", in.addrs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+in.addrs.HTTP+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Mailsac-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, resp.Header, body
}

var nextLinkRE = regexp.MustCompile(`<([^>]+)>;\s*rel="next"`)

// inbox lists every message of email, following the Link: rel="next" pages.
func (in *instance) inbox(t testing.TB, key, email string) []apiMessage {
	t.Helper()
	var all []apiMessage
	path := "/api/addresses/" + url.PathEscape(email) + "/messages?limit=1000"
	for page := 0; path != ""; page++ {
		if page > 1000 {
			t.Fatalf("inbox %s: more than 1000 pages", email)
		}
		status, hdr, body := in.get(t, key, path)
		if status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, status, body)
		}
		var msgs []apiMessage
		if err := json.Unmarshal(body, &msgs); err != nil {
			t.Fatalf("GET %s: %v: %s", path, err, body)
		}
		all = append(all, msgs...)
		path = ""
		if m := nextLinkRE.FindStringSubmatch(hdr.Get("Link")); m != nil {
			path = m[1]
		}
	}
	return all
}

// waitInbox polls the inbox of email until it holds at least n messages.
func (in *instance) waitInbox(t testing.TB, key, email string, n int) []apiMessage {
	t.Helper()
	deadline := time.Now().Add(inboxTimeout)
	for {
		msgs := in.inbox(t, key, email)
		if len(msgs) >= n {
			return msgs
		}
		if time.Now().After(deadline) {
			t.Fatalf("inbox %s: %d messages after %v, want %d: %+v", email, len(msgs), inboxTimeout, n, msgs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// raw fetches the raw message id of email.
func (in *instance) raw(t testing.TB, key, email, id string) []byte {
	t.Helper()
	path := "/api/raw/" + url.PathEscape(email) + "/" + url.PathEscape(id)
	status, _, body := in.get(t, key, path)
	if status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, status, body)
	}
	return body
}

// wantMail is what a test expects to read back.
type wantMail struct {
	rcpt    string
	subject string
	body    string // must appear in the decoded text
	via     string // the login that sent it
	from    string // the From address, if not ""
	key     string // API key; default keyAll
	bcc     bool   // rcpt is only in the envelope, not in the To header
}

// expectMail waits for a message with w.subject in w.rcpt's inbox and checks
// it: via, rtls, From, and the body text of the raw message. It returns the
// listing entry.
func (in *instance) expectMail(t testing.TB, w wantMail) apiMessage {
	t.Helper()
	if w.key == "" {
		w.key = keyAll
	}
	got := in.findMail(t, w.key, w.rcpt, w.subject)
	if got.Via != w.via {
		t.Errorf("message %s: via = %q, want %q", got.ID, got.Via, w.via)
	}
	if !got.RTLS {
		t.Errorf("message %s: rtls = false, want true (it came over TLS)", got.ID)
	}
	if w.from != "" && (len(got.From) != 1 || !strings.EqualFold(got.From[0].Address, w.from)) {
		t.Errorf("message %s: from = %+v, want %s", got.ID, got.From, w.from)
	}
	if !w.bcc && !hasAddress(got.To, w.rcpt) {
		t.Errorf("message %s: to = %+v, want it to include %s", got.ID, got.To, w.rcpt)
	}
	raw := in.raw(t, w.key, w.rcpt, got.ID)
	text, err := bodyText(raw)
	if err != nil {
		t.Fatalf("message %s: %v\n%s", got.ID, err, raw)
	}
	if !strings.Contains(text, w.body) {
		t.Errorf("message %s: body text %q does not contain %q", got.ID, text, w.body)
	}
	return got
}

// findMail polls the inbox of rcpt for a message with subject.
func (in *instance) findMail(t testing.TB, key, rcpt, subject string) apiMessage {
	t.Helper()
	deadline := time.Now().Add(inboxTimeout)
	for {
		msgs := in.inbox(t, key, rcpt)
		for _, m := range msgs {
			if m.Subject == subject {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("inbox %s: no message with subject %q after %v; have %+v", rcpt, subject, inboxTimeout, msgs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func hasAddress(list []apiAddress, addr string) bool {
	for _, a := range list {
		if strings.EqualFold(a.Address, addr) {
			return true
		}
	}
	return false
}

// bodyText returns the decoded text/plain parts of a raw message.
func bodyText(raw []byte) (string, error) {
	ent, err := message.Read(bytes.NewReader(raw))
	if err != nil && !message.IsUnknownCharset(err) {
		return "", fmt.Errorf("parse message: %w", err)
	}
	var text strings.Builder
	err = ent.Walk(func(_ []int, part *message.Entity, err error) error {
		if err != nil && !message.IsUnknownCharset(err) {
			return err
		}
		if part.MultipartReader() != nil {
			return nil
		}
		mt, _, _ := part.Header.ContentType()
		if mt != "" && mt != "text/plain" {
			return nil
		}
		b, err := io.ReadAll(part.Body)
		if err != nil {
			return fmt.Errorf("read part: %w", err)
		}
		text.Write(b)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("walk message: %w", err)
	}
	return text.String(), nil
}

// subjectOf decodes the Subject header of a raw message.
func subjectOf(raw []byte) (string, error) {
	ent, err := message.Read(bytes.NewReader(raw))
	if err != nil && !message.IsUnknownCharset(err) {
		return "", fmt.Errorf("parse message: %w", err)
	}
	s, err := new(mime.WordDecoder).DecodeHeader(ent.Header.Get("Subject"))
	if err != nil {
		return "", fmt.Errorf("decode subject: %w", err)
	}
	return s, nil
}

// composeMessage builds a small RFC 5322 message with CRLF line endings; to
// is one address or a comma-separated list.
func composeMessage(from, to, subject, body string) []byte {
	return composeMessageID(from, to, subject, body, fmt.Sprintf("%d@go.e2e.test", time.Now().UnixNano()))
}

// composeMessageID is composeMessage with the given Message-ID (without the
// angle brackets).
func composeMessageID(from, to, subject, body, msgID string) []byte {
	var b strings.Builder
	var tos []string
	for _, a := range strings.Split(to, ",") {
		tos = append(tos, "<"+strings.TrimSpace(a)+">")
	}
	fmt.Fprintf(&b, "From: <%s>\r\nTo: %s\r\nSubject: %s\r\n", from, strings.Join(tos, ", "), subject)
	fmt.Fprintf(&b, "Date: %s\r\nMessage-ID: <%s>\r\n", time.Now().Format(time.RFC1123Z), msgID)
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
	b.WriteString(strings.ReplaceAll(strings.TrimRight(body, "\n"), "\n", "\r\n"))
	b.WriteString("\r\n")
	return []byte(b.String())
}

// dialSubmission connects to the STARTTLS listener with go-smtp, trusting
// only smtpgate's certificate, and authenticates with AUTH PLAIN.
func (in *instance) dialSubmission(t testing.TB, c credential) (*smtp.Client, error) {
	t.Helper()
	cl, err := smtp.DialStartTLS(in.smtpAddr(t, "submission"), in.clientTLS(t))
	if err != nil {
		return nil, fmt.Errorf("dial submission: %w", err)
	}
	cl.CommandTimeout = 30 * time.Second
	cl.SubmissionTimeout = 30 * time.Second
	if err := cl.Auth(sasl.NewPlainClient("", c.Login, c.Password)); err != nil {
		cl.Close()
		return nil, fmt.Errorf("auth %s: %w", c.Login, err)
	}
	return cl, nil
}

var queuedRE = regexp.MustCompile(`queued as (\S+)`)

// sendVia sends one message on an open client and returns the queue id from
// the DATA reply.
func sendVia(cl *smtp.Client, from string, to []string, msg []byte) (string, error) {
	if err := cl.Mail(from, nil); err != nil {
		return "", fmt.Errorf("MAIL: %w", err)
	}
	for _, r := range to {
		if err := cl.Rcpt(r, nil); err != nil {
			return "", fmt.Errorf("RCPT %s: %w", r, err)
		}
	}
	w, err := cl.Data()
	if err != nil {
		return "", fmt.Errorf("DATA: %w", err)
	}
	if _, err := w.Write(msg); err != nil {
		return "", fmt.Errorf("DATA write: %w", err)
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return "", fmt.Errorf("end of DATA: %w", err)
	}
	m := queuedRE.FindStringSubmatch(resp.StatusText)
	if m == nil {
		return "", fmt.Errorf("end of DATA: reply %q has no queue id", resp.StatusText)
	}
	return m[1], nil
}

// requireTool skips the test when a client tool is missing, or fails it in
// CI, where everything is installed.
func requireTool(t testing.TB, path, install string) string {
	t.Helper()
	p, err := exec.LookPath(path)
	if err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is missing in CI (%v); install it with: %s", path, err, install)
	}
	t.Skipf("%s is missing (%v); install it with: %s", path, err, install)
	return ""
}

// runTool runs a client tool with a timeout and returns its combined output
// and exit code (-1 if it could not run to completion).
func runTool(t testing.TB, timeout time.Duration, name string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%s timed out after %v:\n%s", name, timeout, out)
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	default:
		t.Fatalf("run %s: %v", name, err)
		return "", -1
	}
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d lines before)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// unique returns a string unique within this test run, for subjects and
// addresses.
func unique(t testing.TB, prefix string) string {
	return fmt.Sprintf("%s-%s-%d", prefix, strings.NewReplacer("/", "-", " ", "-").Replace(t.Name()), time.Now().UnixNano()%1e9)
}

// atoi parses a port number.
func atoi(t testing.TB, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return n
}
