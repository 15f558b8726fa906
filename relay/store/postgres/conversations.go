package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/relay-project/relay/relay"
)

// conversationSchema is the "customer conversations" migration step.
var conversationSchema = []string{
	// seq comes from a sequence: the tag is made from it, so it is never
	// reused (a number taken by a losing concurrent open is skipped).
	`CREATE SEQUENCE conversations_seq`,
	`CREATE TABLE conversations (
		seq            bigint PRIMARY KEY,
		id             text NOT NULL UNIQUE,
		tag            text NOT NULL UNIQUE,
		channel        text NOT NULL,
		sender_id      text NOT NULL,
		sender_name    text NOT NULL,
		created_at     timestamptz NOT NULL,
		last_at        timestamptz NOT NULL,
		last_text      text NOT NULL,
		last_direction text NOT NULL,
		unanswered     integer NOT NULL,
		auto_reply_at  timestamptz,
		UNIQUE (channel, sender_id)
	)`,
	`CREATE INDEX conversations_recent ON conversations (last_at, seq)`,
	`CREATE TABLE conversation_messages (
		id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		conversation_id text NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
		direction       text NOT NULL,
		channel         text NOT NULL,
		upstream_id     text,
		text            text NOT NULL,
		at              timestamptz NOT NULL,
		held            text NOT NULL,
		auto            boolean NOT NULL,
		message_id      text NOT NULL
	)`,
	// An upstream's redelivery (a webhook retried, an update fetched
	// again) finds its first copy here.
	`CREATE UNIQUE INDEX conversation_messages_upstream ON conversation_messages (channel, upstream_id)
		WHERE upstream_id IS NOT NULL`,
	`CREATE INDEX conversation_messages_conv ON conversation_messages (conversation_id, direction, at)`,
	`CREATE INDEX messages_conversation ON messages (conversation_id) WHERE conversation_id <> ''`,
}

const conversationCols = `seq, id, tag, channel, sender_id, sender_name, created_at, last_at, last_text,
	last_direction, unanswered, auto_reply_at`

func scanConversation(r pgx.Row) (*relay.Conversation, error) {
	var c relay.Conversation
	var auto *time.Time
	err := r.Scan(&c.Seq, &c.ID, &c.Tag, &c.Channel, &c.SenderID, &c.SenderName, &c.CreatedAt, &c.LastAt, &c.LastText,
		&c.LastDirection, &c.Unanswered, &auto)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, relay.ErrNotFound
	}
	c.CreatedAt, c.LastAt, c.AutoReplyAt = utc(c.CreatedAt), utc(c.LastAt), opt(auto)
	return &c, err
}

