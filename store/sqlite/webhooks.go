package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/smtpgate/smtpgate/store"
)

var _ store.Webhooks = (*DB)(nil)

// Webhook job states.
const (
	jobQueued   = "queued"
	jobDeferred = "deferred"
	jobSent     = "sent"
	jobFailed   = "failed"
)

const jobColumns = `id, webhook, event_seq, login, state, attempts, next_attempt, last_status, last_error, created, updated`

// scanJob reads jobColumns.
func scanJob(s scanner) (*store.WebhookJob, error) {
	j := &store.WebhookJob{}
	var next, created, updated int64
	if err := s.Scan(&j.ID, &j.Webhook, &j.EventSeq, &j.Login, &j.State, &j.Attempts, &next, &j.LastStatus, &j.LastError,
		&created, &updated); err != nil {
		return nil, err
	}
	j.NextAttempt, j.Created, j.Updated = fromNano(next), fromNano(created), fromNano(updated)
	return j, nil
}

// EnqueueWebhookJobs creates a job for each of up to limit events after
// the webhook's cursor whose type is in types and whose login is in logins
// (all when empty), moves the cursor past every event it read, and returns
// how many it read. All writes go through the one writer, so events become
// visible in Seq order and the cursor never skips one.
func (db *DB) EnqueueWebhookJobs(ctx context.Context, webhook string, types, logins []string, limit int, now time.Time) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	want, wantLogin := set(types), set(logins)
	var consumed int
	err := db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		consumed = 0
		var cursor int64
		err := db.txQueryRow(ctx, tx, selectCursor, webhook).Scan(&cursor)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		rows, err := db.txQuery(ctx, tx, selectNewEvents, cursor, limit)
		if err != nil {
			return err
		}
		type ev struct {
			seq         int64
			login, kind string
		}
		var evs []ev
		for rows.Next() {
			var e ev
			if err := rows.Scan(&e.seq, &e.login, &e.kind); err != nil {
				rows.Close()
				return err
			}
			evs = append(evs, e)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(evs) == 0 {
			return nil
		}
		n := unixNano(now)
		for _, e := range evs {
			if len(want) > 0 && !want[e.kind] || len(wantLogin) > 0 && !wantLogin[e.login] {
				continue
			}
			if _, err := db.txExec(ctx, tx, insertJob, webhook, e.seq, e.login, jobQueued, n, n, n); err != nil {
				return err
			}
		}
		if _, err := db.txExec(ctx, tx, upsertCursor, webhook, evs[len(evs)-1].seq); err != nil {
			return err
		}
		consumed = len(evs)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: enqueue webhook jobs for %s: %w", webhook, err)
	}
	return consumed, nil
}

// set returns the members of list as a set; empty for an empty list.
func set(list []string) map[string]bool {
	m := make(map[string]bool, len(list))
	for _, v := range list {
		m[v] = true
	}
	return m
}

// ClaimWebhookJobs leases up to limit due jobs (of webhook only, unless it
// is "") to owner until now+lease, oldest NextAttempt first, then by ID.
func (db *DB) ClaimWebhookJobs(ctx context.Context, webhook, owner string, now time.Time, limit int, lease time.Duration) ([]*store.WebhookJob, error) {
	q := claimQuery{table: "webhook_jobs", webhook: webhook, owner: owner, now: now, limit: limit, lease: lease}
	out, err := claimRows(ctx, db, q, selectJob, scanJob)
	if err != nil {
		return nil, fmt.Errorf("sqlite: claim jobs of webhook %q: %w", webhook, err)
	}
	return out, nil
}

// CompleteWebhookJob records an attempt of job id: state sent, deferred
// (due again at next) or failed. It returns store.ErrLeaseLost if owner no
// longer holds the job.
func (db *DB) CompleteWebhookJob(ctx context.Context, id int64, owner string, state string, status int, errText string, next time.Time) error {
	switch state {
	case jobSent, jobDeferred, jobFailed:
	default:
		return fmt.Errorf("sqlite: complete webhook job %d: bad state %q", id, state)
	}
	err := db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if err := db.holdsLease(ctx, tx, "webhook_jobs", id, owner); err != nil {
			return err
		}
		_, err := db.txExec(ctx, tx, completeJob, state, status, errText, unixNano(time.Now()),
			state == jobDeferred, unixNano(next), id)
		return err
	})
	if err != nil && !errors.Is(err, store.ErrLeaseLost) && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("sqlite: complete webhook job %d: %w", id, err)
	}
	return err
}

// ReleaseWebhookJobs returns every job leased to owner to the queue
// unchanged.
func (db *DB) ReleaseWebhookJobs(ctx context.Context, owner string) error {
	if err := db.release(ctx, "webhook_jobs", owner); err != nil {
		return fmt.Errorf("sqlite: release webhook jobs of %s: %w", owner, err)
	}
	return nil
}

// WebhookJobs lists a webhook's jobs newest first, only of logins in
// scope. limit 0 or less means 100; at most 1000.
func (db *DB) WebhookJobs(ctx context.Context, webhook string, scope store.Scope, limit int) ([]*store.WebhookJob, error) {
	if !scopeSeesAnything(scope) {
		return []*store.WebhookJob{}, nil
	}
	if limit <= 0 {
		limit = defaultLimit
	}
	limit = min(limit, maxLimit)
	query := `SELECT ` + jobColumns + ` FROM webhook_jobs WHERE webhook = ?`
	args := []any{webhook}
	if !scope.All {
		logins, err := json.Marshal(scope.Logins)
		if err != nil {
			return nil, fmt.Errorf("sqlite: webhook jobs: %w", err)
		}
		query += ` AND login IN (SELECT value FROM json_each(?))`
		args = append(args, logins)
	}
	out, err := queryScoped(ctx, db, scope, scanJob, func(j *store.WebhookJob) string { return j.Login },
		query+` ORDER BY id DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: webhook jobs: %w", err)
	}
	return out, nil
}
