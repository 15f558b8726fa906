package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/relay-project/relay/relay"
)

// recoverError is the error of an attempt that a crash cut short.
const recoverError = "interrupted: relay restarted while sending"

// Submit stores m and its deliveries, or returns the message an earlier
// Submit stored under the same submitter and idempotency key. m is not
// modified: the returned message is a copy with defaults filled in
// (delivery state queued, MessageID, the denormalised message fields).
func (s *Store) Submit(ctx context.Context, m *relay.Message) (*relay.Message, bool, error) {
	if m == nil || m.ID == "" {
		return nil, false, errors.New("sqlite: submit: message without id")
	}
	in := *m
	if in.Kind == "" {
		in.Kind = relay.KindMessage
	}
	in.Deliveries = make([]*relay.Delivery, len(m.Deliveries))
	routes := make([]string, len(m.Deliveries))
	states := make([]relay.DeliveryState, len(m.Deliveries))
	for i, d := range m.Deliveries {
		if d == nil || d.ID == "" {
			return nil, false, fmt.Errorf("sqlite: submit %s: delivery %d without id", m.ID, i)
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
		r, err := encodeRoute(c.Route)
		if err != nil {
			return nil, false, fmt.Errorf("sqlite: submit %s: %w", m.ID, err)
		}
		in.Deliveries[i], routes[i], states[i] = &c, r, c.State
	}
	status := string(relay.DeriveStatus(states))

	var stored *relay.Message
	var created bool
	err := s.w.do(ctx, func(t *wtx) error {
		stored, created = nil, false
		if in.IdempotencyKey != "" {
			var id, hash string
			err := t.st.findIdempotent.QueryRow(in.Submitter, in.IdempotencyKey).Scan(&id, &hash)
			switch {
			case err == nil:
				if hash != in.RequestHash {
					return relay.ErrIdempotencyReuse
				}
				stored, err = loadMessage(context.Background(), t.conn, id)
				return err
			case !errors.Is(err, sql.ErrNoRows):
				return err
			}
		}
		_, err := t.st.insMessage.Exec(in.ID, string(in.Kind), in.Subject, in.Text, in.Priority,
			ms(in.CreatedAt), ms(in.ExpiresAt), in.Submitter, nullable(in.IdempotencyKey), in.RequestHash,
			in.ConversationID, status)
		if err != nil {
			return err
		}
		for i, d := range in.Deliveries {
			_, err := t.st.insDelivery.Exec(d.ID, in.ID, d.Contact, routes[i], d.Pinned, string(d.State),
				d.Channel, d.Round, ms(d.NextAt), ms(d.ExpiresAt), ms(d.UpdatedAt), d.LastError)
			if err != nil {
				return err
			}
		}
		stored, created = &in, true
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("sqlite: submit %s: %w", m.ID, err)
	}
	return stored, created, nil
}

// refreshStatus re-derives a message's cached status from its deliveries.
func (t *wtx) refreshStatus(messageID string) error {
	return t.deriveStatus(t.st.deliveryStates, messageID)
}

// refreshStatusOf does it for the message that delivery deliveryID belongs
// to, saving Settle a lookup of the message ID.
func (t *wtx) refreshStatusOf(deliveryID string) error {
	return t.deriveStatus(t.st.siblingStates, deliveryID)
}

// deriveStatus sets the status of the message whose deliveries' (message
// ID, state) rows q returns for arg. Deriving the status in SQL instead
// was measured slower with modernc.org/sqlite than this query and update.
func (t *wtx) deriveStatus(q *sql.Stmt, arg string) error {
	rows, err := q.Query(arg)
	if err != nil {
		return err
	}
	var msgID string
	var states []relay.DeliveryState
	for rows.Next() {
		var st string
		if err := rows.Scan(&msgID, &st); err != nil {
			rows.Close()
			return err
		}
		states = append(states, relay.DeliveryState(st))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if len(states) == 0 {
		return nil
	}
	_, err = t.st.setStatus.Exec(string(relay.DeriveStatus(states)), msgID)
	return err
}

func (t *wtx) attempts(d *relay.Delivery) error {
	rows, err := t.st.attemptsOf.Query(d.ID)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		a, err := scanAttempt(rows)
		if err != nil {
			return err
		}
		d.Attempts = append(d.Attempts, a)
	}
	return rows.Err()
}

// Claim moves up to limit due queued deliveries to sending, oldest NextAt
// first. Claims are serialised by the writer, so no delivery is handed out
// twice.
func (s *Store) Claim(ctx context.Context, now time.Time, limit int) ([]*relay.Delivery, error) {
	if limit <= 0 {
		return nil, nil
	}
	var out []*relay.Delivery
	err := s.w.doBackground(ctx, func(t *wtx) error {
		out = nil
		rows, err := t.st.due.Query(ms(now), limit)
		if err != nil {
			return err
		}
		var tried []*relay.Delivery // those with attempts to load
		for rows.Next() {
			var hasAttempts, sole bool
			d, err := scanDelivery(rows, &hasAttempts, &sole)
			if err != nil {
				rows.Close()
				return err
			}
			out = append(out, d)
			if sole {
				t.sole[d.ID] = d.MessageID
			}
			if hasAttempts {
				tried = append(tried, d)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, d := range tried {
			if err := t.attempts(d); err != nil {
				return err
			}
		}
		var last string
		for _, d := range out {
			if _, err := t.st.markSending.Exec(ms(now), d.ID); err != nil {
				return err
			}
			d.State, d.UpdatedAt = relay.StateSending, fromMS(ms(now))
			// A message with a delivery sending is sending (DeriveStatus):
			// no need to look at its other deliveries.
			if d.MessageID != last {
				last = d.MessageID
				if _, err := t.st.setSending.Exec(d.MessageID); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: claim: %w", err)
	}
	return out, nil
}

func (t *wtx) insertAttempt(a relay.Attempt) (int64, error) {
	res, err := t.st.insAttempt.Exec(a.DeliveryID, a.Channel, ms(a.At), string(a.Outcome), a.Error,
		nullable(a.UpstreamID), ms(a.DeliveredAt), ms(a.ReadAt))
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

func (t *wtx) endAttempt(a relay.Attempt) error {
	res, err := t.st.endAttempt.Exec(string(a.Outcome), a.Error, nullable(a.UpstreamID), a.ID)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return notFound(errors.Join(err, sql.ErrNoRows), "attempt", fmt.Sprint(a.ID))
	}
	return nil
}

// StartAttempt records an attempt in flight and returns its ID.
func (s *Store) StartAttempt(ctx context.Context, a relay.Attempt) (int64, error) {
	var id int64
	err := s.w.doBackground(ctx, func(t *wtx) (err error) {
		id, err = t.insertAttempt(relay.Attempt{DeliveryID: a.DeliveryID, Channel: a.Channel, At: a.At,
			UpstreamID: a.UpstreamID})
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: start attempt on %s: %w", a.DeliveryID, err)
	}
	return id, nil
}

// EndAttempt records the outcome of attempt a.ID; an unknown ID is
// relay.ErrNotFound.
func (s *Store) EndAttempt(ctx context.Context, a relay.Attempt) error {
	if err := s.w.doBackground(ctx, func(t *wtx) error { return t.endAttempt(a) }); err != nil {
		return fmt.Errorf("sqlite: end attempt: %w", err)
	}
	return nil
}

// Settle ends the dispatcher's turn on a claimed delivery. The attempt, if
// any, is recorded even when the delivery was cancelled meanwhile; only a
// delivery still sending changes state. An attempt without ID is inserted
// as a finished one.
func (s *Store) Settle(ctx context.Context, st relay.Settlement) error {
	if st.State != relay.StateQueued && !st.State.Final() {
		return fmt.Errorf("sqlite: settle %s: state %q is neither queued nor final", st.DeliveryID, st.State)
	}
	next := int64(0)
	if st.State == relay.StateQueued {
		next = ms(st.NextAt)
	}
	err := s.w.doBackground(ctx, func(t *wtx) error {
		soleOf, sole := t.sole[st.DeliveryID]
		delete(t.sole, st.DeliveryID)
		// Only a delivery still sending changes state.
		res, err := t.st.settle.Exec(string(st.State), st.Channel, st.Round, next, st.LastError,
			ms(st.At), st.DeliveryID)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
			// Cancelled meanwhile (the attempt below still counts), or unknown.
			var msgID, state string
			if err := t.st.deliveryHead.QueryRow(st.DeliveryID).Scan(&msgID, &state); err != nil {
				return notFound(err, "delivery", st.DeliveryID)
			}
		}
		if a := st.Attempt; a != nil {
			if a.ID != 0 {
				if err := t.endAttempt(*a); err != nil {
					return err
				}
			} else {
				c := *a
				if c.DeliveryID == "" {
					c.DeliveryID = st.DeliveryID
				}
				if _, err := t.insertAttempt(c); err != nil {
					return err
				}
			}
		}
		switch {
		case n == 0:
			return nil
		case sole:
			// The message's status is its only delivery's.
			status := relay.DeriveStatus([]relay.DeliveryState{st.State})
			_, err := t.st.setStatus.Exec(string(status), soleOf)
			return err
		}
		return t.refreshStatusOf(st.DeliveryID)
	})
	if err != nil {
		return fmt.Errorf("sqlite: settle %s: %w", st.DeliveryID, err)
	}
	return nil
}

// Recover requeues deliveries a crash left sending (due at now) and marks
// their unfinished attempts ambiguous.
func (s *Store) Recover(ctx context.Context, now time.Time) (int, error) {
	var n int
	err := s.w.do(ctx, func(t *wtx) error {
		n = 0
		bg := context.Background()
		if _, err := t.conn.ExecContext(bg, `UPDATE attempts SET outcome = ?, error = ? WHERE outcome = ''`,
			string(relay.OutcomeAmbiguous), recoverError); err != nil {
			return err
		}
		rows, err := t.conn.QueryContext(bg, `SELECT DISTINCT message_id FROM deliveries WHERE state = 'sending'`)
		if err != nil {
			return err
		}
		var ids []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		res, err := t.conn.ExecContext(bg, `UPDATE deliveries SET state = 'queued', next_at = ?1, updated_at = ?1
			WHERE state = 'sending'`, ms(now))
		if err != nil {
			return err
		}
		n64, err := res.RowsAffected()
		n = int(n64)
		for _, id := range ids {
			if err == nil {
				err = t.refreshStatus(id)
			}
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: recover: %w", err)
	}
	return n, nil
}

func (t *wtx) requireMessage(id string) error {
	var one int
	return notFound(t.st.messageExists.QueryRow(id).Scan(&one), "message", id)
}

// Cancel cancels the message's deliveries that have not ended.
func (s *Store) Cancel(ctx context.Context, messageID string) error {
	now := ms(s.now())
	err := s.w.do(ctx, func(t *wtx) error {
		if err := t.requireMessage(messageID); err != nil {
			return err
		}
		if _, err := t.st.cancel.Exec(now, messageID); err != nil {
			return err
		}
		return t.refreshStatus(messageID)
	})
	if err != nil {
		return fmt.Errorf("sqlite: cancel: %w", err)
	}
	return nil
}

// Retry makes the message's queued deliveries due at now and requeues its
// failed and expired ones with round 0 and a TTL of ttl from now.
func (s *Store) Retry(ctx context.Context, messageID string, now time.Time, ttl time.Duration) error {
	err := s.w.do(ctx, func(t *wtx) error {
		if err := t.requireMessage(messageID); err != nil {
			return err
		}
		if _, err := t.st.retryQueued.Exec(ms(now), messageID); err != nil {
			return err
		}
		if _, err := t.st.retryEnded.Exec(ms(now), ms(now.Add(ttl)), messageID); err != nil {
			return err
		}
		return t.refreshStatus(messageID)
	})
	if err != nil {
		return fmt.Errorf("sqlite: retry: %w", err)
	}
	return nil
}

// Wake makes every queued delivery due at now.
func (s *Store) Wake(ctx context.Context, now time.Time) error {
	err := s.w.do(ctx, func(t *wtx) error {
		_, err := t.st.wake.Exec(ms(now))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: wake: %w", err)
	}
	return nil
}

// Receipt records the first delivery or read receipt on the attempt sent
// on channel with upstreamID; an unknown one is ignored.
func (s *Store) Receipt(ctx context.Context, channel, upstreamID string, kind relay.ReceiptKind, at time.Time) error {
	var stmt func(t *wtx) *sql.Stmt
	switch kind {
	case relay.ReceiptDelivered:
		stmt = func(t *wtx) *sql.Stmt { return t.st.receiptDeliv }
	case relay.ReceiptRead:
		stmt = func(t *wtx) *sql.Stmt { return t.st.receiptRead }
	default:
		return fmt.Errorf("sqlite: receipt: unknown kind %q", kind)
	}
	if upstreamID == "" {
		return nil
	}
	err := s.w.doBackground(ctx, func(t *wtx) error {
		_, err := stmt(t).Exec(ms(at), channel, upstreamID)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: receipt: %w", err)
	}
	return nil
}

// PruneIdempotency forgets the idempotency keys of messages created before
// before; the messages stay.
func (s *Store) PruneIdempotency(ctx context.Context, before time.Time) error {
	err := s.w.do(ctx, func(t *wtx) error {
		_, err := t.st.prune.Exec(ms(before))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: prune idempotency: %w", err)
	}
	return nil
}
