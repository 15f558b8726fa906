package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// stmts are the writer's statements, prepared once on its connection and
// reused by every batch.
type stmts struct {
	begin, commit, rollback        *sql.Stmt
	savepoint, release, rollbackTo *sql.Stmt

	findIdempotent *sql.Stmt
	insMessage     *sql.Stmt
	insDelivery    *sql.Stmt
	messageExists  *sql.Stmt
	deliveryStates *sql.Stmt
	siblingStates  *sql.Stmt
	setStatus      *sql.Stmt
	setSending     *sql.Stmt

	due          *sql.Stmt
	markSending  *sql.Stmt
	attemptsOf   *sql.Stmt
	deliveryHead *sql.Stmt
	settle       *sql.Stmt

	insAttempt *sql.Stmt
	endAttempt *sql.Stmt

	cancel       *sql.Stmt
	retryQueued  *sql.Stmt
	retryEnded   *sql.Stmt
	wake         *sql.Stmt
	receiptDeliv *sql.Stmt
	receiptRead  *sql.Stmt
	prune        *sql.Stmt
	putState     *sql.Stmt

	all []*sql.Stmt
}

func prepare(ctx context.Context, c *sql.Conn) (*stmts, error) {
	s := &stmts{}
	list := []struct {
		dst   **sql.Stmt
		query string
	}{
		{&s.begin, `BEGIN IMMEDIATE`},
		{&s.commit, `COMMIT`},
		{&s.rollback, `ROLLBACK`},
		{&s.savepoint, `SAVEPOINT op`},
		{&s.release, `RELEASE op`},
		{&s.rollbackTo, `ROLLBACK TO op`},

		{&s.findIdempotent, `SELECT id, request_hash FROM messages
			WHERE submitter = ? AND idempotency_key = ?`},
		{&s.insMessage, `INSERT INTO messages (id, kind, subject, text, priority, created_at, expires_at,
			submitter, idempotency_key, request_hash, conversation_id, status)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		{&s.insDelivery, `INSERT INTO deliveries (id, message_id, contact, route, pinned, state, channel,
			round, next_at, expires_at, updated_at, last_error)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		{&s.messageExists, `SELECT 1 FROM messages WHERE id = ?`},
		// A message with a delivery just claimed is sending, whatever its
		// other deliveries are (see relay.DeriveStatus).
		{&s.setSending, `UPDATE messages SET status = 'sending' WHERE id = ? AND status <> 'sending'`},
		{&s.deliveryStates, `SELECT message_id, state FROM deliveries WHERE message_id = ?`},
		{&s.siblingStates, `SELECT message_id, state FROM deliveries
			WHERE message_id = (SELECT message_id FROM deliveries WHERE id = ?)`},
		{&s.setStatus, `UPDATE messages SET status = ?1 WHERE id = ?2 AND status <> ?1`},

		// (state, next_at) index order breaks ties by rowid: no sort step.
		// The last columns tell whether the delivery has attempts to load
		// (most claimed deliveries are on their first try and have none),
		// and whether it is its message's only delivery.
		{&s.due, `SELECT ` + deliveryCols + `,
			EXISTS (SELECT 1 FROM attempts a WHERE a.delivery_id = d.id),
			NOT EXISTS (SELECT 1 FROM deliveries o WHERE o.message_id = d.message_id AND o.id <> d.id)
			FROM deliveries d JOIN messages m ON m.id = d.message_id
			WHERE d.state = 'queued' AND d.next_at <= ? ORDER BY d.next_at, d.rowid LIMIT ?`},
		{&s.markSending, `UPDATE deliveries SET state = 'sending', updated_at = ? WHERE id = ?`},
		{&s.attemptsOf, `SELECT ` + attemptCols + ` FROM attempts WHERE delivery_id = ? ORDER BY id`},
		{&s.deliveryHead, `SELECT message_id, state FROM deliveries WHERE id = ?`},
		{&s.settle, `UPDATE deliveries SET state = ?, channel = ?, round = ?, next_at = ?, last_error = ?,
			updated_at = ? WHERE id = ? AND state = 'sending'`},

		{&s.insAttempt, `INSERT INTO attempts (delivery_id, channel, at, outcome, error, upstream_id,
			delivered_at, read_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`},
		{&s.endAttempt, `UPDATE attempts SET outcome = ?, error = ?, upstream_id = coalesce(?, upstream_id)
			WHERE id = ?`},

		{&s.cancel, `UPDATE deliveries SET state = 'cancelled', updated_at = ?
			WHERE message_id = ? AND state IN ('queued', 'sending')`},
		{&s.retryQueued, `UPDATE deliveries SET next_at = ?1, updated_at = ?1
			WHERE message_id = ?2 AND state = 'queued'`},
		{&s.retryEnded, `UPDATE deliveries SET state = 'queued', round = 0, next_at = ?1, expires_at = ?2,
			updated_at = ?1, retried_at = ?1 WHERE message_id = ?3 AND state IN ('failed', 'expired')`},
		{&s.wake, `UPDATE deliveries SET next_at = ?1 WHERE state = 'queued' AND next_at > ?1`},
		{&s.receiptDeliv, `UPDATE attempts SET delivered_at = ?1
			WHERE channel = ?2 AND upstream_id = ?3 AND delivered_at = 0`},
		// A read receipt implies the message reached the device.
		{&s.receiptRead, `UPDATE attempts SET read_at = ?1,
			delivered_at = CASE WHEN delivered_at = 0 THEN ?1 ELSE delivered_at END
			WHERE channel = ?2 AND upstream_id = ?3 AND read_at = 0`},
		{&s.prune, `UPDATE messages SET idempotency_key = NULL
			WHERE idempotency_key IS NOT NULL AND created_at < ?`},
		{&s.putState, `INSERT INTO channel_state (channel, key, value) VALUES (?, ?, ?)
			ON CONFLICT (channel, key) DO UPDATE SET value = excluded.value`},
	}
	for _, q := range list {
		st, err := c.PrepareContext(ctx, q.query)
		if err != nil {
			s.close()
			return nil, fmt.Errorf("prepare %.40q: %w", q.query, err)
		}
		*q.dst = st
		s.all = append(s.all, st)
	}
	return s, nil
}

func (s *stmts) close() error {
	var errs []error
	for _, st := range s.all {
		errs = append(errs, st.Close())
	}
	return errors.Join(errs...)
}
