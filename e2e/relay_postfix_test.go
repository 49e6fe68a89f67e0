package e2e

import (
	"bytes"
	"context"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	msgauthdkim "github.com/emersion/go-msgauth/dkim"
	"go.uber.org/zap"

	"github.com/smtpgate/smtpgate/store"
	"github.com/smtpgate/smtpgate/store/sqlite"
)

// TestRelayToPostfix relays through smtpgate to a private Postfix acting as
// the receiving MTA for dest.test: a message to dest.test lands in Postfix's
// Maildir with smtpgate's DKIM signature intact, and smtpgate records the
// delivery as sent with Postfix's queue id in the reply; a message to
// another domain is refused by Postfix as relaying (554 5.7.1) and
// smtpgate records it as bounced, without retrying.
func TestRelayToPostfix(t *testing.T) {
	t.Parallel()
	requirePostfix(t)
	pu, err := user.Lookup("postfix")
	if err != nil {
		t.Skipf("no postfix user: %v", err)
	}
	dir := t.TempDir()
	mail := filepath.Join(dir, "mail") // virtual(8) writes here as user postfix
	uid, gid := atoi(t, pu.Uid), atoi(t, pu.Gid)
	if err := os.Mkdir(mail, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(mail, uid, gid); err != nil {
		t.Skipf("cannot give the Maildir to user postfix: %v", err)
	}
	pf := startPostfix(t, postfixConf{Templates: "postfix-mx", Dir: dir, SMTPPort: freePort(t), MailUID: pu.Uid, MailGID: pu.Gid})
	in, dkimTXT := startRelayGate(t, pf.smtpAddr())

	token := unique(t, "pfmx")
	const from, rcpt, refused = "relay@app1.test", "reader@dest.test", "nobody@elsewhere.test"
	body := "Relayed to a real MTA, marker " + token
	cl, err := in.dialSubmission(t, app1)
	if err != nil {
		t.Fatal(err)
	}
	id, err := sendVia(cl, from, []string{rcpt}, composeMessageID(from, rcpt, "postfix "+token, body, token+"@relay.e2e.test"))
	if err != nil {
		t.Fatalf("send to %s: %v", rcpt, err)
	}
	refusedID, err := sendVia(cl, from, []string{refused}, composeMessageID(from, refused, "refused "+token, body, token+"-refused@relay.e2e.test"))
	if err != nil {
		t.Fatalf("send to %s: %v", refused, err)
	}
	_ = cl.Quit()

	// The message arrives in the Maildir, as Postfix's virtual agent wrote it.
	var files []string
	deadline := time.Now().Add(inboxTimeout)
	for len(files) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("nothing in %s/inbox/new after %v", mail, inboxTimeout)
		}
		time.Sleep(50 * time.Millisecond)
		files, _ = filepath.Glob(filepath.Join(mail, "inbox", "new", "*"))
	}
	if len(files) != 1 {
		t.Fatalf("Maildir holds %d messages, want 1: %v", len(files), files)
	}
	raw, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Return-Path: <" + from + ">\n",
		"Delivered-To: " + rcpt + "\n",
		"by mx.postfix.e2e.test (Postfix)",
		"from smtpgate.test (", // smtpgate's EHLO name, the policy's hostname
		"Message-ID: <" + token + "@relay.e2e.test>\n",
		body + "\n",
	} {
		if !bytes.Contains(raw, []byte(want)) {
			t.Errorf("delivered message lacks %q:\n%s", want, raw)
		}
	}
	// The Maildir has LF line endings; DKIM is computed on the CRLF form.
	crlf := bytes.ReplaceAll(raw, []byte("\n"), []byte("\r\n"))
	vs, err := msgauthdkim.VerifyWithOptions(bytes.NewReader(crlf), &msgauthdkim.VerifyOptions{
		LookupTXT: func(domain string) ([]string, error) {
			if domain != "s1._domainkey.app1.test" {
				t.Errorf("DKIM looked up %s", domain)
			}
			return []string{dkimTXT}, nil
		},
	})
	if err != nil || len(vs) != 1 || vs[0].Err != nil || vs[0].Domain != "app1.test" {
		t.Errorf("DKIM verification after Postfix: %v %+v", err, vs)
	}

	// Postfix's log: the delivery to the Maildir under a queue id, and the
	// refusal of the other domain.
	sentRE := regexp.MustCompile(`(?m)([0-9A-Za-z]+): to=<` + regexp.QuoteMeta(rcpt) + `>, relay=virtual, .*status=sent \(delivered to maildir\)`)
	refusedRE := regexp.MustCompile(`reject: RCPT from [^:]*: 554 5\.7\.1 <` + regexp.QuoteMeta(refused) + `>: Relay access denied`)
	var queueID string
	for deadline = time.Now().Add(inboxTimeout); ; {
		log := pf.maillog()
		if m := sentRE.FindStringSubmatch(log); m != nil && refusedRE.MatchString(log) {
			queueID = m[1]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("postfix log lacks %q or %q:\n%s", sentRE, refusedRE, log)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// smtpgate's record of both deliveries: a graceful stop lets the
	// attempt in flight (the refusal) finish and be recorded.
	in.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := sqlite.Open(ctx, in.dataDir, zap.NewNop())
	if err != nil {
		t.Fatalf("open the store: %v", err)
	}
	defer db.Close()
	for _, w := range []struct {
		id, state, events, reply string
	}{
		{id, store.DeliverySent, "queued,sent", "queued as " + queueID},
		{refusedID, store.DeliveryBounced, "queued,bounced", "554 5.7.1"},
	} {
		all := store.Scope{All: true}
		ds, err := db.Deliveries(ctx, store.DeliveryQuery{Scope: all, MessageID: w.id})
		if err != nil {
			t.Fatal(err)
		}
		evs, err := db.Events(ctx, store.EventQuery{Scope: all, MessageID: w.id})
		if err != nil {
			t.Fatal(err)
		}
		var types []string
		for _, e := range evs {
			types = append(types, e.Type)
		}
		if len(ds) != 1 || ds[0].State != w.state || ds[0].Attempts != 1 || !strings.Contains(ds[0].LastReply, w.reply) {
			var got []string
			for _, d := range ds {
				got = append(got, d.State+" after "+strconv.Itoa(d.Attempts)+" attempts: "+d.LastReply)
			}
			t.Errorf("message %s: deliveries %q, want one %s after 1 attempt with a reply containing %q", w.id, got, w.state, w.reply)
		}
		if strings.Join(types, ",") != w.events {
			t.Errorf("message %s: events %v, want %s", w.id, types, w.events)
		}
	}
}
