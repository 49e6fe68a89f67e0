package postgres

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/smtpgate/smtpgate/store"
)

// Webhook job states CompleteWebhookJob accepts.
const (
	jobDeferred = "deferred"
	jobSent     = "sent"
	jobFailed   = "failed"
)

// Limits of the webhook methods.
const (
	defaultEnqueueLimit = 1000
	defaultJobLimit     = 100
	maxJobLimit         = 1000
)

// jobColumns are the columns scanJob reads.
const jobColumns = `j.id, j.webhook, j.event_seq, j.login, j.state, j.attempts, j.next_attempt, j.last_status,
j.last_error, j.created, j.updated`

// scanJob reads jobColumns.
func scanJob(row pgx.Row) (*store.WebhookJob, error) {
	j := &store.WebhookJob{}
	var attempts, status int32
	if err := row.Scan(&j.ID, &j.Webhook, &j.EventSeq, &j.Login, &j.State, &attempts, &j.NextAttempt, &status,
		&j.LastError, &j.Created, &j.Updated); err != nil {
		return nil, err
	}
	j.Attempts, j.LastStatus = int(attempts), int(status)
	j.NextAttempt, j.Created, j.Updated = j.NextAttempt.UTC(), j.Created.UTC(), j.Updated.UTC()
	return j, nil
}

// collectJobs reads every row of rows.
func collectJobs(rows pgx.Rows) ([]*store.WebhookJob, error) {
	defer rows.Close()
	out := []*store.WebhookJob{}
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

// EnqueueWebhookJobs creates a queued job, due at now, for each of up to
// limit events after the webhook's cursor whose Type is in types and whose
// Login is in logins (empty = all), moves the cursor past them, and returns
// how many events it consumed, in one transaction. The cursor row is locked for the
// transaction, so concurrent callers for one webhook take turns; since
// Event.Seq is commit-ordered no event can appear behind the cursor later.
// Limit 0 or less means 1000.
func (db *DB) EnqueueWebhookJobs(ctx context.Context, webhook string, types, logins []string, limit int, now time.Time) (int, error) {
	if err := db.usable("enqueue webhook jobs"); err != nil {
		return 0, err
	}
	if limit <= 0 {
		limit = defaultEnqueueLimit
	}
	webhook = clean(webhook)
	var consumed int
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO webhook_cursors (webhook, after_seq) VALUES ($1, 0) ON CONFLICT (webhook) DO NOTHING`, webhook); err != nil {
			return err
		}
		var after int64
		if err := tx.QueryRow(ctx, `SELECT after_seq FROM webhook_cursors WHERE webhook = $1 FOR UPDATE`, webhook).Scan(&after); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `
WITH ev AS (
	SELECT seq, type, login FROM events WHERE seq > $2 ORDER BY seq LIMIT $3
), jobs AS (
	INSERT INTO webhook_jobs (webhook, event_seq, login, state, next_attempt, created, updated)
	SELECT $1, ev.seq, ev.login, 'queued', $5, $5, $5 FROM ev
	WHERE (cardinality($4::text[]) = 0 OR ev.type = ANY($4)) AND (cardinality($6::text[]) = 0 OR ev.login = ANY($6))
	ORDER BY ev.seq
	ON CONFLICT (webhook, event_seq) DO NOTHING
), cursor AS (
	UPDATE webhook_cursors SET after_seq = (SELECT max(seq) FROM ev)
	WHERE webhook = $1 AND EXISTS (SELECT 1 FROM ev)
)
SELECT count(*) FROM ev`, webhook, after, limit, cleanAll(types), now, cleanAll(logins)).Scan(&consumed)
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: enqueue jobs of webhook %s: %w", webhook, err)
	}
	return consumed, nil
}

// ClaimWebhookJobs leases up to limit due jobs (queued or deferred,
// NextAttempt <= now, not leased or lease expired) of webhook, or of every
// webhook when it is "", to owner until now+lease, oldest NextAttempt
// first, then by ID, skipping rows another claimer holds.
func (db *DB) ClaimWebhookJobs(ctx context.Context, webhook, owner string, now time.Time, limit int, lease time.Duration) ([]*store.WebhookJob, error) {
	if err := db.usable("claim webhook jobs"); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return []*store.WebhookJob{}, nil
	}
	// Two statements rather than "$5 = '' OR webhook = $5", so that each
	// has a plan that walks its own index in claim order.
	due := `SELECT id FROM webhook_jobs
	WHERE state IN ('queued', 'deferred') AND next_attempt <= $1 AND (lease_until IS NULL OR lease_until <= $1)`
	args := []any{now, limit, clean(owner), now.Add(lease)}
	if webhook != "" {
		due += ` AND webhook = $5`
		args = append(args, clean(webhook))
	}
	rows, err := db.pool.Query(ctx, `
WITH due AS (
	`+due+`
	ORDER BY next_attempt, id
	LIMIT $2
	FOR UPDATE SKIP LOCKED
)
UPDATE webhook_jobs j SET lease_owner = $3, lease_until = $4
FROM due WHERE j.id = due.id
RETURNING `+jobColumns, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: claim jobs of webhook %q: %w", webhook, err)
	}
	out, err := collectJobs(rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: claim jobs of webhook %q: %w", webhook, err)
	}
	slices.SortFunc(out, func(a, b *store.WebhookJob) int {
		if c := a.NextAttempt.Compare(b.NextAttempt); c != 0 {
			return c
		}
		return int(a.ID - b.ID)
	})
	return out, nil
}

// CompleteWebhookJob records an attempt of job id: its state becomes
// state (sent, deferred with NextAttempt next, or failed), Attempts counts
// up, the HTTP status and error are kept and the lease is released. It
// returns store.ErrLeaseLost if owner does not hold the lease and
// store.ErrNotFound if the job does not exist.
func (db *DB) CompleteWebhookJob(ctx context.Context, id int64, owner string, state string, status int, errText string, next time.Time) error {
	if err := db.usable("complete webhook job"); err != nil {
		return err
	}
	if state != jobSent && state != jobDeferred && state != jobFailed {
		return fmt.Errorf("postgres: complete webhook job %d: state %q is not sent, deferred or failed", id, state)
	}
	tag, err := db.pool.Exec(ctx, `
UPDATE webhook_jobs SET
	state = $3,
	attempts = attempts + 1,
	next_attempt = CASE WHEN $3 = 'deferred' THEN $4 ELSE next_attempt END,
	last_status = $5,
	last_error = $6,
	updated = $7,
	lease_owner = NULL,
	lease_until = NULL
WHERE id = $1 AND lease_owner = $2`, id, clean(owner), state, next, int32(status), clean(errText), time.Now())
	if err != nil {
		return fmt.Errorf("postgres: complete webhook job %d: %w", id, err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var exists bool
	if err := db.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM webhook_jobs WHERE id = $1)`, id).Scan(&exists); err != nil {
		return fmt.Errorf("postgres: complete webhook job %d: %w", id, err)
	}
	if !exists {
		return fmt.Errorf("postgres: complete webhook job %d: %w", id, store.ErrNotFound)
	}
	return fmt.Errorf("postgres: complete webhook job %d: %w", id, store.ErrLeaseLost)
}

