package postgres

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/smtpgate/smtpgate/internal/testutil"
	"github.com/smtpgate/smtpgate/store"
)

// waitForLockWaiter waits until some backend waits for the seq lock of db.
func waitForLockWaiter(t *testing.T, conn *pgx.Conn, db *DB) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var waiting int
		err := conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_locks
WHERE locktype = 'advisory' AND NOT granted AND ((classid::bigint << 32) | objid::bigint) = $1`, db.lockKey).Scan(&waiting)
		if err != nil {
			t.Fatalf("read pg_locks: %v", err)
		}
		if waiting > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("nobody ever waited for the seq lock")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestSeqWaitsForEarlierCommit plays a transaction that drew a Seq and has
// not committed yet (it holds the seq lock, as every Seq-drawing
// transaction of the store does). Accept and AddEvents must wait for it:
// their Seq is drawn only after it committed, so a reader never sees the
// later Seq without the earlier one.
func TestSeqWaitsForEarlierCommit(t *testing.T) {
	ctx := context.Background()
	dsn := testutil.PostgresSchema(t)
	db := openTest(t, dsn)
	base := mustAccept(t, db, testMessage(t, "alpha", store.RouteCapture, "a@example.org"))

	for _, tc := range []struct {
		name  string
		draw  string // the slow transaction's seq-drawing statement
		write func() (int64, error)
		read  func() ([]int64, error) // every Seq visible, in order
	}{
		{
			name: "messages",
			draw: fmt.Sprintf(`INSERT INTO messages (id, login, route, mail_from, recipients, remote_ip, helo, tls, received, size,
	summary, tags, body_text, return_path, metadata, processing, subject, from_text, to_text, has_attachment)
VALUES ('%s', 'alpha', 'capture', '', '{}', '', '', false, now(), 0, '{}', '{}', '', '', '{}', '{}', '', '', '', false)
RETURNING seq`, store.NewID(time.Now())),
			write: func() (int64, error) {
				m := testMessage(t, "alpha", store.RouteCapture, "a@example.org")
				err := db.Accept(ctx, m)
				return m.Seq, err
			},
			read: func() ([]int64, error) {
				msgs, err := db.Search(ctx, store.SearchQuery{Scope: all, AfterSeq: base.Seq, Limit: 1000})
				var seqs []int64
				for _, m := range msgs {
					seqs = append(seqs, m.Seq)
				}
				return seqs, err
			},
		},
		{
			name: "events",
			draw: fmt.Sprintf(`INSERT INTO events (message_id, login, type, recipient, time, ip, user_agent, url, reply, detail)
