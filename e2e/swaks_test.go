package e2e

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Swaks exit codes (swaks(1), EXIT CODES).
const (
	swaksOK        = 0
	swaksMailError = 23 // error in MAIL transaction
	swaksAuthError = 28 // error in AUTH transaction
)

// requireSwaks returns the swaks binary, and makes sure it can do TLS (Debian
// installs Net::SSLeay only as a recommendation).
func requireSwaks(t testing.TB) string {
	t.Helper()
	swaks := requireTool(t, "swaks", "apt-get install swaks libnet-ssleay-perl")
	out, _ := runTool(t, 30*time.Second, swaks, "--support")
	if !strings.Contains(out, "=== TLS supported") {
		msg := "swaks cannot do TLS (" + strings.TrimSpace(grepLine(out, "TLS")) + "); install it with: apt-get install libnet-ssleay-perl"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return swaks
}

// grepLine returns the first line of s that contains sub.
func grepLine(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}

// TestSwaks drives swaks over STARTTLS with AUTH PLAIN and AUTH LOGIN, over
// implicit TLS, and checks that nothing works without TLS.
func TestSwaks(t *testing.T) {
	swaks := requireSwaks(t)
	in := start(t)

	run := func(t *testing.T, listener string, args ...string) (string, int) {
		t.Helper()
		host, port := in.hostPort(t, listener)
		base := []string{"--server", host, "--port", port, "--helo", "swaks.e2e.test", "--timeout", "20s"}
		return runTool(t, 60*time.Second, swaks, append(base, args...)...)
	}
	verify := []string{"--tls-verify", "--tls-ca-path", in.certFile()}

	for _, tc := range []struct {
		name     string
		listener string
		tls      string
		mech     string
		wantWire *regexp.Regexp // proof on the wire that the mechanism was used
	}{
		{"starttls_plain", "submission", "--tls", "PLAIN", regexp.MustCompile(`(?m)^ ~> AUTH PLAIN \S+`)},
		{"starttls_login", "submission", "--tls", "LOGIN", regexp.MustCompile(`(?m)^ ~> AUTH LOGIN`)},
		{"tlsc_plain", "smtps", "--tlsc", "PLAIN", regexp.MustCompile(`(?m)^ ~> AUTH PLAIN \S+`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			subject := unique(t, "swaks")
			body := "Hello from swaks " + tc.name + ", marker " + subject
			rcpt := "swaks-" + strings.ReplaceAll(tc.name, "_", "-") + "@dest.test"
			args := append([]string{tc.tls}, verify...)
			args = append(args, "--auth", tc.mech, "--auth-user", app1.Login, "--auth-password", app1.Password,
				"--from", "swaks@app1.test", "--to", rcpt, "--header", "Subject: "+subject, "--body", body)
			out, code := run(t, tc.listener, args...)
			if code != swaksOK {
				t.Fatalf("swaks exited %d, want 0:\n%s", code, out)
			}
			for _, want := range []*regexp.Regexp{
				regexp.MustCompile(`(?m)^=== TLS started with cipher TLSv1\.[23]`),
				tc.wantWire,
				regexp.MustCompile(`(?m)^<~  235 `),
				regexp.MustCompile(`(?m)^<~  250 .*queued as \S+`),
			} {
				if !want.MatchString(out) {
					t.Errorf("swaks output does not match %s:\n%s", want, out)
				}
			}
			if tc.tls == "--tls" && !regexp.MustCompile(`(?m)^<-  250[ -]STARTTLS`).MatchString(out) {
				t.Errorf("STARTTLS not advertised in plaintext:\n%s", out)
			}
			in.expectMail(t, wantMail{rcpt: rcpt, subject: subject, body: body, via: "app1", from: "swaks@app1.test", key: keyOne})
		})
	}

	t.Run("no_tls_no_auth_advertised", func(t *testing.T) {
		out, code := run(t, "submission", "--auth", "PLAIN", "--auth-user", app1.Login, "--auth-password", app1.Password,
			"--from", "swaks@app1.test", "--to", "swaks-plain@dest.test")
		if code != swaksAuthError {
			t.Errorf("swaks exited %d, want %d (AUTH error):\n%s", code, swaksAuthError, out)
		}
		if !strings.Contains(out, "Host did not advertise authentication") {
			t.Errorf("swaks did not report the missing AUTH:\n%s", out)
		}
		if regexp.MustCompile(`(?m)^<-  250[ -]AUTH`).MatchString(out) {
			t.Errorf("AUTH advertised before STARTTLS:\n%s", out)
		}
		if strings.Contains(out, app1.Password) || strings.Contains(out, "AUTH PLAIN") {
			t.Errorf("credentials went over plaintext:\n%s", out)
		}
	})

	t.Run("no_tls_mail_refused", func(t *testing.T) {
		out, code := run(t, "submission", "--from", "swaks@app1.test", "--to", "swaks-plain@dest.test")
		if code != swaksMailError {
			t.Errorf("swaks exited %d, want %d (MAIL error):\n%s", code, swaksMailError, out)
		}
		if !regexp.MustCompile(`(?m)^<\*\* +530 5\.7\.0 `).MatchString(out) {
			t.Errorf("MAIL without TLS was not answered 530 5.7.0:\n%s", out)
		}
	})

	t.Run("starttls_wrong_password", func(t *testing.T) {
		args := append([]string{"--tls"}, verify...)
		args = append(args, "--auth", "PLAIN", "--auth-user", app1.Login, "--auth-password", "wrong-"+app1.Password,
			"--from", "swaks@app1.test", "--to", "swaks-wrong@dest.test")
		out, code := run(t, "submission", args...)
		if code != swaksAuthError {
			t.Errorf("swaks exited %d, want %d (AUTH error):\n%s", code, swaksAuthError, out)
		}
		if !regexp.MustCompile(`(?m)^<~\* +535 5\.7\.8 `).MatchString(out) {
			t.Errorf("wrong password was not answered 535 5.7.8:\n%s", out)
		}
	})

	if msgs := in.inbox(t, keyAll, "swaks-plain@dest.test"); len(msgs) != 0 {
		t.Errorf("mail arrived without TLS: %+v", msgs)
	}
	if msgs := in.inbox(t, keyAll, "swaks-wrong@dest.test"); len(msgs) != 0 {
		t.Errorf("mail arrived with a wrong password: %+v", msgs)
	}
}
