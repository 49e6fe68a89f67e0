package e2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// logEntry is one JSON line of smtpgate's zap log.
type logEntry map[string]any

func (e logEntry) str(k string) string {
	s, _ := e[k].(string)
	return s
}

// logEntries parses the JSON lines of the process's standard error.
func (in *instance) logEntries() []logEntry {
	var out []logEntry
	sc := bufio.NewScanner(strings.NewReader(in.stderr.String()))
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		var e logEntry
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			out = append(out, e)
		}
	}
	return out
}

// waitLog waits up to 10 s for a log entry that match accepts.
func (in *instance) waitLog(t testing.TB, what string, match func(logEntry) bool) logEntry {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, e := range in.logEntries() {
			if match(e) {
				return e
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log entry %s within 10 s; log:\n%s", what, tail(in.stderr.String(), 40))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// isAuthFailure reports whether err is smtpgate's 535 to a bad login.
func isAuthFailure(err error) bool {
	var se *smtp.SMTPError
	return errors.As(err, &se) && se.Code == 535
}

// sendAs logs in as c on a new connection and sends one message to rcpt.
func (in *instance) sendAs(t testing.TB, c credential, from, rcpt, subject, body string) error {
	t.Helper()
	cl, err := in.dialSubmission(t, c)
	if err != nil {
		return err
	}
	defer cl.Close()
	if _, err := sendVia(cl, from, []string{rcpt}, composeMessage(from, rcpt, subject, body)); err != nil {
		return err
	}
	return cl.Quit()
}

// TestPolicyReload rewrites the policy under a running smtpgate and sends
// SIGHUP: a new login works at once while a session opened before the
// reload goes on; a broken policy is refused with a file:line:col
// diagnostic in the log, and the policy in force stays.
func TestPolicyReload(t *testing.T) {
	in := start(t, app1, app2)
	rcpt := "reload@dest.test"

	subject := unique(t, "before")
	if err := in.sendAs(t, app1, "a@app1.test", rcpt, subject, "sent before the reload"); err != nil {
		t.Fatalf("app1 before the reload: %v", err)
	}
	in.expectMail(t, wantMail{rcpt: rcpt, subject: subject, body: "sent before the reload", via: "app1"})
	if err := in.sendAs(t, app3, "a@app3.test", rcpt, unique(t, "app3"), "x"); !isAuthFailure(err) {
		t.Fatalf("app3 before the reload: got %v, want 535", err)
	}

	// A session of app1 authenticated under the old policy, idle across the reload.
	open, err := in.dialSubmission(t, app1)
	if err != nil {
		t.Fatalf("app1 session: %v", err)
	}
	defer open.Close()

	good := renderPolicy(t, policyConf{DataDir: in.dataDir, Credentials: []credential{app1, app2, app3}})
	if err := os.WriteFile(in.policyPath, good, 0o600); err != nil {
		t.Fatal(err)
	}
	in.signal(t, syscall.SIGHUP)

	subject3 := unique(t, "app3")
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := in.sendAs(t, app3, "a@app3.test", rcpt, subject3, "app3 after the reload")
		if err == nil {
			break
		}
		if !isAuthFailure(err) || time.Now().After(deadline) {
			t.Fatalf("app3 after the reload: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	in.expectMail(t, wantMail{rcpt: rcpt, subject: subject3, body: "app3 after the reload", via: "app3"})

	subjectOpen := unique(t, "open")
	if _, err := sendVia(open, "a@app1.test", []string{rcpt}, composeMessage("a@app1.test", rcpt, subjectOpen, "session from before the reload")); err != nil {
		t.Fatalf("app1 session opened before the reload: %v", err)
	}
	if err := open.Quit(); err != nil {
		t.Errorf("QUIT on the session opened before the reload: %v", err)
	}
	in.expectMail(t, wantMail{rcpt: rcpt, subject: subjectOpen, body: "session from before the reload", via: "app1"})

	// A broken policy: the last credential has an argument the schema lacks.
	broken := string(good) + fmt.Sprintf("\ncredential \"app4\" {\n  password_hash = %q\n  no_such_argument = true\n}\n", hashPassword(t, "app4-pw"))
	badLine := strings.Count(broken, "\n") - 1 // the line of no_such_argument
	if err := os.WriteFile(in.policyPath, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	in.signal(t, syscall.SIGHUP)
	diag := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(in.policyPath) + `:(\d+):(\d+): `)
	e := in.waitLog(t, "refusing the broken policy", func(e logEntry) bool {
		return strings.Contains(strings.ToLower(e.str("msg")), "reload") && e.str("level") == "error"
	})
	var found string
	for k, v := range e {
		if s, ok := v.(string); ok && diag.MatchString(s) {
			found = k
		}
	}
	if found == "" {
		t.Fatalf("reload failure logged without a %s:line:col: diagnostic: %v", in.policyPath, e)
	}
	if m := diag.FindStringSubmatch(e.str(found)); m[1] != fmt.Sprint(badLine) || m[2] != "3" {
		t.Errorf("diagnostic at %s:%s, want %d:3: %s", m[1], m[2], badLine, e.str(found))
	}
	if !strings.Contains(strings.ToLower(e.str("msg")), "refused") {
		t.Errorf("log message %q does not say the reload was refused", e.str("msg"))
	}

	subjectKept := unique(t, "kept")
	if err := in.sendAs(t, app3, "a@app3.test", rcpt, subjectKept, "app3 after the broken reload"); err != nil {
		t.Fatalf("app3 after the refused reload: %v", err)
	}
	in.expectMail(t, wantMail{rcpt: rcpt, subject: subjectKept, body: "app3 after the broken reload", via: "app3"})
	select {
	case <-in.exited:
		t.Fatalf("smtpgate exited after the broken reload: %v", in.waitErr)
	default:
	}

	// Four messages arrived; key-one (scoped to app1) sees only app1's two.
	if all := in.waitInbox(t, keyAll, rcpt, 4); len(all) != 4 {
		t.Errorf("inbox %s holds %d messages, want 4: %+v", rcpt, len(all), all)
	}
	mine := in.inbox(t, keyOne, rcpt)
	for _, m := range mine {
		if m.Via != "app1" {
			t.Errorf("key-one, scoped to app1, sees a message of %s: %+v", m.Via, m)
		}
	}
	if len(mine) != 2 {
		t.Errorf("key-one sees %d messages, want app1's 2: %+v", len(mine), mine)
	}
}