// ReleaseWebhookJobs returns every job leased to owner to the queue
// unchanged.
func (db *DB) ReleaseWebhookJobs(ctx context.Context, owner string) error {
	if err := db.usable("release webhook jobs"); err != nil {
		return err
	}
	if _, err := db.pool.Exec(ctx, `UPDATE webhook_jobs SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1`, clean(owner)); err != nil {
		return fmt.Errorf("postgres: release webhook jobs of %s: %w", owner, err)
	}
	return nil
}

// WebhookJobs lists the jobs of one webhook newest first, only of logins in
// scope. Limit 0 or less means 100, and at most 1000 are returned.
func (db *DB) WebhookJobs(ctx context.Context, webhook string, scope store.Scope, limit int) ([]*store.WebhookJob, error) {
	if err := db.usable("webhook jobs"); err != nil {
		return nil, err
	}
	if !seesAnything(scope) {
		return []*store.WebhookJob{}, nil
	}
	limit = clampLimit(limit, defaultJobLimit, maxJobLimit)
	rows, err := db.pool.Query(ctx, `SELECT `+jobColumns+` FROM webhook_jobs j
WHERE j.webhook = $1 AND ($2 OR j.login = ANY($3)) ORDER BY j.id DESC LIMIT $4`,
		clean(webhook), scope.All, scopeLogins(scope), limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: jobs of webhook %s: %w", webhook, err)
	}
	out, err := collectJobs(rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: jobs of webhook %s: %w", webhook, err)
	}
	return slices.DeleteFunc(out, func(j *store.WebhookJob) bool { return !scope.Allows(j.Login) }), nil
}
