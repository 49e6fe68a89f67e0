package e2e

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/emersion/go-smtp"
)

const postfixInstall = "apt-get install postfix libsasl2-modules (debconf: postfix/main_mailer_type = No configuration)"

// postfixConf is what testdata/postfix/*.tmpl are rendered from.
type postfixConf struct {
	Dir         string // etc/ (config_directory), queue/, data/ and maillog below it
	SMTPPort    int    // the instance's smtpd, on 127.0.0.1
	RelayPort   string // smtpgate's STARTTLS listener, on 127.0.0.1
	User        string // SASL login at smtpgate
	Password    string
	Fingerprint string // SHA-256 of smtpgate's certificate, AB:CD:...

	// Templates is the directory under testdata with main.cf.tmpl and
	// master.cf.tmpl; default "postfix" (the relayhost in front of
	// smtpgate). "postfix-mx" receives mail for dest.test into a Maildir
	// below Dir/mail, owned by MailUID:MailGID.
	Templates        string
	MailUID, MailGID string
}

// postfixInstance is a private Postfix: its own config, queue and data
// directories and its own port, so that instances never share anything with
// each other or with a system Postfix.
type postfixInstance struct {
	conf    postfixConf
	postfix string // /usr/sbin/postfix
	sbin    string // the directory holding postfix, postqueue, ...
	master  *exec.Cmd
	out     *lockedBuffer // start-fg's output
	exited  chan struct{}
}

