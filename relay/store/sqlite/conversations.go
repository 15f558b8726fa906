package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/relay-project/relay/relay"
)

var _ relay.ConversationStore = (*Store)(nil)

// conversationSchema is the "customer conversations" migration step.
var conversationSchema = []string{
	// seq is the rowid: the tag is made from it, so it is never reused.
	`CREATE TABLE conversations (
		seq            INTEGER PRIMARY KEY,
		id             TEXT NOT NULL UNIQUE,
		tag            TEXT NOT NULL UNIQUE,
		channel        TEXT NOT NULL,
		sender_id      TEXT NOT NULL,
		sender_name    TEXT NOT NULL,
		created_at     INTEGER NOT NULL,
		last_at        INTEGER NOT NULL,
		last_text      TEXT NOT NULL,
		last_direction TEXT NOT NULL,
		unanswered     INTEGER NOT NULL,
		auto_reply_at  INTEGER NOT NULL,
		UNIQUE (channel, sender_id)
	)`,
	`CREATE INDEX conversations_recent ON conversations(last_at, seq)`,
	`CREATE TABLE conversation_messages (
		id              INTEGER PRIMARY KEY,
		conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
		direction       TEXT NOT NULL,
		channel         TEXT NOT NULL,
		upstream_id     TEXT,
		text            TEXT NOT NULL,
		at              INTEGER NOT NULL,
		held            TEXT NOT NULL,
		auto            INTEGER NOT NULL,
		message_id      TEXT NOT NULL
	)`,
	// An upstream's redelivery (a webhook retried, an update fetched
	// again) finds its first copy here.
	`CREATE UNIQUE INDEX conversation_messages_upstream ON conversation_messages(channel, upstream_id)
		WHERE upstream_id IS NOT NULL`,
	`CREATE INDEX conversation_messages_conv ON conversation_messages(conversation_id, direction, at)`,
	`CREATE INDEX messages_conversation ON messages(conversation_id) WHERE conversation_id <> ''`,
}

const conversationCols = `seq, id, tag, channel, sender_id, sender_name, created_at, last_at, last_text,
	last_direction, unanswered, auto_reply_at`

func scanConversation(r scanner) (*relay.Conversation, error) {
	var c relay.Conversation
	var created, last, auto int64
	err := r.Scan(&c.Seq, &c.ID, &c.Tag, &c.Channel, &c.SenderID, &c.SenderName, &created, &last, &c.LastText,
		&c.LastDirection, &c.Unanswered, &auto)
	c.CreatedAt, c.LastAt, c.AutoReplyAt = fromMS(created), fromMS(last), fromMS(auto)
	return &c, err
}

