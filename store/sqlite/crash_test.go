package sqlite_test

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/smtpgate/smtpgate/store"
	"github.com/smtpgate/smtpgate/store/sqlite"
	"github.com/smtpgate/smtpgate/summary"
)

// crashDirEnv tells the test binary to act as the crashing child of
// TestAcceptedMessagesSurviveSIGKILL.
const crashDirEnv = "SMTPGATE_SQLITE_CRASH_DIR"

// TestCrashChild is the child process: it accepts messages from 20
// producers as fast as it can and prints the id of each message whose
// Accept returned nil, until it is killed.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("runs only as the child of TestAcceptedMessagesSurviveSIGKILL")
	}
	db, err := sqlite.Open(context.Background(), dir, zap.NewNop())
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	raw := fiveKB("child")
	sum, err := summary.Parse(raw)
	if err != nil {
		fmt.Println("parse:", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	for p := 0; p < 20; p++ {
		go func() {
			for i := 0; ; i++ {
				m := newMessage(raw, sum, fmt.Sprintf("rcpt%d@example.org", i%10))
				if err := db.Accept(context.Background(), m); err != nil {
					fmt.Println("accept:", err)
					os.Exit(2)
				}
				mu.Lock()
				os.Stdout.WriteString("ok " + m.ID + "\n") // one write per line
				mu.Unlock()
			}
		}()
	}
	select {} // never closes the store: the parent kills the process
}

// TestAcceptedMessagesSurviveSIGKILL kills a process that is committing
// messages with SIGKILL and checks that every message whose Accept had
// returned nil is in the reopened store.
func TestAcceptedMessagesSurviveSIGKILL(t *testing.T) {
	if os.Getenv(crashDirEnv) != "" {
		t.Skip("in the child")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	const want = 400
	var ids []string
	lines := bufio.NewScanner(out)
	deadline := time.AfterFunc(2*time.Minute, func() { _ = cmd.Process.Kill() })
	defer deadline.Stop()
	for len(ids) < want && lines.Scan() {
		line := lines.Text()
		id, ok := strings.CutPrefix(line, "ok ")
		if !ok {
			t.Fatalf("child: %s", line)
		}
		ids = append(ids, id)
	}
	// Kill mid-flight: more Accepts are being committed right now.
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	for lines.Scan() { // lines written before the kill
		if id, ok := strings.CutPrefix(lines.Text(), "ok "); ok {
			ids = append(ids, id)
		}
	}
	_ = cmd.Wait()
	if len(ids) < want {
		t.Fatalf("child printed only %d ids", len(ids))
	}

	db := open(t, dir)
	defer db.Close()
	for _, id := range ids {
		if _, err := db.Get(context.Background(), id, store.Scope{All: true}); err != nil {
			t.Errorf("accepted message %s lost after SIGKILL: %v", id, err)
		}
	}
	raw, err := sql.Open("sqlite", filepath.Join(dir, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var check string
	if err := raw.QueryRow("PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		t.Errorf("integrity_check = %q (%v)", check, err)
	}
	t.Logf("%d acknowledged messages all present after SIGKILL", len(ids))
}

// fiveKB returns a realistic ~5 KB HTML message.
func fiveKB(tag string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: Shop <noreply@shop.example>\r\nTo: customer@example.org\r\nSubject: Order %s\r\n"+
		"Date: Tue, 3 Mar 2026 10:15:00 +0100\r\nMessage-ID: <%s@shop.example>\r\nMIME-Version: 1.0\r\n"+
		"Content-Type: text/html; charset=utf-8\r\n\r\n<html><body><table>\r\n", tag, tag)
	for i := 0; b.Len() < 5000; i++ {
		fmt.Fprintf(&b, "<tr><td>Item %d</td><td><a href=\"https://shop.example/p/%d\">View</a></td></tr>\r\n", i, i)
	}
	b.WriteString("</table></body></html>\r\n")
	return []byte(b.String())
}

// newMessage makes a captured message with a fresh id.
func newMessage(raw []byte, sum summary.Summary, rcpts ...string) *store.Message {
	now := time.Now().UTC()
	return &store.Message{
		ID:         store.NewID(now),
		Login:      "app",
		Route:      store.RouteCapture,
		MailFrom:   "noreply@shop.example",
		Recipients: rcpts,
		RemoteIP:   "127.0.0.1",
		Helo:       "app.example",
		TLS:        true,
		Received:   now,
		Size:       int64(len(raw)),
		Raw:        raw,
		Summary:    sum,
		Tags:       []string{"order"},
	}
}
