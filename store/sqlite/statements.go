package sqlite

import (
	"context"
	"database/sql"
)

// Statements the writer runs for the queue, the webhooks and the events,
// prepared once at Open (see writeStatements) because compiling SQL costs
// more than running these.
const (
	savepoint         = `SAVEPOINT op`
	rollbackSavepoint = `ROLLBACK TO op`
	releaseSavepoint  = `RELEASE op`

	selectMessageOfEvent = `SELECT seq, login FROM messages WHERE id = ?`

	selectDelivery = `SELECT ` + deliveryColumns + ` FROM deliveries WHERE id = ?`
	insertAttempt  = `INSERT INTO attempts (delivery_id, n, time, host, reply, duration) VALUES (?, ?, ?, ?, ?, ?)`
	// completeDelivery applies an outcome to a delivery its owner still
	// holds, releases the lease, and returns what the attempt and event
	// rows need (attempts is the new count); no row means the lease is not
	// the owner's (or there is no such delivery).
	completeDelivery = `UPDATE deliveries SET recipients = COALESCE(?, recipients), state = ?, attempts = attempts + 1,
next_attempt = CASE WHEN ? THEN ? ELSE next_attempt END, last_reply = ?, updated = ?, lease_owner = '', lease_until = 0
WHERE id = ? AND lease_owner = ? AND lease_owner != ''
RETURNING message_seq, message_id, login, attempts`
	// claimDeliveries leases the due deliveries in one statement and
	// returns them (in no particular order).
	claimDeliveries = `UPDATE deliveries SET lease_owner = ?, lease_until = ?
WHERE id IN (SELECT id FROM deliveries
	WHERE state IN ('queued', 'deferred') AND next_attempt <= ? AND (lease_owner = '' OR lease_until <= ?)
	ORDER BY next_attempt, id LIMIT ?)
RETURNING ` + deliveryColumns
	// claimDeliveriesByID is claimDeliveries for the ids of a JSON array,
	// found by primary key.
	claimDeliveriesByID = `UPDATE deliveries SET lease_owner = ?, lease_until = ?
WHERE id IN (SELECT value FROM json_each(?))
	AND state IN ('queued', 'deferred') AND next_attempt <= ? AND (lease_owner = '' OR lease_until <= ?)
RETURNING ` + deliveryColumns

	selectJob       = `SELECT ` + jobColumns + ` FROM webhook_jobs WHERE id = ?`
	selectCursor    = `SELECT last_seq FROM webhook_cursors WHERE webhook = ?`
	selectNewEvents = `SELECT seq, login, type FROM events WHERE seq > ? ORDER BY seq LIMIT ?`
	insertJob       = `INSERT INTO webhook_jobs (webhook, event_seq, login, state, next_attempt, created, updated)
VALUES (?, ?, ?, ?, ?, ?, ?)`
	upsertCursor = `INSERT INTO webhook_cursors (webhook, last_seq) VALUES (?, ?)
ON CONFLICT (webhook) DO UPDATE SET last_seq = excluded.last_seq`
	completeJob = `UPDATE webhook_jobs SET state = ?, attempts = attempts + 1, last_status = ?, last_error = ?, updated = ?,
lease_owner = '', lease_until = 0, next_attempt = CASE WHEN ? THEN ? ELSE next_attempt END WHERE id = ?`
)

// Capture statements of the writer.
const (
	selectInboxEntry = `SELECT i.seq, i.login FROM messages m JOIN inbox i ON i.inbox = ? AND i.seq = m.seq WHERE m.id = ?`
	deleteInboxEntry = `DELETE FROM inbox WHERE inbox = ? AND seq = ?`
	deleteOrphan     = `DELETE FROM messages WHERE seq = ? AND route = ? AND NOT EXISTS (SELECT 1 FROM inbox WHERE seq = ?)`
	setRead          = `UPDATE inbox SET read = ? WHERE inbox = ? AND seq = ?`
)

// Lease statements, one set per leased table.
func claimDue(table string) string {
	return `SELECT id FROM ` + table + `
WHERE state IN ('queued', 'deferred') AND next_attempt <= ? AND (lease_owner = '' OR lease_until <= ?)
ORDER BY next_attempt, id LIMIT ?`
}

// claimDueOf is claimDue for one webhook's jobs, served by the
// webhook_jobs_due_by_webhook index.
const claimDueOf = `SELECT id FROM webhook_jobs
WHERE webhook = ? AND state IN ('queued', 'deferred') AND next_attempt <= ? AND (lease_owner = '' OR lease_until <= ?)
ORDER BY next_attempt, id LIMIT ?`

func setLease(table string) string {
	return `UPDATE ` + table + ` SET lease_owner = ?, lease_until = ? WHERE id = ?`
}

func selectLease(table string) string {
	return `SELECT lease_owner FROM ` + table + ` WHERE id = ?`
}

// releaseLeases frees an owner's leases; the second condition lets SQLite
// use the partial index of leased rows (by_owner).
func releaseLeases(table string) string {
	return `UPDATE ` + table + ` SET lease_owner = '', lease_until = 0 WHERE lease_owner = ? AND lease_owner != ''`
}

// queueStatements are the statements of this file, for writeStatements.
func queueStatements() []string {
	out := []string{savepoint, rollbackSavepoint, releaseSavepoint, selectMessageOfEvent,
		selectDelivery, insertAttempt, completeDelivery, claimDeliveries, claimDeliveriesByID,
		selectJob, selectCursor, selectNewEvents, insertJob, upsertCursor, completeJob,
		selectInboxEntry, deleteInboxEntry, deleteOrphan, setRead, claimDueOf}
	for _, table := range []string{"deliveries", "webhook_jobs"} {
		out = append(out, claimDue(table), setLease(table), selectLease(table), releaseLeases(table))
	}
	return out
}

// txExec runs q in tx, with the statement prepared at Open when q is one of
// writeStatements.
func (db *DB) txExec(ctx context.Context, tx *sql.Tx, q string, args ...any) (sql.Result, error) {
	if st, ok := db.stmts[q]; ok {
		return tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return tx.ExecContext(ctx, q, args...)
}

// txQuery is txExec for a query.
func (db *DB) txQuery(ctx context.Context, tx *sql.Tx, q string, args ...any) (*sql.Rows, error) {
	if st, ok := db.stmts[q]; ok {
		return tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return tx.QueryContext(ctx, q, args...)
}

// txQueryRow is txExec for a query of one row.
func (db *DB) txQueryRow(ctx context.Context, tx *sql.Tx, q string, args ...any) *sql.Row {
	if st, ok := db.stmts[q]; ok {
		return tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return tx.QueryRowContext(ctx, q, args...)
}