type rowQuerier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func conversationWhere(ctx context.Context, q rowQuerier, where string, args ...any) (*relay.Conversation, error) {
	c, err := scanConversation(q.QueryRowContext(ctx, `SELECT `+conversationCols+` FROM conversations WHERE `+where, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, relay.ErrNotFound
	}
	return c, err
}

// OpenConversation finds or creates the conversation of c.Channel and
// c.SenderID. Creation is serialised by the writer, so seq is max+1.
func (s *Store) OpenConversation(ctx context.Context, c relay.Conversation) (*relay.Conversation, error) {
	if c.ID == "" || c.Channel == "" || c.SenderID == "" {
		return nil, errors.New("sqlite: open conversation: id, channel and sender are required")
	}
	var out *relay.Conversation
	err := s.w.do(ctx, func(t *wtx) error {
		bg := context.Background()
		found, err := conversationWhere(bg, t.conn, `channel = ? AND sender_id = ?`, c.Channel, c.SenderID)
		if err == nil {
			if c.SenderName != "" && c.SenderName != found.SenderName {
				if _, err := t.conn.ExecContext(bg, `UPDATE conversations SET sender_name = ? WHERE seq = ?`,
					c.SenderName, found.Seq); err != nil {
					return err
				}
				found.SenderName = c.SenderName
			}
			out = found
			return nil
		}
		if !errors.Is(err, relay.ErrNotFound) {
			return err
		}
		n := c
		if err := t.conn.QueryRowContext(bg, `SELECT coalesce(max(seq), 0) + 1 FROM conversations`).Scan(&n.Seq); err != nil {
			return err
		}
		n.Tag = relay.ConversationTag(n.Seq)
		if n.LastAt.IsZero() {
			n.LastAt = n.CreatedAt
		}
		_, err = t.conn.ExecContext(bg, `INSERT INTO conversations (`+conversationCols+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, n.Seq, n.ID, n.Tag, n.Channel, n.SenderID, n.SenderName,
			ms(n.CreatedAt), ms(n.LastAt), n.LastText, n.LastDirection, n.Unanswered, ms(n.AutoReplyAt))
		out = &n
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: open conversation: %w", err)
	}
	return out, nil
}

// Record stores a conversation message with the relay messages it causes,
// in one transaction.
func (s *Store) Record(ctx context.Context, e relay.ConversationEntry) (relay.Recorded, error) {
	var out relay.Recorded
	err := s.w.do(ctx, func(t *wtx) error {
		bg := context.Background()
		out = relay.Recorded{Message: e.Message}
		m := &out.Message
		if m.UpstreamID != "" {
			var one int
			err := t.conn.QueryRowContext(bg, `SELECT 1 FROM conversation_messages WHERE channel = ? AND upstream_id = ?`,
				m.Channel, m.UpstreamID).Scan(&one)
			if err == nil {
				out.Duplicate = true
				return nil
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		}
		conv, err := conversationWhere(bg, t.conn, `id = ?`, m.ConversationID)
		if err != nil {
			return fmt.Errorf("conversation %s: %w", m.ConversationID, err)
		}
		if e.Submit != nil {
			if err := t.insertMessage(e.Submit); err != nil {
				return err
			}
			m.MessageID = e.Submit.ID
		}
		if m.ID, err = t.insertConversationMessage(m); err != nil {
			return err
		}
		unanswered := conv.Unanswered + 1
		if m.Direction == relay.DirectionOut {
			unanswered = 0
		}
		if !m.Auto {
			if _, err := t.conn.ExecContext(bg, `UPDATE conversations SET last_at = ?, last_text = ?,
				last_direction = ?, unanswered = ? WHERE seq = ?`, ms(m.At), m.Text, m.Direction, unanswered, conv.Seq); err != nil {
				return err
			}
		}
		if e.AutoReply == nil || (!conv.AutoReplyAt.IsZero() && e.Now.Sub(conv.AutoReplyAt) < e.AutoReplyEvery) {
			return nil
		}
		if err := t.insertMessage(e.AutoReply); err != nil {
			return err
		}
		auto := relay.ConversationMessage{ConversationID: conv.ID, Direction: relay.DirectionOut, Text: e.AutoReply.Text,
			At: e.Now, Auto: true, MessageID: e.AutoReply.ID}
		if _, err := t.insertConversationMessage(&auto); err != nil {
			return err
		}
		_, err = t.conn.ExecContext(bg, `UPDATE conversations SET auto_reply_at = ? WHERE seq = ?`, ms(e.Now), conv.Seq)
		out.AutoReplied = err == nil
		return err
	})
	if err != nil {
		return relay.Recorded{}, fmt.Errorf("sqlite: record conversation message: %w", err)
	}
	return out, nil
}

func (t *wtx) insertConversationMessage(m *relay.ConversationMessage) (int64, error) {
	res, err := t.conn.ExecContext(context.Background(), `INSERT INTO conversation_messages (conversation_id, direction,
		channel, upstream_id, text, at, held, auto, message_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		m.ConversationID, m.Direction, m.Channel, nullable(m.UpstreamID), m.Text, ms(m.At), m.Held, m.Auto, m.MessageID)
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

// insertMessage stores a message and its deliveries as Submit does, inside
// the caller's transaction. Idempotency keys are not looked up: the
// conversation message's upstream id deduplicates instead.
func (t *wtx) insertMessage(m *relay.Message) error {
	if m.ID == "" {
		return errors.New("message without id")
	}
	kind := m.Kind
	if kind == "" {
		kind = relay.KindMessage
	}
	states := make([]relay.DeliveryState, len(m.Deliveries))
	for i, d := range m.Deliveries {
		states[i] = d.State
		if states[i] == "" {
			states[i] = relay.StateQueued
		}
	}
	_, err := t.st.insMessage.Exec(m.ID, string(kind), m.Subject, m.Text, m.Priority, ms(m.CreatedAt), ms(m.ExpiresAt),
		m.Submitter, nullable(m.IdempotencyKey), m.RequestHash, m.ConversationID, string(relay.DeriveStatus(states)))
	if err != nil {
		return err
	}
	for i, d := range m.Deliveries {
		if d.ID == "" {
			return fmt.Errorf("message %s: delivery %d without id", m.ID, i)
		}
		route, err := encodeRoute(d.Route)
		if err != nil {
			return err
		}
		updated := d.UpdatedAt
		if updated.IsZero() {
			updated = m.CreatedAt
		}
		if _, err := t.st.insDelivery.Exec(d.ID, m.ID, d.Contact, route, d.Pinned, string(states[i]), d.Channel, d.Round,
			ms(d.NextAt), ms(d.ExpiresAt), ms(updated), d.LastError); err != nil {
			return err
		}
	}
	return nil
}

// Conversation returns a conversation by id or tag.
func (s *Store) Conversation(ctx context.Context, idOrTag string) (*relay.Conversation, error) {
	if err := s.w.alive(); err != nil {
		return nil, err
	}
	c, err := conversationWhere(ctx, s.rdb, `id = ? OR tag = ?`, idOrTag, relay.NormalizeTag(idOrTag))
	if errors.Is(err, relay.ErrNotFound) {
		return nil, fmt.Errorf("conversation %s: %w", idOrTag, relay.ErrNotFound)
	}
	return c, err
}

// Conversations returns up to limit conversations, newest message first.
func (s *Store) Conversations(ctx context.Context, limit int) ([]*relay.Conversation, error) {
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, maxPage)
	if err := s.w.alive(); err != nil {
		return nil, err
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+conversationCols+` FROM conversations
		ORDER BY last_at DESC, seq DESC LIMIT ?`, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*relay.Conversation
	for rows.Next() {
		c, err := scanConversation(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// ConversationMessages returns the newest limit messages, oldest first.
func (s *Store) ConversationMessages(ctx context.Context, id string, limit int) ([]relay.ConversationMessage, error) {
	if limit <= 0 {
		limit = 200
	}
	limit = min(limit, maxPage)
	if err := s.w.alive(); err != nil {
		return nil, err
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT c.id, c.conversation_id, c.direction, c.channel,
		coalesce(c.upstream_id, ''), c.text, c.at, c.held, c.auto, c.message_id, coalesce(m.status, '')
		FROM conversation_messages c LEFT JOIN messages m ON m.id = c.message_id
		WHERE c.conversation_id = ? ORDER BY c.id DESC LIMIT ?`, id, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []relay.ConversationMessage
	for rows.Next() {
		var m relay.ConversationMessage
		var at int64
		if err := rows.Scan(&m.ID, &m.ConversationID, &m.Direction, &m.Channel, &m.UpstreamID, &m.Text, &at,
			&m.Held, &m.Auto, &m.MessageID, &m.MessageStatus); err != nil {
			return nil, err
		}
		m.At = fromMS(at)
		out = append(out, m)
	}
	slices.Reverse(out)
	return out, rows.Err()
}

// ConversationBySent finds the conversation of the message whose attempt on
// channel got upstreamID.
func (s *Store) ConversationBySent(ctx context.Context, channel, upstreamID string) (*relay.Conversation, error) {
	if err := s.w.alive(); err != nil {
		return nil, err
	}
	if upstreamID == "" {
		return nil, relay.ErrNotFound
	}
	return conversationWhere(ctx, s.rdb, `id = (SELECT m.conversation_id FROM attempts a
		JOIN deliveries d ON d.id = a.delivery_id JOIN messages m ON m.id = d.message_id
		WHERE a.channel = ? AND a.upstream_id = ? AND m.conversation_id <> '' ORDER BY a.id DESC LIMIT 1)`,
		channel, upstreamID)
}

// CountInbound counts a conversation's inbound messages at or after since.
func (s *Store) CountInbound(ctx context.Context, id string, since time.Time) (int, error) {
	if err := s.w.alive(); err != nil {
		return 0, err
	}
	var n int
	err := s.rdb.QueryRowContext(ctx, `SELECT count(*) FROM conversation_messages
		WHERE conversation_id = ? AND direction = 'in' AND at >= ?`, id, ms(since)).Scan(&n)
	return n, err
}
