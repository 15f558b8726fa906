package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/relay-project/relay/relay"
)

// querier is a read transaction, or the writer's connection inside its
// transaction.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

type scanner interface {
	Scan(dest ...any) error
}

const (
	messageCols = `id, kind, subject, text, priority, created_at, expires_at, submitter,
		coalesce(idempotency_key, ''), request_hash, conversation_id`
	deliveryCols = `d.id, d.message_id, d.contact, d.route, d.pinned, d.state, d.channel, d.round,
		d.next_at, d.expires_at, d.updated_at, d.last_error, d.retried_at,
		m.kind, m.subject, m.text, m.priority, m.created_at`
	attemptCols = `id, delivery_id, channel, at, outcome, error, coalesce(upstream_id, ''),
		delivered_at, read_at`
)

// ms stores times as unix milliseconds; the zero time is 0.
func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

// nullable stores "" as NULL, so empty keys and upstream ids never match.
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func encodeRoute(r []relay.Hop) (string, error) {
	if len(r) == 0 {
		return "[]", nil
	}
	b, err := json.Marshal(r)
	return string(b), err
}

func scanMessage(r scanner) (*relay.Message, error) {
	var m relay.Message
	var created, expires int64
	err := r.Scan(&m.ID, &m.Kind, &m.Subject, &m.Text, &m.Priority, &created, &expires, &m.Submitter,
		&m.IdempotencyKey, &m.RequestHash, &m.ConversationID)
	if err != nil {
		return nil, err
	}
	m.CreatedAt, m.ExpiresAt = fromMS(created), fromMS(expires)
	return &m, nil
}

// scanDelivery scans deliveryCols, then extra columns into extra.
func scanDelivery(r scanner, extra ...any) (*relay.Delivery, error) {
	var d relay.Delivery
	var route string
	var next, expires, updated, created, retried int64
	dest := append([]any{&d.ID, &d.MessageID, &d.Contact, &route, &d.Pinned, &d.State, &d.Channel, &d.Round,
		&next, &expires, &updated, &d.LastError, &retried,
		&d.Kind, &d.Subject, &d.Text, &d.Priority, &created}, extra...)
	if err := r.Scan(dest...); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(route), &d.Route); err != nil {
		return nil, fmt.Errorf("delivery %s: route: %w", d.ID, err)
	}
	d.NextAt, d.ExpiresAt, d.UpdatedAt, d.CreatedAt = fromMS(next), fromMS(expires), fromMS(updated), fromMS(created)
	d.RetriedAt = fromMS(retried)
	return &d, nil
}

func scanAttempt(r scanner) (relay.Attempt, error) {
	var a relay.Attempt
	var at, delivered, read int64
	err := r.Scan(&a.ID, &a.DeliveryID, &a.Channel, &at, &a.Outcome, &a.Error, &a.UpstreamID, &delivered, &read)
	a.At, a.DeliveredAt, a.ReadAt = fromMS(at), fromMS(delivered), fromMS(read)
	return a, err
}

// loadMessage reads one message with its deliveries and attempts.
func loadMessage(ctx context.Context, q querier, id string) (*relay.Message, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+messageCols+` FROM messages WHERE id = ?`, id)
	if err != nil {
		return nil, err
	}
	var m *relay.Message
	if rows.Next() {
		m, err = scanMessage(rows)
	}
	rows.Close()
	if err == nil {
		err = rows.Err()
	}
	if err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("message %s: %w", id, relay.ErrNotFound)
	}
	return m, loadDeliveries(ctx, q, []*relay.Message{m})
}

// loadDeliveries fills in the deliveries (in submission order) and their
// attempts (in start order) of msgs, with two queries for the whole page.
func loadDeliveries(ctx context.Context, q querier, msgs []*relay.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	byID := make(map[string]*relay.Message, len(msgs))
	args := make([]any, len(msgs))
	for i, m := range msgs {
		byID[m.ID] = m
		args[i] = m.ID
	}
	in := "(?" + strings.Repeat(",?", len(msgs)-1) + ")"
	rows, err := q.QueryContext(ctx, `SELECT `+deliveryCols+` FROM deliveries d
		JOIN messages m ON m.id = d.message_id WHERE d.message_id IN `+in+` ORDER BY d.rowid`, args...)
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
	rows, err = q.QueryContext(ctx, `SELECT `+attemptCols+` FROM attempts WHERE delivery_id IN
		(SELECT id FROM deliveries WHERE message_id IN `+in+`) ORDER BY id`, args...)
	if err != nil {
		return err
	}
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

// notFound turns sql.ErrNoRows into relay.ErrNotFound naming what is missing.
func notFound(err error, what, id string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s %s: %w", what, id, relay.ErrNotFound)
	}
	return err
}
