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

// recoverError is the error of an attempt cut short by a crash (or by an
// instance that lost its lease).
const recoverError = "interrupted: relay restarted while sending"

// Claim moves up to limit due queued deliveries to sending for this
// instance, oldest NextAt first. SKIP LOCKED lets instances claim side by
// side: rows another claimer is taking are passed over, never handed out
// twice.
func (s *Store) Claim(ctx context.Context, now time.Time, limit int) ([]*relay.Delivery, error) {
	if limit <= 0 {
		return nil, s.alive()
	}
	var out []*relay.Delivery
	err := s.write(ctx, func(tx pgx.Tx) error {
		out = nil
		rows, err := tx.Query(ctx, `WITH due AS (
				SELECT id FROM deliveries WHERE state = 'queued' AND next_at <= $1
				ORDER BY next_at, seq LIMIT $2 FOR UPDATE SKIP LOCKED
			)
			UPDATE deliveries d SET state = 'sending', updated_at = $1, claimed_by = $3, claimed_until = $4
			FROM due, messages m WHERE d.id = due.id AND m.id = d.message_id
			RETURNING `+deliveryCols+`, d.seq, EXISTS (SELECT 1 FROM attempts a WHERE a.delivery_id = d.id)`,
			now, limit, s.instance, now.Add(s.lease))
		if err != nil {
			return err
		}
		seq := map[*relay.Delivery]int64{}
		tried := map[string]*relay.Delivery{} // those with attempts to load
		var msgIDs []string
		for rows.Next() {
			var n int64
			var hasAttempts bool
			d, err := scanDelivery(rows, &n, &hasAttempts)
			if err != nil {
				rows.Close()
				return err
			}
			out, seq[d] = append(out, d), n
			msgIDs = append(msgIDs, d.MessageID)
			if hasAttempts {
				tried[d.ID] = d
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		// RETURNING has no order of its own.
		slices.SortFunc(out, func(a, b *relay.Delivery) int {
			if c := a.NextAt.Compare(b.NextAt); c != 0 {
				return c
			}
			return int(seq[a] - seq[b])
		})
		if len(tried) > 0 {
			ids := make([]string, 0, len(tried))
			for id := range tried {
				ids = append(ids, id)
			}
			rows, err := tx.Query(ctx, `SELECT `+attemptCols+` FROM attempts WHERE delivery_id = ANY($1) ORDER BY id`, ids)
			if err != nil {
				return err
			}
			if err := addAttempts(rows, tried); err != nil {
				return err
			}
		}
		if len(msgIDs) == 0 {
			return nil
		}
		// A message with a delivery sending is sending (relay.DeriveStatus):
		// no need to look at its other deliveries.
		_, err = tx.Exec(ctx, `UPDATE messages SET status = 'sending'
			WHERE id IN (`+lockMessagesSQL+`) AND status <> 'sending'`, msgIDs)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: claim: %w", err)
	}
	return out, nil
}

// StartAttempt records an attempt in flight and returns its ID. It also
// renews this instance's lease on the delivery: the lease runs Lease from
// the newest attempt's start.
func (s *Store) StartAttempt(ctx context.Context, a relay.Attempt) (int64, error) {
	if err := s.alive(); err != nil {
		return 0, err
	}
	var id int64
	err := s.pool.QueryRow(ctx, `WITH lease AS (
			UPDATE deliveries SET claimed_until = greatest(claimed_until, $5)
			WHERE id = $1 AND state = 'sending' AND claimed_by = $6
		)
		INSERT INTO attempts (delivery_id, channel, at, outcome, error, upstream_id)
		VALUES ($1, $2, $3, '', '', $4) RETURNING id`,
		a.DeliveryID, a.Channel, a.At, nullable(a.UpstreamID), a.At.Add(s.lease), s.instance).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("postgres: start attempt on %s: %w", a.DeliveryID, err)
	}
	return id, nil
}

func endAttempt(ctx context.Context, q querier, a relay.Attempt) error {
	tag, err := q.Exec(ctx, `UPDATE attempts SET outcome = $1, error = $2, upstream_id = coalesce($3, upstream_id)
		WHERE id = $4`, string(a.Outcome), a.Error, nullable(a.UpstreamID), a.ID)
	if err == nil && tag.RowsAffected() == 0 {
		err = fmt.Errorf("attempt %d: %w", a.ID, relay.ErrNotFound)
	}
	return err
}

// EndAttempt records the outcome of attempt a.ID; an unknown ID is
// relay.ErrNotFound.
func (s *Store) EndAttempt(ctx context.Context, a relay.Attempt) error {
	if err := s.alive(); err != nil {
		return err
	}
	if err := endAttempt(ctx, s.pool, a); err != nil {
		return fmt.Errorf("postgres: end attempt: %w", err)
	}
	return nil
}

// Settle ends this instance's turn on a claimed delivery. The attempt, if
// any, is recorded in any case; the delivery changes only while it is
// sending under this instance's claim (not cancelled meanwhile, not
// requeued and taken over after the lease ran out). An attempt without ID
// is inserted as a finished one.
func (s *Store) Settle(ctx context.Context, st relay.Settlement) error {
	if st.State != relay.StateQueued && !st.State.Final() {
		return fmt.Errorf("postgres: settle %s: state %q is neither queued nor final", st.DeliveryID, st.State)
	}
	var next time.Time
	if st.State == relay.StateQueued {
		next = st.NextAt
	}
	err := s.write(ctx, func(tx pgx.Tx) error {
		var msgID string
		err := tx.QueryRow(ctx, `UPDATE deliveries SET state = $2, channel = $3, round = $4, next_at = $5,
				last_error = $6, updated_at = $7, claimed_by = NULL, claimed_until = NULL
			WHERE id = $1 AND state = 'sending' AND claimed_by = $8 RETURNING message_id`,
			st.DeliveryID, string(st.State), st.Channel, st.Round, next, st.LastError, st.At, s.instance).Scan(&msgID)
		changed := err == nil
		if errors.Is(err, pgx.ErrNoRows) {
			err = notFound(tx.QueryRow(ctx, `SELECT message_id FROM deliveries WHERE id = $1`, st.DeliveryID).Scan(&msgID),
				"delivery", st.DeliveryID)
		}
		if err != nil {
			return err
		}
		if a := st.Attempt; a != nil {
			if a.ID != 0 {
				err = endAttempt(ctx, tx, *a)
			} else {
				_, err = tx.Exec(ctx, `INSERT INTO attempts (delivery_id, channel, at, outcome, error, upstream_id,
					delivered_at, read_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
					st.DeliveryID, a.Channel, a.At, string(a.Outcome), a.Error, nullable(a.UpstreamID),
					nullTime(a.DeliveredAt), nullTime(a.ReadAt))
			}
			if err != nil {
				return err
			}
		}
		if !changed {
			return nil
		}
		return refreshStatus(ctx, tx, []string{msgID})
	})
	if err != nil {
		return fmt.Errorf("postgres: settle %s: %w", st.DeliveryID, err)
	}
	return nil
}

// Recover requeues (due at now) the sending deliveries whose lease ended
// by now, or that this instance's name holds from a previous run, and
// records their unfinished attempts as ambiguous. Deliveries that another
// live instance holds are left alone, so Recover is safe at any time.
func (s *Store) Recover(ctx context.Context, now time.Time) (int, error) {
	n, err := s.requeue(ctx, now, true)
	if err != nil {
		return 0, fmt.Errorf("postgres: recover: %w", err)
	}
	return n, nil
}

// requeue is Recover; own says whether this instance's own claims count as
// abandoned (true only at start, before this run claims anything).
func (s *Store) requeue(ctx context.Context, now time.Time, own bool) (int, error) {
	var n int
	err := s.write(ctx, func(tx pgx.Tx) error {
		// SKIP LOCKED: a row locked now is being settled by its owner, or
		// requeued by another instance's Recover.
		rows, err := tx.Query(ctx, `WITH gone AS (
				SELECT id FROM deliveries WHERE state = 'sending'
					AND (claimed_until IS NULL OR claimed_until <= $1 OR ($3 AND claimed_by = $2))
				ORDER BY id FOR UPDATE SKIP LOCKED
			), cut AS (
				UPDATE attempts SET outcome = 'ambiguous', error = $4
				WHERE delivery_id IN (SELECT id FROM gone) AND outcome = ''
			)
			UPDATE deliveries d SET state = 'queued', next_at = $1, updated_at = $1,
				claimed_by = NULL, claimed_until = NULL
			FROM gone WHERE d.id = gone.id RETURNING d.message_id`, now, s.instance, own, recoverError)
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		n = len(ids)
		slices.Sort(ids)
		return refreshStatus(ctx, tx, slices.Compact(ids))
	})
	return n, err
}

// requireMessage reports relay.ErrNotFound for an unknown message. It takes
// no lock: messages are locked after deliveries (see lockMessagesSQL).
func requireMessage(ctx context.Context, tx pgx.Tx, id string) error {
	var one int
	return notFound(tx.QueryRow(ctx, `SELECT 1 FROM messages WHERE id = $1`, id).Scan(&one), "message", id)
}

// Cancel cancels the message's deliveries that have not ended.
func (s *Store) Cancel(ctx context.Context, messageID string) error {
	now := s.now()
	err := s.write(ctx, func(tx pgx.Tx) error {
		if err := requireMessage(ctx, tx, messageID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE deliveries SET state = 'cancelled', updated_at = $1,
				claimed_by = NULL, claimed_until = NULL
			WHERE message_id = $2 AND state IN ('queued', 'sending')`, now, messageID); err != nil {
			return err
		}
		return refreshStatus(ctx, tx, []string{messageID})
	})
	if err != nil {
		return fmt.Errorf("postgres: cancel: %w", err)
	}
	return nil
}

// Retry makes the message's queued deliveries due at now and requeues its
// failed and expired ones with round 0 and a TTL of ttl from now.
func (s *Store) Retry(ctx context.Context, messageID string, now time.Time, ttl time.Duration) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		if err := requireMessage(ctx, tx, messageID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE deliveries SET next_at = $1, updated_at = $1
			WHERE message_id = $2 AND state = 'queued'`, now, messageID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE deliveries SET state = 'queued', round = 0, next_at = $1,
				expires_at = $2, updated_at = $1, retried_at = $1
			WHERE message_id = $3 AND state IN ('failed', 'expired')`, now, now.Add(ttl), messageID); err != nil {
			return err
		}
		return refreshStatus(ctx, tx, []string{messageID})
	})
	if err != nil {
		return fmt.Errorf("postgres: retry: %w", err)
	}
	return nil
}

// Wake makes every queued delivery due at now.
func (s *Store) Wake(ctx context.Context, now time.Time) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE deliveries SET next_at = $1 WHERE state = 'queued' AND next_at > $1`, now)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: wake: %w", err)
	}
	return nil
}

// Receipt records the first delivery or read receipt on the attempt sent
// on channel with upstreamID; an unknown one is ignored. A read receipt
// implies the message reached the device.
func (s *Store) Receipt(ctx context.Context, channel, upstreamID string, kind relay.ReceiptKind, at time.Time) error {
	var query string
	switch kind {
	case relay.ReceiptDelivered:
		query = `UPDATE attempts SET delivered_at = $1
			WHERE channel = $2 AND upstream_id = $3 AND delivered_at IS NULL`
	case relay.ReceiptRead:
		query = `UPDATE attempts SET read_at = $1, delivered_at = coalesce(delivered_at, $1)
			WHERE channel = $2 AND upstream_id = $3 AND read_at IS NULL`
	default:
		return fmt.Errorf("postgres: receipt: unknown kind %q", kind)
	}
	if err := s.alive(); err != nil || upstreamID == "" {
		return err
	}
	if _, err := s.pool.Exec(ctx, query, at, channel, upstreamID); err != nil {
		return fmt.Errorf("postgres: receipt: %w", err)
	}
	return nil
}

// PruneIdempotency forgets the idempotency keys of messages created before
// before; the messages stay.
func (s *Store) PruneIdempotency(ctx context.Context, before time.Time) error {
	if err := s.alive(); err != nil {
		return err
	}
	_, err := s.pool.Exec(ctx, `UPDATE messages SET idempotency_key = NULL
		WHERE idempotency_key IS NOT NULL AND created_at < $1`, before)
	if err != nil {
		return fmt.Errorf("postgres: prune idempotency: %w", err)
	}
	return nil
}
