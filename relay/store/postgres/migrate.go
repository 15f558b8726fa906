package postgres

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrationLock is the pg_advisory_lock key that serialises schema
// migrations: instances starting together migrate one after the other,
// and the later ones find nothing left to do. ("relaymig" in ASCII.)
const migrationLock int64 = 0x72656c61796d6967

// A migration moves the schema from version i to i+1 (its index plus one).
// Each runs in its own transaction together with its schema_migrations
// row, so a crash leaves the database at either version, never between.
// Append only: never edit or reorder a released step.
type migration struct {
	name  string
	stmts []string
}

// Times are timestamptz. The ones a caller always gives are NOT NULL (Go's
// zero time is stored as 0001-01-01 and reads back as zero); the ones that
// record an event that may not have happened yet are NULL until it does.
var migrations = []migration{
	{"outbox tables", []string{
		`CREATE TABLE messages (
			id              text PRIMARY KEY,
			kind            text NOT NULL,
			subject         text NOT NULL,
			text            text NOT NULL,
			priority        text NOT NULL,
			created_at      timestamptz NOT NULL,
			expires_at      timestamptz NOT NULL,
			submitter       text NOT NULL,
			idempotency_key text,
			request_hash    text NOT NULL,
			conversation_id text NOT NULL,
			-- relay.DeriveStatus of the deliveries, kept by every write
			-- that changes a delivery's state, so Messages filters by index.
			status          text NOT NULL
		)`,
		// NULL keys (none given, or pruned) stay out of the index.
		`CREATE UNIQUE INDEX messages_idempotency ON messages (submitter, idempotency_key)
			WHERE idempotency_key IS NOT NULL`,
		`CREATE INDEX messages_submitter ON messages (submitter, id)`,
		`CREATE INDEX messages_status ON messages (status, id)`,
		`CREATE TABLE deliveries (
			id            text PRIMARY KEY,
			seq           bigint GENERATED ALWAYS AS IDENTITY, -- submission order
			message_id    text NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
			contact       text NOT NULL,
			route         jsonb NOT NULL,
			pinned        boolean NOT NULL,
			state         text NOT NULL CHECK (state IN
				('queued', 'sending', 'delivered', 'expired', 'failed', 'cancelled')),
			channel       text NOT NULL,
			round         integer NOT NULL,
			next_at       timestamptz NOT NULL,
			expires_at    timestamptz NOT NULL,
			updated_at    timestamptz NOT NULL,
			last_error    text NOT NULL,
			retried_at    timestamptz,
			-- The instance that holds a sending delivery, and until when.
			claimed_by    text,
			claimed_until timestamptz
		)`,
		`CREATE INDEX deliveries_message ON deliveries (message_id, seq)`,
		// Claim reads this index in order; only queued rows are in it.
		`CREATE INDEX deliveries_due ON deliveries (next_at, seq) WHERE state = 'queued'`,
		`CREATE INDEX deliveries_leases ON deliveries (claimed_until) WHERE state = 'sending'`,
		`CREATE TABLE attempts (
			id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
			delivery_id  text NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
			channel      text NOT NULL,
			at           timestamptz NOT NULL,
			outcome      text NOT NULL, -- '' while in flight
			error        text NOT NULL,
			upstream_id  text,
			delivered_at timestamptz,
			read_at      timestamptz
		)`,
		`CREATE INDEX attempts_delivery ON attempts (delivery_id, id)`,
		`CREATE INDEX attempts_upstream ON attempts (channel, upstream_id) WHERE upstream_id IS NOT NULL`,
		`CREATE TABLE channel_state (
			channel text NOT NULL,
			key     text NOT NULL,
			value   bytea NOT NULL,
			PRIMARY KEY (channel, key)
		)`,
	}},
	{"customer conversations", conversationSchema},
}

// migrate brings the schema up to the newest version. It holds the
// advisory lock on one connection for the whole run; the lock goes with the
// session if the connection breaks.
func migrate(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLock); err != nil {
		return fmt.Errorf("lock schema: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrationLock)

	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	var version int
	if err := conn.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&version); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if version > len(migrations) {
		return fmt.Errorf("database schema version %d is newer than this relay knows (%d)", version, len(migrations))
	}
	for v := version; v < len(migrations); v++ {
		m := migrations[v]
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			for _, stmt := range m.stmts {
				if _, err := tx.Exec(ctx, stmt); err != nil {
					return err
				}
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, v+1, m.name)
			return err
		})
		if err != nil {
			return fmt.Errorf("migration %d (%s): %w", v+1, m.name, err)
		}
		log.Info("store schema migrated", "version", v+1, "step", m.name)
	}
	return nil
}
