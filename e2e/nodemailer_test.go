package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// nodeOptions is the JSON argument of testdata/js/send.js.
type nodeOptions struct {
	Host       string `json:"host"`
	Port       int    `json:"port"`
	Secure     bool   `json:"secure"`
	RequireTLS bool   `json:"requireTLS"`
	CA         string `json:"ca"`
	User       string `json:"user"`
	Pass       string `json:"pass"`
	From       string `json:"from"`
	To         string `json:"to"`
	Subject    string `json:"subject"`
	Text       string `json:"text"`
	HTML       string `json:"html,omitempty"`
}

// nodeResult is what testdata/js/send.js prints.
type nodeResult struct {
	Result       string   `json:"result"`
	Response     string   `json:"response"`
	Accepted     []string `json:"accepted"`
	Code         string   `json:"code"`
	ResponseCode int      `json:"responseCode"`
	Message      string   `json:"message"`
}

// TestNodemailer sends with nodemailer: secure=false with requireTLS on the
// STARTTLS listener, and secure=true on the implicit-TLS listener, trusting
// smtpgate's certificate through tls.ca.
func TestNodemailer(t *testing.T) {
	node := requireTool(t, "node", "apt-get install nodejs npm")
	script := filepath.Join("testdata", "js", "send.js")
	if _, err := os.Stat(filepath.Join("testdata", "js", "node_modules", "nodemailer", "package.json")); err != nil {
		install := "make test-deps (npm ci --prefix e2e/testdata/js)"
		if os.Getenv("CI") != "" {
			t.Fatalf("nodemailer is not installed in CI: %v; run %s", err, install)
		}
		t.Skipf("nodemailer is not installed (%v); run %s", err, install)
	}
	in := start(t)

	for _, tc := range []struct {
		name     string
		listener string
		secure   bool
	}{
		{"requireTLS", "submission", false},
		{"secure", "smtps", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host, port := in.hostPort(t, tc.listener)
			subject := unique(t, "nodemailer")
			text := "Hello from nodemailer " + tc.name + ", marker " + subject
			rcpt := "node-" + strings.ToLower(tc.name) + "@dest.test"
			opt := nodeOptions{
				Host: host, Port: atoi(t, port), Secure: tc.secure, RequireTLS: !tc.secure,
				CA: in.certFile(), User: app2.Login, Pass: app2.Password,
				From: "Node App <node@app2.test>", To: rcpt, Subject: subject, Text: text,
				HTML: "<p>Hello from <b>nodemailer</b></p>",
			}
			arg, err := json.Marshal(opt)
			if err != nil {
				t.Fatal(err)
			}
			out, code := runTool(t, 60*time.Second, node, script, string(arg))
			if code != 0 {
				t.Fatalf("send.js exited %d:\n%s", code, out)
			}
			var r nodeResult
			if err := json.Unmarshal([]byte(lastLine(out)), &r); err != nil {
				t.Fatalf("send.js output: %v:\n%s", err, out)
			}
			if r.Result != "ok" || !strings.HasPrefix(r.Response, "250 ") || len(r.Accepted) != 1 {
				t.Fatalf("send: %+v", r)
			}
			m := queuedRE.FindStringSubmatch(r.Response)
			if m == nil {
				t.Fatalf("response %q has no queue id", r.Response)
			}
			got := in.expectMail(t, wantMail{rcpt: rcpt, subject: subject, body: text, via: "app2", from: "node@app2.test"})
			if got.ID != m[1] {
				t.Errorf("message id %q in the API, %q in the SMTP reply", got.ID, m[1])
			}
			if len(got.From) == 1 && got.From[0].Name != "Node App" {
				t.Errorf("from name = %q, want %q", got.From[0].Name, "Node App")
			}
		})
	}

	t.Run("wrong_password", func(t *testing.T) {
		host, port := in.hostPort(t, "smtps")
		opt := nodeOptions{
			Host: host, Port: atoi(t, port), Secure: true, CA: in.certFile(),
			User: app2.Login, Pass: "wrong", From: "node@app2.test", To: "node-wrong@dest.test",
			Subject: unique(t, "nodemailer"), Text: "never delivered",
		}
		arg, _ := json.Marshal(opt)
		out, code := runTool(t, 60*time.Second, node, script, string(arg))
		if code != 0 {
			t.Fatalf("send.js exited %d:\n%s", code, out)
		}
		var r nodeResult
		if err := json.Unmarshal([]byte(lastLine(out)), &r); err != nil {
			t.Fatalf("send.js output: %v:\n%s", err, out)
		}
		if r.Result != "error" || r.Code != "EAUTH" || r.ResponseCode != 535 {
			t.Fatalf("got %+v, want EAUTH 535", r)
		}
	})
}
