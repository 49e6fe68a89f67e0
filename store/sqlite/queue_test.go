package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/smtpgate/smtpgate/store"
)

// waitFor polls cond until it holds, failing the test after a long time.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func queuedMessage(rcpt string) *store.Message {
	now := time.Now().UTC()
	raw := []byte("Subject: queued\r\nTo: " + rcpt + "\r\n\r\nbody\r\n")
	return &store.Message{ID: store.NewID(now), Login: "app", Route: store.RouteCapture,
		Recipients: []string{rcpt}, Received: now, Size: int64(len(raw)), Raw: raw}
}

// TestAcceptContextWhileQueued holds the database's write lock from another
// connection so that the writer is stuck beginning a transaction. An Accept
// whose context ends while it waits in the queue returns the context's
// error and is never stored; the Accept the writer had already taken is
// committed once the lock is released and reports nil although its context
// ended meanwhile.
func TestAcceptContextWhileQueued(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(context.Background(), dir, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	locker, err := sql.Open("sqlite", filepath.Join(dir, FileName)+"?_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer locker.Close()
	lock, err := locker.Begin() // BEGIN IMMEDIATE: holds the write lock
	if err != nil {
		t.Fatal(err)
	}

	taken := queuedMessage("a@example.org")
	takenCtx, cancelTaken := context.WithCancel(context.Background())
	takenErr := make(chan error, 1)
	go func() { takenErr <- db.Accept(takenCtx, taken) }()
	// The writer takes it from the queue, then holds its connection while
	// BEGIN waits for the lock.
	waitFor(t, "the writer to begin a transaction", func() bool { return db.wdb.Stats().InUse == 1 })

	queued := queuedMessage("b@example.org")
	queuedCtx, cancelQueued := context.WithCancel(context.Background())
	queuedErr := make(chan error, 1)
	go func() { queuedErr <- db.Accept(queuedCtx, queued) }()
	waitFor(t, "the second message in the queue", func() bool { return db.commits.Queued() == 1 })
	cancelQueued()
	if err := <-queuedErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("queued Accept: %v, want context.Canceled", err)
	}
	cancelTaken() // too late: the message is being committed
	if err := lock.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := <-takenErr; err != nil {
		t.Fatalf("the Accept being committed reported %v, want nil", err)
	}
	all := store.Scope{All: true}
	if _, err := db.Get(context.Background(), taken.ID, all); err != nil {
		t.Errorf("taken message: %v", err)
	}
	if _, err := db.Get(context.Background(), queued.ID, all); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("abandoned message: Get = %v, want ErrNotFound", err)
	}
	if err := db.Accept(context.Background(), queuedMessage("c@example.org")); err != nil {
		t.Fatal(err)
	}
}
