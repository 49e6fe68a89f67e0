package web

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/smtpgate/smtpgate/store"
	"github.com/smtpgate/smtpgate/summary"
)

// needTool returns the path of a command the test drives, skipping the test
// when it is missing (failing under CI, which must install it).
func needTool(t *testing.T, name, install string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed; CI must install %s", name, install)
		}
		t.Skipf("%s is not installed (%s)", name, install)
	}
	return p
}

// run runs a command with a deadline and returns its standard output.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = filepath.Join("testdata", "mailsac-docs")
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr)
	}
	return string(out)
}

// TestMailsacDocsReplay replays the curl and Python examples of Mailsac's
// capture documentation (docs.mailsac.com: email capture, reading mail,
// message storage; repository mailsac/mailsac-examples) against smtpgate,
// with only the base URL https://mailsac.com/api changed. The captured
// message is the one the documentation's smtplib example sends, composed
// by the same Python code.
func TestMailsacDocsReplay(t *testing.T) {
	curl := needTool(t, "curl", "the curl package")
	python := needTool(t, "python3", "python3 (and python3-requests)")

	f := newFixture(t, nil)
	base := f.serve() + "/api"

	// email_capture_example.py's message, as its SMTP client sends it.
	composed := run(t, python, "replay.py", "compose")
	raw := strings.ReplaceAll(strings.ReplaceAll(composed, "\r\n", "\n"), "\n", "\r\n")
	capture := func(rcpt, text string) *store.Message {
		return f.capture(&store.Message{Login: "alice", MailFrom: "no-reply@mywebapp.com", Recipients: []string{rcpt}, Raw: []byte(text)})
	}
	reset1 := capture("mycustomer@gmail.com", raw)
	reset2 := capture("mycustomer@gmail.com", raw)
	capture("bclinton@mailsac.com", raw)
	bcl := capture("bclinton@mailsac.com", raw)
	user1 := capture("user1@mailsac.com", strings.NewReplacer("no-reply@mywebapp.com", "myuser@company.com",
		"mycustomer@gmail.com", "user1@mailsac.com").Replace(raw))
	capture("mycustomer@gmail.com", raw) // Bob's key must not see this one...
	f.capture(&store.Message{Login: "bob", Recipients: []string{"mycustomer@gmail.com"}, Raw: []byte(raw)})

	key := keyAlice
	header := "Mailsac-Key: " + key

	t.Run("curl", func(t *testing.T) {
		// about/intro_curl.bash and email_capture/curl_validation.txt.
		var list []message
		if err := json.Unmarshal([]byte(run(t, curl, "-H", header, base+"/addresses/user1@mailsac.com/messages")), &list); err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 || list[0].ID != user1.ID || list[0].Subject != "Password reset" ||
			list[0].From[0] != (summary.Address{Address: "myuser@company.com", Name: "Mywebapp Customer Support"}) {
			t.Errorf("intro_curl: %+v", list)
		}
		// curl_validation.txt names the inbox mycustomer@gmail (sic): an
		// empty inbox, not an error.
		if got := strings.TrimSpace(run(t, curl, "-H", header, base+"/addresses/mycustomer@gmail/messages")); got != "[]" {
			t.Errorf("curl_validation as written: %s", got)
		}
		if err := json.Unmarshal([]byte(run(t, curl, "-H", header, base+"/addresses/mycustomer@gmail.com/messages")), &list); err != nil {
			t.Fatal(err)
		}
		if len(list) != 3 || list[2].ID != reset1.ID || list[0].Links[0] != "https://mywebapp.com/password-reset/PasswordResetToken" ||
			list[0].Inbox != "mycustomer@gmail.com" || list[0].Domain != "gmail.com" || !list[0].RTLS {
			t.Errorf("curl_validation: %+v", list)
		}

		// reading_mail/reading_mail.sh: curl | jq .[0]._id | xargs curl.
		script := `curl -s -H "` + header + `" -X GET ` + base + `/addresses/mycustomer@gmail.com/messages | jq .[0]._id | xargs -I {} curl -H "` +
			header + `" -X GET ` + base + `/text/mycustomer@gmail.com/{}`
		if _, err := exec.LookPath("jq"); err == nil {
			if got := run(t, "sh", "-c", script); !strings.HasPrefix(got, "Click on the link to reset you password\r\nhttps://mywebapp.com/") {
				t.Errorf("reading_mail.sh: %q", got)
			}
		} else {
			t.Log("jq is not installed: reading_mail.sh replayed without the pipe")
			if got := run(t, curl, "-H", header, "-X", "GET", base+"/text/mycustomer@gmail.com/"+list[0].ID); !strings.HasPrefix(got, "Click on the link") {
				t.Errorf("reading_mail.sh: %q", got)
			}
		}

		// message_storage/delete_message.sh.
		var del map[string]string
		if err := json.Unmarshal([]byte(run(t, curl, "-s", "-H", header, "-X", "DELETE", base+"/addresses/bclinton@mailsac.com/messages/"+bcl.ID)), &del); err != nil {
			t.Fatal(err)
		}
		if del["message"] != "Message was deleted." || del["_id"] != bcl.ID || del["inbox"] != "bclinton@mailsac.com" {
			t.Errorf("delete_message.sh: %v", del)
		}
		// message_storage/purge_inbox.sh ("Return Code 204 No Content").
		if got := run(t, curl, "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", header, "-X", "DELETE", base+"/addresses/bclinton@mailsac.com/messages"); got != "204" {
			t.Errorf("purge_inbox.sh: %s", got)
		}
		if got := strings.TrimSpace(run(t, curl, "-s", "-H", header, base+"/addresses/bclinton@mailsac.com/messages")); got != "[]" {
			t.Errorf("after purge_inbox.sh: %s", got)
		}
	})

	for _, client := range []string{"requests", "urllib"} {
		t.Run("python-"+client, func(t *testing.T) {
			capture("bclinton@mailsac.com", raw)
			latest := capture("mycustomer@gmail.com", raw)
			count, err := f.st.InboxCount(context.Background(), "mycustomer@gmail.com", store.Scope{Logins: []string{"alice"}})
			if err != nil {
				t.Fatal(err)
			}
			var out struct {
				Client     string
				Validation struct {
					Status int
					JSON   []message
				}
				Reading struct {
					Status int
					Text   string
				}
				Delete struct {
					Status int
					JSON   deleteResult
				}
				Purge struct {
					Status int
				}
				CheckReceived *string `json:"check_received"`
			}
			cmd := []string{"replay.py", base, key}
			if client == "urllib" {
				cmd = append([]string{"-c", "import os, runpy, sys; os.environ['REPLAY_URLLIB'] = '1'; sys.argv = sys.argv[1:]; runpy.run_path('replay.py', run_name='__main__')"}, cmd...)
			}
			if err := json.Unmarshal([]byte(run(t, python, cmd...)), &out); err != nil {
				t.Fatal(err)
			}
			t.Logf("Python HTTP client: %s", out.Client)
			if !strings.HasPrefix(out.Client, client) {
				t.Skipf("python has no %s", client)
			}
			v := out.Validation
			if v.Status != 200 || len(v.JSON) != count || v.JSON[0].ID != latest.ID || v.JSON[0].Subject != "Password reset" ||
				v.JSON[0].To[0].Address != "mycustomer@gmail.com" || len(v.JSON[0].Links) != 1 || v.JSON[0].Via != "alice" {
				t.Errorf("python_validation.py: %+v", v)
			}
			if out.Reading.Status != 200 || out.Reading.Text != "Click on the link to reset you password\r\nhttps://mywebapp.com/password-reset/PasswordResetToken" {
				t.Errorf("reading_mail.py: %+v", out.Reading)
			}
			if out.Delete.Status != 200 || out.Delete.JSON != (deleteResult{ID: latest.ID, Inbox: "mycustomer@gmail.com", Message: "Message was deleted."}) {
				t.Errorf("delete_message.py: %+v", out.Delete)
			}
			if out.Purge.Status != 204 {
				t.Errorf("purge_inbox.py: %d", out.Purge.Status)
			}
			if out.CheckReceived == nil || *out.CheckReceived != user1.Received.UTC().Format(receivedLayout) {
				t.Errorf("validate_receipt_smtp.py check_received: %v", out.CheckReceived)
			}
			// What the scripts deleted is gone; the rest is still there.
			if _, err := f.st.Get(context.Background(), latest.ID, store.Scope{All: true}); err == nil {
				t.Error("the deleted message is still there")
			}
			for _, m := range []*store.Message{reset1, reset2} {
				if _, err := f.st.Get(context.Background(), m.ID, store.Scope{All: true}); err != nil {
					t.Errorf("%s was deleted: %v", m.ID, err)
				}
			}
		})
	}
}