// requirePostfix finds the Postfix binaries, which live in /usr/sbin, and
// makes sure Cyrus SASL has the PLAIN mechanism for Postfix's SMTP client.
func requirePostfix(t testing.TB) string {
	t.Helper()
	bin := ""
	for _, p := range []string{"/usr/sbin/postfix", "/usr/local/sbin/postfix"} {
		if _, err := os.Stat(p); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		bin = requireTool(t, "postfix", postfixInstall)
	}
	plain, _ := filepath.Glob("/usr/lib/*/sasl2/libplain.so*")
	more, _ := filepath.Glob("/usr/lib/sasl2/libplain.so*")
	if len(plain)+len(more) == 0 {
		msg := "Cyrus SASL's PLAIN mechanism is missing; install it with: apt-get install libsasl2-modules"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return bin
}

// startPostfix writes the configuration, checks and starts the instance.
// It is stopped, and its processes killed, when the test ends.
func startPostfix(t testing.TB, conf postfixConf) *postfixInstance {
	t.Helper()
	if os.Geteuid() != 0 {
		msg := "the private Postfix instance must be started as root (it runs its daemons as user postfix)"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	pf := &postfixInstance{conf: conf, postfix: requirePostfix(t)}
	pf.sbin = filepath.Dir(pf.postfix)
	// The daemons run as the postfix user: every directory on the way to the
	// queue must be searchable, and t.TempDir() makes them 0700.
	for d := conf.Dir; d != filepath.Dir(d) && strings.HasPrefix(d, os.TempDir()) && d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// postfix chdirs into the queue before it creates what is missing below.
	// The config directory is separate: postfix check wants everything below
	// it owned by root.
	for _, d := range []string{"queue", "etc"} {
		if err := os.Mkdir(filepath.Join(conf.Dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"main.cf", "master.cf"} {
		tmpl, err := template.ParseFiles(filepath.Join("testdata", cmp.Or(conf.Templates, "postfix"), name+".tmpl"))
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := tmpl.Execute(&buf, conf); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(pf.configDir(), name), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { pf.stop(t) })
	if out, code := pf.run(t, "postfix", "check"); code != 0 || strings.Contains(out, "warning:") {
		t.Fatalf("postfix -c %s check exited %d:\n%s", pf.configDir(), code, out)
	}
	// start-fg keeps the master in the foreground, as our child: we reap it,
	// and no daemon is left to a PID 1 that may not reap orphans.
	pf.master = exec.Command(pf.postfix, "-c", pf.configDir(), "start-fg")
	pf.out = &lockedBuffer{}
	pf.master.Stdout, pf.master.Stderr = pf.out, pf.out
	pf.exited = make(chan struct{})
	if err := pf.master.Start(); err != nil {
		t.Fatalf("postfix start-fg: %v", err)
	}
	go func() {
		_ = pf.master.Wait()
		close(pf.exited)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", pf.smtpAddr(), time.Second)
		if err == nil {
			c.Close()
			return pf
		}
		select {
		case <-pf.exited:
			t.Fatalf("postfix -c %s start-fg exited: %v\n%s\nmaillog:\n%s", pf.configDir(), pf.master.ProcessState, pf.out, pf.maillog())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("postfix smtpd on %s not reachable: %v\nmaillog:\n%s", pf.smtpAddr(), err, pf.maillog())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// configDir is the instance's config_directory, given to every command
// with -c.
func (pf *postfixInstance) configDir() string { return filepath.Join(pf.conf.Dir, "etc") }

func (pf *postfixInstance) smtpAddr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(pf.conf.SMTPPort))
}

// run runs one of Postfix's commands with -c on this instance.
func (pf *postfixInstance) run(t testing.TB, cmd string, args ...string) (string, int) {
	t.Helper()
	return runTool(t, 60*time.Second, filepath.Join(pf.sbin, cmd), append([]string{"-c", pf.configDir()}, args...)...)
}

// maillog is the instance's log file (written by postlogd).
func (pf *postfixInstance) maillog() string {
	b, err := os.ReadFile(filepath.Join(pf.conf.Dir, "maillog"))
	if err != nil {
		return fmt.Sprintf("(no maillog: %v)", err)
	}
	return string(b)
}

// queue lists the instance's queue.
func (pf *postfixInstance) queue(t testing.TB) string {
	out, _ := pf.run(t, "postqueue", "-p")
	return out
}

// stop runs `postfix stop`, waits for the master to go, and kills whatever
// process of this instance is left (found by MAIL_CONFIG in its environment,
// which Postfix sets to this instance's unique directory for every daemon).
func (pf *postfixInstance) stop(t testing.TB) {
	if t.Failed() {
		t.Logf("postfix queue:\n%s", pf.queue(t))
		t.Logf("postfix maillog:\n%s", tail(pf.maillog(), 200))
		if pf.out != nil {
			t.Logf("postfix start-fg output:\n%s", pf.out)
		}
	}
	if pf.master == nil {
		return
	}
	out, code := pf.run(t, "postfix", "stop")
	if code != 0 {
		t.Logf("postfix -c %s stop exited %d:\n%s", pf.configDir(), code, out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids := pf.processes()
		if len(pids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			for _, pid := range pids {
				t.Logf("killing leftover postfix process %d", pid)
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	select {
	case <-pf.exited:
	case <-time.After(10 * time.Second):
		t.Errorf("postfix -c %s start-fg did not exit", pf.configDir())
	}
}

// processes lists the pids whose environment has MAIL_CONFIG=<this instance>.
func (pf *postfixInstance) processes() []int {
	want := []byte("MAIL_CONFIG=" + pf.configDir() + "\x00")
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue
		}
		if bytes.Contains(append([]byte{0}, env...), append([]byte{0}, want...)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// certFingerprint is the SHA-256 fingerprint of the PEM certificate in file,
// in Postfix's AB:CD:... notation.
func certFingerprint(t testing.TB, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("%s: no PEM certificate", file)
	}
	sum := sha256.Sum256(block.Bytes)
	hex := make([]string, len(sum))
	for i, c := range sum {
		hex[i] = fmt.Sprintf("%02X", c)
	}
	return strings.Join(hex, ":")
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestPostfixRelayhost puts a private Postfix in front of smtpgate as its
// relayhost: mail submitted to Postfix without authentication is relayed to
// smtpgate with SASL (app2) over mandatory STARTTLS, with smtpgate's
// certificate pinned, and read back through the capture API.
func TestPostfixRelayhost(t *testing.T) {
	t.Parallel()
	requirePostfix(t)
	in := start(t)
	_, relayPort := in.hostPort(t, "submission")
	pf := startPostfix(t, postfixConf{
		Dir:         t.TempDir(),
		SMTPPort:    freePort(t),
		RelayPort:   relayPort,
		User:        app2.Login,
		Password:    app2.Password,
		Fingerprint: certFingerprint(t, in.certFile()),
	})

	subject := unique(t, "postfix")
	body := "Relayed by Postfix, marker " + subject
	rcpts := []string{"pf-one@dest.test", "pf-two@dest.test", "pf-bcc@dest.test"}
	msg := composeMessage("app@postfix-client.test", rcpts[0]+", "+rcpts[1], subject, body)
	if err := submitPlain(pf.smtpAddr(), "app@postfix-client.test", rcpts, msg); err != nil {
		t.Fatalf("submit to postfix: %v", err)
	}

	got := in.expectMail(t, wantMail{rcpt: rcpts[0], subject: subject, body: body, via: "app2", from: "app@postfix-client.test"})
	for _, w := range []wantMail{
		{rcpt: rcpts[1], subject: subject, body: body, via: "app2"},
		{rcpt: rcpts[2], subject: subject, body: body, via: "app2", bcc: true},
	} {
		// Postfix relays the three recipients in one transaction: one message.
		if other := in.expectMail(t, w); other.ID != got.ID {
			t.Errorf("recipient %s got message %s, %s got %s; want one message", w.rcpt, other.ID, rcpts[0], got.ID)
		}
	}
	raw := string(in.raw(t, keyAll, rcpts[0], got.ID))
	if !strings.Contains(raw, "by postfix.e2e.test (Postfix)") {
		t.Errorf("stored message has no Received header of the Postfix hop:\n%s", raw)
	}

	// The Postfix side must say it delivered over a verified (pinned) TLS
	// connection with SASL.
	relay := fmt.Sprintf("relay=127.0.0.1[127.0.0.1]:%s", relayPort)
	deadline := time.Now().Add(inboxTimeout)
	for {
		log := pf.maillog()
		sent := regexp.MustCompile(`(?m)to=<pf-one@dest\.test>, ` + regexp.QuoteMeta(relay) + `, .*status=sent \(250 2\.0\.0 [^)]*` + regexp.QuoteMeta(got.ID))
		verified := regexp.MustCompile(`Verified TLS connection established to 127\.0\.0\.1\[127\.0\.0\.1\]:` + relayPort)
		if sent.MatchString(log) && verified.MatchString(log) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("postfix log lacks %q or %q:\n%s", sent, verified, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if q := pf.queue(t); !strings.Contains(q, "Mail queue is empty") {
		t.Errorf("postfix queue not empty after delivery:\n%s", q)
	}
}

// TestPostfixWrongPassword checks that smtpgate answers Postfix's SASL login
// with a wrong password by 535 5.7.8, that Postfix keeps the mail deferred
// in its queue (smtp_sasl_auth_soft_bounce), and that nothing is captured.
func TestPostfixWrongPassword(t *testing.T) {
	t.Parallel()
	requirePostfix(t)
	in := start(t)
	_, relayPort := in.hostPort(t, "submission")
	pf := startPostfix(t, postfixConf{
		Dir:         t.TempDir(),
		SMTPPort:    freePort(t),
		RelayPort:   relayPort,
		User:        app2.Login,
		Password:    "wrong-" + app2.Password,
		Fingerprint: certFingerprint(t, in.certFile()),
	})
	rcpt := "pf-wrong@dest.test"
	if err := submitPlain(pf.smtpAddr(), "app@postfix-client.test", []string{rcpt}, composeMessage("app@postfix-client.test", rcpt, unique(t, "postfix"), "never captured")); err != nil {
		t.Fatalf("submit to postfix: %v", err)
	}
	deadline := time.Now().Add(inboxTimeout)
	for !regexp.MustCompile(`SASL authentication failed; server 127\.0\.0\.1\[127\.0\.0\.1\] said: 535 5\.7\.8 `).MatchString(pf.maillog()) {
		if time.Now().After(deadline) {
			t.Fatalf("postfix log does not show smtpgate's 535:\n%s", pf.maillog())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if q := pf.queue(t); !strings.Contains(q, rcpt) {
		t.Errorf("the message is not deferred in the postfix queue:\n%s", q)
	}
	if msgs := in.inbox(t, keyAll, rcpt); len(msgs) != 0 {
		t.Errorf("captured despite the wrong password: %+v", msgs)
	}
}

// submitPlain hands a message to an MTA without TLS or AUTH, as a local
// application would hand it to its Postfix.
func submitPlain(addr, from string, to []string, msg []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("dial %s: %w", addr, err)
	}
	c := smtp.NewClient(conn)
	defer c.Close()
	c.CommandTimeout = 30 * time.Second
	if err := c.Hello("client.e2e.test"); err != nil {
		return fmt.Errorf("EHLO: %w", err)
	}
	if err := c.SendMail(from, to, bytes.NewReader(msg)); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	if err := c.Quit(); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("QUIT: %w", err)
	}
	return nil
}
