package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/relay-project/relay/relay"
)

const (
	messageCols = `id, kind, subject, text, priority, created_at, expires_at, submitter,
		coalesce(idempotency_key, ''), request_hash, conversation_id`
	deliveryCols = `d.id, d.message_id, d.contact, d.route, d.pinned, d.state, d.channel, d.round,
		d.next_at, d.expires_at, d.updated_at, d.last_error, d.retried_at,
		m.kind, m.subject, m.text, m.priority, m.created_at`
	attemptCols = `id, delivery_id, channel, at, outcome, error, coalesce(upstream_id, ''),
		delivered_at, read_at`
)

// maxPage bounds a Messages page.
const maxPage = 1000

// utc normalises a scanned time: pgx returns local times.
func utc(t time.Time) time.Time { return t.UTC() }

// opt reads a nullable time: NULL is the zero time.
func opt(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// nullTime writes the zero time as NULL.
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// nullable stores "" as NULL, so empty keys and upstream ids never match.
func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func scanMessage(r pgx.Row) (*relay.Message, error) {
	var m relay.Message
	err := r.Scan(&m.ID, &m.Kind, &m.Subject, &m.Text, &m.Priority, &m.CreatedAt, &m.ExpiresAt, &m.Submitter,
		&m.IdempotencyKey, &m.RequestHash, &m.ConversationID)
	m.CreatedAt, m.ExpiresAt = utc(m.CreatedAt), utc(m.ExpiresAt)
	return &m, err
}

// scanDelivery scans deliveryCols, then extra columns into extra.
func scanDelivery(r pgx.Row, extra ...any) (*relay.Delivery, error) {
	var d relay.Delivery
	var retried *time.Time
	dest := append([]any{&d.ID, &d.MessageID, &d.Contact, &d.Route, &d.Pinned, &d.State, &d.Channel, &d.Round,
		&d.NextAt, &d.ExpiresAt, &d.UpdatedAt, &d.LastError, &retried,
		&d.Kind, &d.Subject, &d.Text, &d.Priority, &d.CreatedAt}, extra...)
	if err := r.Scan(dest...); err != nil {
		return nil, err
	}
	d.NextAt, d.ExpiresAt, d.UpdatedAt, d.CreatedAt = utc(d.NextAt), utc(d.ExpiresAt), utc(d.UpdatedAt), utc(d.CreatedAt)
	d.RetriedAt = opt(retried)
	return &d, nil
}

func scanAttempt(r pgx.Row) (relay.Attempt, error) {
	var a relay.Attempt
	var delivered, read *time.Time
	err := r.Scan(&a.ID, &a.DeliveryID, &a.Channel, &a.At, &a.Outcome, &a.Error, &a.UpstreamID, &delivered, &read)
	a.At, a.DeliveredAt, a.ReadAt = utc(a.At), opt(delivered), opt(read)
	return a, err
}

// Message returns one message with its deliveries and attempts.
func (s *Store) Message(ctx context.Context, id string) (*relay.Message, error) {
	var m *relay.Message
	err := s.read(ctx, func(tx pgx.Tx) error {
		var err error
		m, err = scanMessage(tx.QueryRow(ctx, `SELECT `+messageCols+` FROM messages WHERE id = $1`, id))
		if err != nil {
			return notFound(err, "message", id)
		}
		return loadDeliveries(ctx, tx, []*relay.Message{m})
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return m, nil
}

// Messages returns a page of messages, newest (highest ID) first. IDs are
// ULIDs, so ID order is creation order. Limit defaults to 50 and is capped
// at maxPage.
func (s *Store) Messages(ctx context.Context, f relay.MessageFilter) ([]*relay.Message, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, maxPage)
	var where []string
	var args []any
	add := func(cond string, arg any) {
		args = append(args, arg)
		where = append(where, cond+" $"+strconv.Itoa(len(args)))
	}
	if f.Status != "" {
		add("status =", string(f.Status))
	}
	if f.Submitter != "" {
		add("submitter =", f.Submitter)
	}
	if f.Before != "" {
		add("id <", f.Before)
	}
	query := `SELECT ` + messageCols + ` FROM messages`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	args = append(args, limit)
	query += ` ORDER BY id DESC LIMIT $` + strconv.Itoa(len(args))
	var out []*relay.Message
	err := s.read(ctx, func(tx pgx.Tx) error {
		out = nil
		rows, err := tx.Query(ctx, query, args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			m, err := scanMessage(rows)
			if err != nil {
				rows.Close()
				return err
			}
			out = append(out, m)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		return loadDeliveries(ctx, tx, out)
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: messages: %w", err)
	}
	return out, nil
}

// loadDeliveries fills in the deliveries (in submission order) and their
// attempts (in start order) of msgs, with two queries for the whole page.
func loadDeliveries(ctx context.Context, q querier, msgs []*relay.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	byID := make(map[string]*relay.Message, len(msgs))
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		byID[m.ID], ids[i] = m, m.ID
	}
	rows, err := q.Query(ctx, `SELECT `+deliveryCols+` FROM deliveries d JOIN messages m ON m.id = d.message_id
		WHERE d.message_id = ANY($1) ORDER BY d.seq`, ids)
	if err != nil {
		return err
	}
	dels := map[string]*relay.Delivery{}
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			rows.Close()
			return err
		}
		m := byID[d.MessageID]
		m.Deliveries = append(m.Deliveries, d)
		dels[d.ID] = d
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	rows, err = q.Query(ctx, `SELECT `+attemptCols+` FROM attempts WHERE delivery_id IN
		(SELECT id FROM deliveries WHERE message_id = ANY($1)) ORDER BY id`, ids)
	if err != nil {
		return err
	}
	return addAttempts(rows, dels)
}

// addAttempts appends the attempts in rows to their deliveries in dels.
func addAttempts(rows pgx.Rows, dels map[string]*relay.Delivery) error {
	defer rows.Close()
	for rows.Next() {
		a, err := scanAttempt(rows)
		if err != nil {
			return err
		}
		if d := dels[a.DeliveryID]; d != nil {
			d.Attempts = append(d.Attempts, a)
		}
	}
	return rows.Err()
}

var allStates = []relay.DeliveryState{relay.StateQueued, relay.StateSending, relay.StateDelivered,
	relay.StateExpired, relay.StateFailed, relay.StateCancelled}

// Counts returns the number of deliveries in each state; every state is
// present, zero when none.
func (s *Store) Counts(ctx context.Context) (map[relay.DeliveryState]int, error) {
	if err := s.alive(); err != nil {
		return nil, err
	}
	out := map[relay.DeliveryState]int{}
	for _, st := range allStates {
		out[st] = 0
	}
	rows, err := s.pool.Query(ctx, `SELECT state, count(*) FROM deliveries GROUP BY state`)
	if err != nil {
		return nil, fmt.Errorf("postgres: counts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, fmt.Errorf("postgres: counts: %w", err)
		}
		out[relay.DeliveryState(st)] = n
	}
	return out, rows.Err()
}

// ChannelState returns the durable key/value space of one channel.
func (s *Store) ChannelState(channel string) relay.StateStore {
	return channelState{s: s, channel: channel}
}

type channelState struct {
	s       *Store
	channel string
}

// Get returns the value stored under key for this channel.
func (c channelState) Get(ctx context.Context, key string) ([]byte, bool, error) {
	if err := c.s.alive(); err != nil {
		return nil, false, err
	}
	var v []byte
	err := c.s.pool.QueryRow(ctx, `SELECT value FROM channel_state WHERE channel = $1 AND key = $2`,
		c.channel, key).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("postgres: channel state %s: %w", c.channel, err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, true, nil
}

// Put stores value under key for this channel, replacing any old value.
func (c channelState) Put(ctx context.Context, key string, value []byte) error {
	if err := c.s.alive(); err != nil {
		return err
	}
	if value == nil {
		value = []byte{}
	}
	_, err := c.s.pool.Exec(ctx, `INSERT INTO channel_state (channel, key, value) VALUES ($1, $2, $3)
		ON CONFLICT (channel, key) DO UPDATE SET value = excluded.value`, c.channel, key, value)
	if err != nil {
		return fmt.Errorf("postgres: channel state %s: %w", c.channel, err)
	}
	return nil
}
