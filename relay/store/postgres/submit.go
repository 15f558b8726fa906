package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/relay-project/relay/relay"
)

// insertSQL stores a message and its deliveries in one statement (so a
// Submit outside a transaction is one round trip and one implicit
// transaction). A message whose submitter and idempotency key are taken
// inserts nothing, after waiting for the transaction that took them; the
// statement then returns 0.
const insertSQL = `WITH m AS (
	INSERT INTO messages (id, kind, subject, text, priority, created_at, expires_at, submitter,
		idempotency_key, request_hash, conversation_id, status)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
	ON CONFLICT (submitter, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
	RETURNING id
), d AS (
	INSERT INTO deliveries (id, message_id, contact, route, pinned, state, channel, round, next_at,
		expires_at, updated_at, last_error)
	SELECT u.id, m.id, u.contact, u.route::jsonb, u.pinned, u.state, u.channel, u.round, u.next_at,
		u.expires_at, u.updated_at, u.last_error
	FROM m, unnest($13::text[], $14::text[], $15::text[], $16::boolean[], $17::text[], $18::text[],
		$19::integer[], $20::timestamptz[], $21::timestamptz[], $22::timestamptz[], $23::text[])
		WITH ORDINALITY AS u(id, contact, route, pinned, state, channel, round, next_at, expires_at,
			updated_at, last_error, ord)
	ORDER BY u.ord
)
SELECT count(*) FROM m`

// normalize returns a copy of m with defaults filled in (kind message,
// delivery state queued, MessageID, the denormalised message fields) and
// the arguments of insertSQL.
func normalize(m *relay.Message) (*relay.Message, []any, error) {
	if m == nil || m.ID == "" {
		return nil, nil, errors.New("message without id")
	}
	in := *m
	if in.Kind == "" {
		in.Kind = relay.KindMessage
	}
	n := len(m.Deliveries)
	in.Deliveries = make([]*relay.Delivery, n)
	var (
		ids, contacts, routes, states, channels, lastErrs = make([]string, n), make([]string, n),
			make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		pinned                  = make([]bool, n)
		rounds                  = make([]int32, n)
		nexts, expires, updates = make([]time.Time, n), make([]time.Time, n), make([]time.Time, n)
		dstates                 = make([]relay.DeliveryState, n)
	)
	for i, d := range m.Deliveries {
		if d == nil || d.ID == "" {
			return nil, nil, fmt.Errorf("message %s: delivery %d without id", m.ID, i)
		}
		c := *d
		c.MessageID = in.ID
		if c.State == "" {
			c.State = relay.StateQueued
		}
		if c.UpdatedAt.IsZero() {
			c.UpdatedAt = in.CreatedAt
		}
		c.Kind, c.Subject, c.Text, c.Priority, c.CreatedAt = in.Kind, in.Subject, in.Text, in.Priority, in.CreatedAt
		c.Attempts = nil
		route := []byte("[]")
		if len(c.Route) > 0 {
			var err error
			if route, err = json.Marshal(c.Route); err != nil {
				return nil, nil, fmt.Errorf("message %s: route: %w", m.ID, err)
			}
		}
		in.Deliveries[i] = &c
		ids[i], contacts[i], routes[i], pinned[i], states[i], channels[i] = c.ID, c.Contact, string(route), c.Pinned,
			string(c.State), c.Channel
		rounds[i], nexts[i], expires[i], updates[i], lastErrs[i] = int32(c.Round), c.NextAt, c.ExpiresAt, c.UpdatedAt,
			c.LastError
		dstates[i] = c.State
	}
	args := []any{in.ID, string(in.Kind), in.Subject, in.Text, in.Priority, in.CreatedAt, in.ExpiresAt, in.Submitter,
		nullable(in.IdempotencyKey), in.RequestHash, in.ConversationID, string(relay.DeriveStatus(dstates)),
		ids, contacts, routes, pinned, states, channels, rounds, nexts, expires, updates, lastErrs}
	return &in, args, nil
}

