package e2e

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pyResult is what testdata/smtplib_send.py prints.
type pyResult struct {
	Result  string           `json:"result"`
	Refused map[string][]any `json:"refused"`
	Type    string           `json:"type"`
	Code    int              `json:"code"`
	Message string           `json:"message"`
}

// TestPythonSmtplib sends with Python's smtplib over STARTTLS and implicit
// TLS, and checks the replies to a wrong password and a disallowed sender.
func TestPythonSmtplib(t *testing.T) {
	python := requireTool(t, "python3", "apt-get install python3")
	in := start(t)
	script := filepath.Join("testdata", "smtplib_send.py")

	send := func(t *testing.T, mode, listener string, c credential, from, to, subject, body string) pyResult {
		t.Helper()
		_, port := in.hostPort(t, listener)
		out, code := runTool(t, 60*time.Second, python, script,
			"--port", port, "--mode", mode, "--cafile", in.certFile(),
			"--user", c.Login, "--password", c.Password,
			"--from", from, "--to", to, "--subject", subject, "--body", body)
		if code != 0 {
			t.Fatalf("smtplib_send.py exited %d:\n%s", code, out)
		}
		var r pyResult
		if err := json.Unmarshal([]byte(lastLine(out)), &r); err != nil {
			t.Fatalf("smtplib_send.py output: %v:\n%s", err, out)
		}
		return r
	}

	for _, tc := range []struct{ name, mode, listener string }{
		{"starttls", "starttls", "submission"},
		{"smtp_ssl", "ssl", "smtps"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			subject := unique(t, "python")
			body := "Hello from smtplib " + tc.name + ", marker " + subject
			rcpt := "py-" + tc.name + "@dest.test"
			r := send(t, tc.mode, tc.listener, app1, "sender@app1.test", rcpt, subject, body)
			if r.Result != "ok" || len(r.Refused) != 0 {
				t.Fatalf("send: %+v", r)
			}
			in.expectMail(t, wantMail{rcpt: rcpt, subject: subject, body: body, via: "app1", from: "sender@app1.test", key: keyOne})
		})
	}

	t.Run("wrong_password", func(t *testing.T) {
		bad := app1
		bad.Password = "not-" + app1.Password
		rcpt := "py-wrong@dest.test"
		r := send(t, "starttls", "submission", bad, "sender@app1.test", rcpt, unique(t, "python"), "never delivered")
		if r.Result != "error" || r.Type != "SMTPAuthenticationError" || r.Code != 535 {
			t.Fatalf("got %+v, want SMTPAuthenticationError 535", r)
		}
		if msgs := in.inbox(t, keyAll, rcpt); len(msgs) != 0 {
			t.Fatalf("inbox %s after a failed login: %+v", rcpt, msgs)
		}
	})

	t.Run("disallowed_sender", func(t *testing.T) {
		rcpt := "py-disallowed@dest.test"
		r := send(t, "starttls", "submission", app1, "someone@elsewhere.test", rcpt, unique(t, "python"), "never delivered")
		if r.Result != "error" || r.Type != "SMTPSenderRefused" || r.Code != 550 {
			t.Fatalf("got %+v, want SMTPSenderRefused 550", r)
		}
		if msgs := in.inbox(t, keyAll, rcpt); len(msgs) != 0 {
			t.Fatalf("inbox %s after a refused sender: %+v", rcpt, msgs)
		}
	})
}

// lastLine returns the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