VALUES ('%s', 'alpha', 'opened', '', now(), '', '', '', '', '') RETURNING seq`, base.ID),
			write: func() (int64, error) {
				ev := &store.Event{MessageID: base.ID, Type: store.EventClicked, Time: time.Now()}
				err := db.AddEvents(ctx, ev)
				return ev.Seq, err
			},
			read: func() ([]int64, error) {
				evs, err := db.Events(ctx, store.EventQuery{Scope: all})
				var seqs []int64
				for _, ev := range evs {
					seqs = append(seqs, ev.Seq)
				}
				return seqs, err
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			slow, err := pgx.Connect(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer slow.Close(ctx)
			watcher, err := pgx.Connect(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer watcher.Close(ctx)

			tx, err := slow.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(ctx)
			if _, err := tx.Exec(ctx, lockSeq, db.lockKey); err != nil {
				t.Fatal(err)
			}
			var early int64
			if err := tx.QueryRow(ctx, tc.draw).Scan(&early); err != nil {
				t.Fatal(err)
			}

			type outcome struct {
				seq int64
				err error
			}
			done := make(chan outcome, 1)
			go func() {
				seq, err := tc.write()
				done <- outcome{seq, err}
			}()
			waitForLockWaiter(t, watcher, db)
			// The writer is blocked behind the open transaction: nothing
			// after early is visible.
			seqs, err := tc.read()
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range seqs {
				if s >= early {
					t.Fatalf("Seq %d visible while Seq %d is uncommitted", s, early)
				}
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			got := <-done
			if got.err != nil {
				t.Fatal(got.err)
			}
			if got.seq <= early {
				t.Fatalf("Seq %d drawn after the transaction holding Seq %d committed, want more", got.seq, early)
			}
			seqs, err = tc.read()
			if err != nil {
				t.Fatal(err)
			}
			if len(seqs) < 2 || seqs[len(seqs)-2] != early || seqs[len(seqs)-1] != got.seq {
				t.Errorf("visible Seqs end with %v, want [... %d %d]", seqs[max(0, len(seqs)-2):], early, got.seq)
			}
		})
	}
}

// TestSeqCommitOrderUnderLoad is the wait API's property under load: two
// store handles (two smtpgate instances) accept messages and append events
// from many goroutines while readers follow "Seq > cursor" and move their
// cursor to the highest Seq seen. If any Seq became visible before a lower
// one, the reader would have moved past the lower one and never see it.
func TestSeqCommitOrderUnderLoad(t *testing.T) {
	ctx := context.Background()
	dsn := testutil.PostgresSchema(t)
	dbs := []*DB{openTest(t, dsn), openTest(t, dsn)}
	const producers, perProducer = 8, 30
	// Search with AfterSeq 0 lists newest first: start after a seed.
	seed := mustAccept(t, dbs[0], testMessage(t, "alpha", store.RouteCapture, "seed@example.org"))

	// Readers, each following one cursor.
	type follower struct {
		name  string
		poll  func(after int64) ([]int64, error)
		start int64 // the cursor to start from
		seen  map[int64]bool
		err   error
	}
	followers := []*follower{
		{name: "messages", start: seed.Seq, poll: func(after int64) ([]int64, error) {
			msgs, err := dbs[1].Search(ctx, store.SearchQuery{Scope: all, AfterSeq: after, Limit: 1000})
			out := make([]int64, len(msgs))
			for i, m := range msgs {
				out[i] = m.Seq
			}
			return out, err
		}},
		{name: "events", poll: func(after int64) ([]int64, error) {
			evs, err := dbs[0].Events(ctx, store.EventQuery{Scope: all, AfterSeq: after, Limit: 10000})
			out := make([]int64, len(evs))
			for i, ev := range evs {
				out[i] = ev.Seq
			}
			return out, err
		}},
	}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for _, f := range followers {
		f.seen = map[int64]bool{}
		readers.Go(func() {
			cursor := f.start
			for final := false; ; {
				select {
				case <-stop:
					final = true
				default:
				}
				seqs, err := f.poll(cursor)
				if err != nil {
					f.err = err
					return
				}
				for i, s := range seqs {
					if s <= cursor || i > 0 && s <= seqs[i-1] {
						f.err = fmt.Errorf("%s: Seq %d out of order after %d", f.name, s, cursor)
						return
					}
					f.seen[s] = true
				}
				if len(seqs) > 0 {
					cursor = seqs[len(seqs)-1]
				} else if final {
					return
				}
			}
		})
	}

	var wg sync.WaitGroup
	errs := make(chan error, len(dbs)*producers)
	for _, db := range dbs {
		for range producers {
			wg.Go(func() {
				var prev *store.Message
				for range perProducer {
					m := testMessage(t, "alpha", store.RouteCapture, "load@example.org")
					if err := db.Accept(ctx, m); err != nil {
						errs <- err
						return
					}
					if prev != nil {
						if err := db.AddEvents(ctx, &store.Event{MessageID: prev.ID, Type: store.EventOpened, Time: time.Now()}); err != nil {
							errs <- err
							return
						}
					}
					prev = m
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	close(stop)
	readers.Wait()

	truth := map[string]string{"messages": `SELECT seq FROM messages WHERE seq > $1`, "events": `SELECT seq FROM events WHERE seq > $1`}
	for _, f := range followers {
		if f.err != nil {
			t.Fatal(f.err)
		}
		rows, err := dbs[0].pool.Query(ctx, truth[f.name], f.start)
		if err != nil {
			t.Fatal(err)
		}
		all, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			t.Fatal(err)
		}
		missed := 0
		for _, s := range all {
			if !f.seen[s] {
				missed++
				t.Errorf("%s: Seq %d committed but the reader's cursor had passed it", f.name, s)
			}
		}
		if len(f.seen) != len(all) {
			t.Errorf("%s: reader saw %d Seqs, %d committed", f.name, len(f.seen), len(all))
		}
		t.Logf("%s: %d Seqs followed, %d missed", f.name, len(all), missed)
	}
}
