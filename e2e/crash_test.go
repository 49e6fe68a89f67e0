package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	crashConns  = 20              // concurrent SMTP sessions under load
	crashRounds = 3               // SIGKILLs in one test
	crashLoad   = time.Second     // load before the kill
	crashMinAck = crashConns      // at least this many acknowledged before a kill
	crashMaxRun = 8 * time.Second // a kill happens by then, acknowledged or not
)

// ackedMessage is a message smtpgate answered "250 queued as <id>" for.
type ackedMessage struct {
	id    string
	rcpt  string
	token string // in the Subject and in the marker line that ends the body
}

// markerLine ends every body the crash test writes.
func markerLine(token string) string { return "END-OF-MESSAGE " + token }

// crashMessageID is the Message-ID (without angle brackets) of the message
// with token.
func crashMessageID(token string) string { return token + "@crash.e2e.test" }

// crashBody is a few KB of text that ends with the marker line.
func crashBody(token string) string {
	var b strings.Builder
	for i := range 60 {
		fmt.Fprintf(&b, "line %02d of %s: the quick brown fox jumps over the lazy dog\n", i, token)
	}
	b.WriteString(markerLine(token))
	return b.String()
}

// TestCrashSafety kills smtpgate with SIGKILL while 20 sessions send, three
// times over, and restarts it on the same data directory each time: every
// message that got "250 queued as <id>" must be readable, and no message in
// any inbox may be half-written (each one ends with the marker line its
// client wrote).
func TestCrashSafety(t *testing.T) {
	in := start(t)
	var acked []ackedMessage
	seen := map[string]bool{} // ids verified complete
	for round := range crashRounds {
		got := loadAndKill(t, in, round)
		if len(got) == 0 {
			t.Fatalf("round %d: no message was acknowledged before the kill", round)
		}
		t.Logf("round %d: %d messages acknowledged before SIGKILL", round, len(got))
		acked = append(acked, got...)
		in = in.restart(t)
		verifyAcked(t, in, acked)
		verifyComplete(t, in, seen)
		if t.Failed() {
			return
		}
	}
	ids := map[string]bool{}
	for _, a := range acked {
		if ids[a.id] {
			t.Errorf("queue id %s acknowledged twice", a.id)
		}
		ids[a.id] = true
	}
}

// loadAndKill runs crashConns sessions sending in a loop, SIGKILLs smtpgate
// once the load has run for crashLoad (and at least crashMinAck messages
// were acknowledged), and returns the acknowledged messages.
func loadAndKill(t *testing.T, in *instance, round int) []ackedMessage {
	t.Helper()
	var (
		mu    sync.Mutex
		acked []ackedMessage
		wg    sync.WaitGroup
		stop  = make(chan struct{})
		dying = make(chan struct{}) // closed just before the SIGKILL
	)
	// failed reports an error, unless it is the kill's doing.
	failed := func(format string, args ...any) {
		select {
		case <-dying:
		default:
			t.Errorf(format, args...)
		}
	}
	for c := range crashConns {
		wg.Go(func() {
			rcpt := fmt.Sprintf("crash-%02d@dest.test", c)
			cl, err := in.dialSubmission(t, app1)
			if err != nil {
				failed("round %d conn %d: %v", round, c, err)
				return
			}
			defer cl.Close()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				token := fmt.Sprintf("r%d-c%02d-m%05d", round, c, i)
				msg := composeMessageID("crash@app1.test", rcpt, "crash "+token, crashBody(token), crashMessageID(token))
				id, err := sendVia(cl, "crash@app1.test", []string{rcpt}, msg)
				if err != nil {
					failed("round %d conn %d: message %d refused before the kill: %v", round, c, i, err)
					return
				}
				mu.Lock()
				acked = append(acked, ackedMessage{id: id, rcpt: rcpt, token: token})
				mu.Unlock()
			}
		})
	}
	// The load runs for crashLoad from the first acknowledgement (the 20
	// logins come first), until at least crashMinAck messages are in.
	begin := time.Now()
	var firstAck time.Time
	for {
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n > 0 && firstAck.IsZero() {
			firstAck = time.Now()
		}
		if (n >= crashMinAck && time.Since(firstAck) >= crashLoad) || time.Since(begin) >= crashMaxRun {
			break
		}
	}
	close(dying)
	in.kill(t)
	close(stop)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	return append([]ackedMessage(nil), acked...)
}

// verifyAcked fetches every acknowledged message by id.
func verifyAcked(t *testing.T, in *instance, acked []ackedMessage) {
	t.Helper()
	lost := 0
	for _, a := range acked {
		path := "/api/addresses/" + url.PathEscape(a.rcpt) + "/messages/" + url.PathEscape(a.id)
		status, _, body := in.get(t, keyOne, path)
		if status != http.StatusOK {
			lost++
			if lost <= 10 {
				t.Errorf("acknowledged message %s (%s) lost after SIGKILL: GET %s = %d %s", a.id, a.token, path, status, body)
			}
			continue
		}
		var m apiMessage
		if err := json.Unmarshal(body, &m); err != nil {
			t.Errorf("GET %s: %v: %s", path, err, body)
			continue
		}
		if m.ID != a.id || m.Subject != "crash "+a.token || m.Via != "app1" {
			t.Errorf("GET %s = id %q subject %q via %q, want %q %q %q", path, m.ID, m.Subject, m.Via, a.id, "crash "+a.token, "app1")
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d acknowledged messages lost", lost, len(acked))
	}
}

// verifyComplete reads every message in the crash inboxes that was not
// checked before and requires it to be whole: it parses, and its body ends
// with the marker line named by its subject.
func verifyComplete(t *testing.T, in *instance, seen map[string]bool) {
	t.Helper()
	checked := 0
	for c := range crashConns {
		rcpt := fmt.Sprintf("crash-%02d@dest.test", c)
		for _, m := range in.inbox(t, keyOne, rcpt) {
			if seen[m.ID] {
				continue
			}
			seen[m.ID] = true
			checked++
			raw := in.raw(t, keyOne, rcpt, m.ID)
			token, ok := strings.CutPrefix(m.Subject, "crash ")
			if !ok {
				t.Errorf("message %s in %s: subject %q is not one the test wrote", m.ID, rcpt, m.Subject)
				continue
			}
			subject, err := subjectOf(raw)
			if err != nil || subject != m.Subject {
				t.Errorf("message %s: raw subject %q (%v), listing says %q", m.ID, subject, err, m.Subject)
			}
			text, err := bodyText(raw)
			if err != nil {
				t.Errorf("message %s: %v", m.ID, err)
				continue
			}
			want := markerLine(token)
			if !strings.HasSuffix(strings.TrimRight(text, "\r\n"), "\n"+want) || !bytes.HasSuffix(raw, []byte(want+"\r\n")) {
				t.Errorf("message %s is half-written: it does not end with %q:\n%s", m.ID, want, tail(string(raw), 5))
			}
		}
	}
	t.Logf("checked %d stored messages for completeness", checked)
}
