package postgres

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap"

	"github.com/smtpgate/smtpgate/internal/testutil"
	"github.com/smtpgate/smtpgate/store"
)

// crashDSNEnv names the environment variable that turns TestCrashChild
// into the process TestCrashKeepsAcceptedMail kills.
const crashDSNEnv = "SMTPGATE_PG_CRASH_CHILD_DSN"

// TestCrashChild is not a test of its own: run by
// TestCrashKeepsAcceptedMail, it accepts messages from 20 goroutines
// until it is killed, printing "ACK <id>" after each Accept that returned
// nil.
func TestCrashChild(t *testing.T) {
	dsn := os.Getenv(crashDSNEnv)
	if dsn == "" {
		t.Skip("run by TestCrashKeepsAcceptedMail")
	}
	db, err := Open(context.Background(), dsn, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 20 {
		wg.Go(func() {
			for i := 0; ; i++ {
				m := testMessage(t, fmt.Sprintf("login%d", w%2), store.RouteCapture, "crash@example.org", fmt.Sprintf("w%d@example.org", w))
				m.Raw = append(m.Raw, bytes.Repeat([]byte("crash test body line\r\n"), 200)...)
				m.Size = int64(len(m.Raw))
				if err := db.Accept(context.Background(), m); err != nil {
					fmt.Fprintf(os.Stderr, "accept: %v\n", err)
					return
				}
				mu.Lock()
				fmt.Fprintf(os.Stdout, "ACK %s\n", m.ID)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// TestCrashKeepsAcceptedMail kills (SIGKILL) a process in the middle of
// group commits. Every message whose Accept returned nil before the kill
// is stored whole (body, inbox entries, events), and nothing is stored in
// part.
func TestCrashKeepsAcceptedMail(t *testing.T) {
	if os.Getenv(crashDSNEnv) != "" {
		t.Skip("inside the child")
	}
	ctx := context.Background()
	dsn := testutil.PostgresSchema(t)
	openTest(t, dsn).Close() // migrate before the child starts

	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDSNEnv+"="+dsn)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked []string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if id, ok := strings.CutPrefix(sc.Text(), "ACK "); ok {
			acked = append(acked, id)
			if len(acked) == 600 {
				if err := cmd.Process.Kill(); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	_ = cmd.Wait()
	if len(acked) < 600 {
		t.Fatalf("the child acknowledged only %d messages before it ended: %s", len(acked), stderr.String())
	}

	db := openTest(t, dsn)
	for _, id := range acked {
		m, err := db.Get(ctx, id, all)
		if err != nil {
			t.Fatalf("acknowledged message %s lost: %v", id, err)
		}
		if !bytes.Contains(m.Raw, []byte(id)) || int64(len(m.Raw)) != m.Size {
			t.Fatalf("message %s stored damaged: %d bytes, Size %d", id, len(m.Raw), m.Size)
		}
		if _, err := db.InboxMessage(ctx, "crash@example.org", id, all); err != nil {
			t.Fatalf("message %s lost its inbox entry: %v", id, err)
		}
	}
	// Whatever was stored beyond the acknowledged ones is whole too.
	var total, partial int
	err = db.pool.QueryRow(ctx, `SELECT count(*),
	count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM bodies b WHERE b.id = m.id)
		OR (SELECT count(*) FROM inbox i WHERE i.seq = m.seq) <> 2
		OR (SELECT count(*) FROM events e WHERE e.message_id = m.id) <> 2)
FROM messages m`).Scan(&total, &partial)
	if err != nil {
		t.Fatal(err)
	}
	if partial != 0 {
		t.Errorf("%d of %d stored messages are incomplete", partial, total)
	}
	t.Logf("%d acknowledged before the kill, %d stored", len(acked), total)
}