// Submit stores m and its deliveries, or returns the message an earlier
// Submit stored under the same submitter and idempotency key. m is not
// modified: the returned message is a copy with defaults filled in.
func (s *Store) Submit(ctx context.Context, m *relay.Message) (*relay.Message, bool, error) {
	if err := s.alive(); err != nil {
		return nil, false, err
	}
	in, args, err := normalize(m)
	if err != nil {
		return nil, false, fmt.Errorf("postgres: submit: %w", err)
	}
	// A key pruned between the insert and the look-up frees it: try again.
	for try := 0; try < 3; try++ {
		var inserted int
		if err := s.pool.QueryRow(ctx, insertSQL, args...).Scan(&inserted); err != nil {
			return nil, false, fmt.Errorf("postgres: submit %s: %w", m.ID, err)
		}
		if inserted == 1 {
			return in, true, nil
		}
		var id, hash string
		err := s.pool.QueryRow(ctx, `SELECT id, request_hash FROM messages
			WHERE submitter = $1 AND idempotency_key = $2`, in.Submitter, in.IdempotencyKey).Scan(&id, &hash)
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, false, fmt.Errorf("postgres: submit %s: %w", m.ID, err)
		}
		if hash != in.RequestHash {
			return nil, false, fmt.Errorf("postgres: submit %s: %w", m.ID, relay.ErrIdempotencyReuse)
		}
		stored, err := s.Message(ctx, id)
		return stored, false, err
	}
	return nil, false, fmt.Errorf("postgres: submit %s: idempotency key kept changing hands", m.ID)
}

// insertMessage stores m inside a transaction (a conversation's forward or
// reply). Its idempotency key must be free.
func insertMessage(ctx context.Context, tx pgx.Tx, m *relay.Message) error {
	_, args, err := normalize(m)
	if err != nil {
		return err
	}
	var inserted int
	if err := tx.QueryRow(ctx, insertSQL, args...).Scan(&inserted); err != nil {
		return err
	}
	if inserted != 1 {
		return fmt.Errorf("message %s: %w", m.ID, relay.ErrIdempotencyReuse)
	}
	return nil
}

// deriveStatusSQL sets the cached status of the messages $1 from their
// deliveries; it is relay.DeriveStatus in SQL (TestDeriveStatusSQL checks
// the two agree).
const deriveStatusSQL = `UPDATE messages SET status = s.v FROM (
	SELECT message_id, CASE
		WHEN ended < n THEN CASE WHEN sending > 0 THEN 'sending' ELSE 'queued' END
		WHEN delivered = n THEN 'delivered'
		WHEN delivered > 0 THEN 'partial'
		WHEN cancelled > greatest(expired, failed) THEN 'cancelled'
		WHEN failed > expired THEN 'failed'
		ELSE 'expired'
	END AS v
	FROM (SELECT message_id, count(*) AS n,
		count(*) FILTER (WHERE state IN ('delivered', 'expired', 'failed', 'cancelled')) AS ended,
		count(*) FILTER (WHERE state = 'sending') AS sending,
		count(*) FILTER (WHERE state = 'delivered') AS delivered,
		count(*) FILTER (WHERE state = 'expired') AS expired,
		count(*) FILTER (WHERE state = 'failed') AS failed,
		count(*) FILTER (WHERE state = 'cancelled') AS cancelled
		FROM deliveries WHERE message_id = ANY($1) GROUP BY message_id) AS c
) AS s WHERE messages.id = s.message_id AND messages.status <> s.v`

// lockMessagesSQL locks messages in ID order. Every transaction that changes
// deliveries' states takes these locks after its delivery updates and
// before re-deriving the status; the derive statement then starts after
// every earlier holder committed, so it sees their delivery changes too and
// the last writer's status is right. (In one statement the snapshot would
// predate the wait.) ID order keeps two such transactions from deadlocking.
const lockMessagesSQL = `SELECT id FROM messages WHERE id = ANY($1) ORDER BY id FOR UPDATE`

// refreshStatus re-derives the cached status of messages ids.
func refreshStatus(ctx context.Context, tx pgx.Tx, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, lockMessagesSQL, ids); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, deriveStatusSQL, ids)
	return err
}
