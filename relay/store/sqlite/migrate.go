package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"

	"github.com/relay-project/relay/relay"
)

// A migration moves the schema from version i to i+1 (its index plus one).
// Each runs in its own transaction together with the PRAGMA user_version
// bump, so a crash leaves the database at either version, never between.
// Append only: never edit or reorder a released step.
type migration struct {
	name string
	up   func(ctx context.Context, tx *sql.Tx) error
}

var migrations = []migration{
	{"outbox tables", execAll(
		`CREATE TABLE messages (
			id              TEXT PRIMARY KEY,
			kind            TEXT NOT NULL,
			subject         TEXT NOT NULL,
			text            TEXT NOT NULL,
			priority        TEXT NOT NULL,
			created_at      INTEGER NOT NULL,
			expires_at      INTEGER NOT NULL,
			submitter       TEXT NOT NULL,
			idempotency_key TEXT,
			request_hash    TEXT NOT NULL,
			conversation_id TEXT NOT NULL
		)`,
		// NULL keys (none given, or pruned) stay out of the index.
		`CREATE UNIQUE INDEX messages_idempotency ON messages(submitter, idempotency_key)
			WHERE idempotency_key IS NOT NULL`,
		`CREATE INDEX messages_submitter ON messages(submitter, id)`,
		`CREATE TABLE deliveries (
			id         TEXT PRIMARY KEY,
			message_id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
			contact    TEXT NOT NULL,
			route      TEXT NOT NULL,
			pinned     INTEGER NOT NULL,
			state      TEXT NOT NULL,
			channel    TEXT NOT NULL,
			round      INTEGER NOT NULL,
			next_at    INTEGER NOT NULL,
			expires_at INTEGER NOT NULL,
			updated_at INTEGER NOT NULL,
			last_error TEXT NOT NULL
		)`,
		`CREATE INDEX deliveries_message ON deliveries(message_id)`,
		`CREATE INDEX deliveries_due ON deliveries(state, next_at)`,
		`CREATE TABLE attempts (
			id           INTEGER PRIMARY KEY,
			delivery_id  TEXT NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
			channel      TEXT NOT NULL,
			at           INTEGER NOT NULL,
			outcome      TEXT NOT NULL,
			error        TEXT NOT NULL,
			upstream_id  TEXT,
			delivered_at INTEGER NOT NULL DEFAULT 0,
			read_at      INTEGER NOT NULL DEFAULT 0
		)`,
		`CREATE INDEX attempts_delivery ON attempts(delivery_id)`,
		`CREATE INDEX attempts_upstream ON attempts(channel, upstream_id) WHERE upstream_id IS NOT NULL`,
		// Only in-flight attempts are in it, so Recover finds them without a scan.
		`CREATE INDEX attempts_unfinished ON attempts(delivery_id) WHERE outcome = ''`,
		`CREATE TABLE channel_state (
			channel TEXT NOT NULL,
			key     TEXT NOT NULL,
			value   BLOB NOT NULL,
			PRIMARY KEY (channel, key)
		) WITHOUT ROWID`,
	)},
	{"cached message status", addMessageStatus},
	{"operator retry marker", execAll(
		// retried_at: attempts before an operator's retry are history; the
		// dispatcher does not hold their refusals against the new try.
		`ALTER TABLE deliveries ADD COLUMN retried_at INTEGER NOT NULL DEFAULT 0`,
	)},
	{"customer conversations", execAll(conversationSchema...)},
	// Every submit, claim and settle moved the message in messages_status: five
	// B-tree writes per message on the single writer. Messages finds queued
	// and sending ones through deliveries_due (such a message has a delivery
	// in that state) and only ended messages need this index, which a
	// message enters once, when it ends.
	{"index ended messages only", execAll(
		`DROP INDEX messages_status`,
		`CREATE INDEX messages_ended ON messages(status, id) WHERE status NOT IN ('queued', 'sending')`,
	)},
	// messages_submitter cost every submit a B-tree insert for one reader:
	// a send token listing its own messages. Messages now walks messages
	// newest first and filters on submitter, which reads ~1 µs per message
	// passed over: free when the token sent most messages, ~0.2 s over
	// 200,000 messages for a token that sent almost none.
	{"drop the submitter index", execAll(`DROP INDEX messages_submitter`)},
}

// addMessageStatus keeps each message's derived status in a column, so that
// Messages can filter by status through an index instead of deriving it for
// every message. Existing messages get theirs from their deliveries.
func addMessageStatus(ctx context.Context, tx *sql.Tx) error {
	if err := execAll(
		`ALTER TABLE messages ADD COLUMN status TEXT NOT NULL DEFAULT 'queued'`,
		`CREATE INDEX messages_status ON messages(status, id)`,
	)(ctx, tx); err != nil {
		return err
	}
	rows, err := tx.QueryContext(ctx, `SELECT message_id, state FROM deliveries ORDER BY message_id`)
	if err != nil {
		return err
	}
	statuses := map[string]relay.MessageStatus{}
	var cur string
	var states []relay.DeliveryState
	flush := func() {
		if cur != "" {
			statuses[cur] = relay.DeriveStatus(states)
		}
	}
	for rows.Next() {
		var id, state string
		if err := rows.Scan(&id, &state); err != nil {
			rows.Close()
			return err
		}
		if id != cur {
			flush()
			cur, states = id, states[:0]
		}
		states = append(states, relay.DeliveryState(state))
	}
	flush()
	if err := rows.Close(); err != nil {
		return err
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for id, st := range statuses {
		if _, err := tx.ExecContext(ctx, `UPDATE messages SET status = ? WHERE id = ?`, string(st), id); err != nil {
			return err
		}
	}
	return nil
}

func execAll(stmts ...string) func(context.Context, *sql.Tx) error {
	return func(ctx context.Context, tx *sql.Tx) error {
		for _, s := range stmts {
			if _, err := tx.ExecContext(ctx, s); err != nil {
				return err
			}
		}
		return nil
	}
}

// migrate brings db up to version target, one transaction per step.
func migrate(ctx context.Context, db *sql.DB, target int, log *slog.Logger) error {
	var version int
	if err := db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if version > len(migrations) {
		return fmt.Errorf("database schema version %d is newer than this relay knows (%d)", version, len(migrations))
	}
	for v := version; v < target; v++ {
		m := migrations[v]
		tx, err := db.BeginTx(ctx, nil) // BEGIN IMMEDIATE through _txlock
		if err != nil {
			return fmt.Errorf("migration %d (%s): %w", v+1, m.name, err)
		}
		err = m.up(ctx, tx)
		if err == nil {
			// PRAGMA takes no parameters; v+1 is our own integer.
			_, err = tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, v+1))
		}
		if err == nil {
			err = tx.Commit()
		} else {
			tx.Rollback()
		}
		if err != nil {
			return fmt.Errorf("migration %d (%s): %w", v+1, m.name, err)
		}
		log.Info("store schema migrated", "version", v+1, "step", m.name)
	}
	return nil
}