// OpenConversation finds or creates the conversation of c.Channel and
// c.SenderID. Concurrent first opens meet in the (channel, sender_id)
// unique index: one inserts, the others get its row.
func (s *Store) OpenConversation(ctx context.Context, c relay.Conversation) (*relay.Conversation, error) {
	if c.ID == "" || c.Channel == "" || c.SenderID == "" {
		return nil, errors.New("postgres: open conversation: id, channel and sender are required")
	}
	if err := s.alive(); err != nil {
		return nil, err
	}
	// The common case: it exists, and the name is unchanged or not given.
	found, err := scanConversation(s.pool.QueryRow(ctx, `SELECT `+conversationCols+` FROM conversations
		WHERE channel = $1 AND sender_id = $2`, c.Channel, c.SenderID))
	if err == nil && (c.SenderName == "" || c.SenderName == found.SenderName) {
		return found, nil
	}
	if err != nil && !errors.Is(err, relay.ErrNotFound) {
		return nil, fmt.Errorf("postgres: open conversation: %w", err)
	}
	if found != nil {
		out, err := scanConversation(s.pool.QueryRow(ctx, `UPDATE conversations SET sender_name = $1
			WHERE seq = $2 RETURNING `+conversationCols, c.SenderName, found.Seq))
		if err != nil {
			return nil, fmt.Errorf("postgres: open conversation: %w", err)
		}
		return out, nil
	}
	var seq int64
	if err := s.pool.QueryRow(ctx, `SELECT nextval('conversations_seq')`).Scan(&seq); err != nil {
		return nil, fmt.Errorf("postgres: open conversation: %w", err)
	}
	last := c.LastAt
	if last.IsZero() {
		last = c.CreatedAt
	}
	out, err := scanConversation(s.pool.QueryRow(ctx, `INSERT INTO conversations (`+conversationCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
		ON CONFLICT (channel, sender_id) DO UPDATE SET sender_name =
			CASE WHEN excluded.sender_name <> '' THEN excluded.sender_name ELSE conversations.sender_name END
		RETURNING `+conversationCols,
		seq, c.ID, relay.ConversationTag(seq), c.Channel, c.SenderID, c.SenderName, c.CreatedAt, last, c.LastText,
		c.LastDirection, c.Unanswered, nullTime(c.AutoReplyAt)))
	if err != nil {
		return nil, fmt.Errorf("postgres: open conversation: %w", err)
	}
	return out, nil
}

// Record stores a conversation message with the relay messages it causes,
// in one transaction. The conversation's row lock orders concurrent
// records of one conversation (its counts and the auto-reply window).
func (s *Store) Record(ctx context.Context, e relay.ConversationEntry) (relay.Recorded, error) {
	var out relay.Recorded
	err := s.write(ctx, func(tx pgx.Tx) error {
		out = relay.Recorded{Message: e.Message}
		m := &out.Message
		conv, err := scanConversation(tx.QueryRow(ctx, `SELECT `+conversationCols+` FROM conversations
			WHERE id = $1 FOR UPDATE`, m.ConversationID))
		if err != nil {
			return fmt.Errorf("conversation %s: %w", m.ConversationID, err)
		}
		if e.Submit != nil {
			m.MessageID = e.Submit.ID
		}
		// The upstream index finds a redelivery, waiting for a concurrent
		// insert of the same id to commit or roll back.
		err = tx.QueryRow(ctx, `INSERT INTO conversation_messages (conversation_id, direction, channel,
				upstream_id, text, at, held, auto, message_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
			ON CONFLICT (channel, upstream_id) WHERE upstream_id IS NOT NULL DO NOTHING RETURNING id`,
			m.ConversationID, m.Direction, m.Channel, nullable(m.UpstreamID), m.Text, m.At, m.Held, m.Auto,
			m.MessageID).Scan(&m.ID)
		if errors.Is(err, pgx.ErrNoRows) {
			out = relay.Recorded{Duplicate: true, Message: e.Message}
			return nil
		}
		if err != nil {
			return err
		}
		if e.Submit != nil {
			if err := insertMessage(ctx, tx, e.Submit); err != nil {
				return err
			}
		}
		unanswered := conv.Unanswered + 1
		if m.Direction == relay.DirectionOut {
			unanswered = 0
		}
		if !m.Auto {
			if _, err := tx.Exec(ctx, `UPDATE conversations SET last_at = $1, last_text = $2,
				last_direction = $3, unanswered = $4 WHERE seq = $5`, m.At, m.Text, m.Direction, unanswered,
				conv.Seq); err != nil {
				return err
			}
		}
		if e.AutoReply == nil || (!conv.AutoReplyAt.IsZero() && e.Now.Sub(conv.AutoReplyAt) < e.AutoReplyEvery) {
			return nil
		}
		if err := insertMessage(ctx, tx, e.AutoReply); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO conversation_messages (conversation_id, direction, channel, text,
				at, held, auto, message_id) VALUES ($1, $2, '', $3, $4, '', true, $5)`,
			conv.ID, relay.DirectionOut, e.AutoReply.Text, e.Now, e.AutoReply.ID); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE conversations SET auto_reply_at = $1 WHERE seq = $2`, e.Now, conv.Seq)
		out.AutoReplied = err == nil
		return err
	})
	if err != nil {
		return relay.Recorded{}, fmt.Errorf("postgres: record conversation message: %w", err)
	}
	return out, nil
}

// Conversation returns a conversation by id or tag.
func (s *Store) Conversation(ctx context.Context, idOrTag string) (*relay.Conversation, error) {
	if err := s.alive(); err != nil {
		return nil, err
	}
	c, err := scanConversation(s.pool.QueryRow(ctx, `SELECT `+conversationCols+` FROM conversations
		WHERE id = $1 OR tag = $2 ORDER BY id = $1 DESC LIMIT 1`, idOrTag, relay.NormalizeTag(idOrTag)))
	if err != nil {
		return nil, fmt.Errorf("postgres: conversation %s: %w", idOrTag, err)
	}
	return c, nil
}

// Conversations returns up to limit conversations, newest message first.
func (s *Store) Conversations(ctx context.Context, limit int) ([]*relay.Conversation, error) {
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, maxPage)
	if err := s.alive(); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+conversationCols+` FROM conversations
		ORDER BY last_at DESC, seq DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: conversations: %w", err)
	}
	defer rows.Close()
	var out []*relay.Conversation
	for rows.Next() {
		c, err := scanConversation(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: conversations: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// ConversationMessages returns the newest limit messages, oldest first,
// each with the status of the relay message that carries it.
func (s *Store) ConversationMessages(ctx context.Context, id string, limit int) ([]relay.ConversationMessage, error) {
	if limit <= 0 {
		limit = 200
	}
	limit = min(limit, maxPage)
	if err := s.alive(); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT c.id, c.conversation_id, c.direction, c.channel,
		coalesce(c.upstream_id, ''), c.text, c.at, c.held, c.auto, c.message_id, coalesce(m.status, '')
		FROM conversation_messages c LEFT JOIN messages m ON m.id = c.message_id
		WHERE c.conversation_id = $1 ORDER BY c.id DESC LIMIT $2`, id, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: conversation messages: %w", err)
	}
	defer rows.Close()
	var out []relay.ConversationMessage
	for rows.Next() {
		var m relay.ConversationMessage
		if err := rows.Scan(&m.ID, &m.ConversationID, &m.Direction, &m.Channel, &m.UpstreamID, &m.Text, &m.At,
			&m.Held, &m.Auto, &m.MessageID, &m.MessageStatus); err != nil {
			return nil, fmt.Errorf("postgres: conversation messages: %w", err)
		}
		m.At = utc(m.At)
		out = append(out, m)
	}
	slices.Reverse(out)
	return out, rows.Err()
}

// ConversationBySent finds the conversation of the message whose attempt on
// channel got upstreamID.
func (s *Store) ConversationBySent(ctx context.Context, channel, upstreamID string) (*relay.Conversation, error) {
	if err := s.alive(); err != nil {
		return nil, err
	}
	if upstreamID == "" {
		return nil, relay.ErrNotFound
	}
	c, err := scanConversation(s.pool.QueryRow(ctx, `SELECT `+conversationCols+` FROM conversations
		WHERE id = (SELECT m.conversation_id FROM attempts a
			JOIN deliveries d ON d.id = a.delivery_id JOIN messages m ON m.id = d.message_id
			WHERE a.channel = $1 AND a.upstream_id = $2 AND m.conversation_id <> ''
			ORDER BY a.id DESC LIMIT 1)`, channel, upstreamID))
	if err != nil {
		return nil, fmt.Errorf("postgres: conversation by sent %s: %w", channel, err)
	}
	return c, nil
}

// CountInbound counts a conversation's inbound messages at or after since.
func (s *Store) CountInbound(ctx context.Context, id string, since time.Time) (int, error) {
	if err := s.alive(); err != nil {
		return 0, err
	}
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM conversation_messages
		WHERE conversation_id = $1 AND direction = 'in' AND at >= $2`, id, since).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("postgres: count inbound: %w", err)
	}
	return n, nil
}
