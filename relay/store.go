package relay

import (
	"context"
	"time"
)

// Store is the durable outbox. Every method is safe for concurrent use.
// Writes are durable when they return (group-committed by implementations
// that can). The conformance suite in relay/store/storetest pins the
// contract down for every implementation.
type Store interface {
	// Submit stores m with its deliveries in one transaction and returns
	// once it is committed. When m.IdempotencyKey is set and a message with
	// the same Submitter and key exists, Submit stores nothing and returns
	// the existing message with created=false if its RequestHash equals
	// m.RequestHash, or ErrIdempotencyReuse if it does not. IDs are the
	// caller's.
	Submit(ctx context.Context, m *Message) (stored *Message, created bool, err error)

	// Message returns one message with its deliveries and their attempts,
	// or ErrNotFound.
	Message(ctx context.Context, id string) (*Message, error)

	// Messages returns a page of messages, newest first, with deliveries
	// (attempts included).
	Messages(ctx context.Context, f MessageFilter) ([]*Message, error)

	// Claim moves up to limit queued deliveries whose NextAt is not after
	// now to sending and returns them, oldest NextAt first, with their
	// attempts. A claimed delivery belongs to the caller until Settle.
	Claim(ctx context.Context, now time.Time, limit int) ([]*Delivery, error)

	// StartAttempt records that a send on a.Channel begins (Outcome empty)
	// and returns the attempt's ID. An attempt left unfinished by a crash is
	// found by Recover.
	StartAttempt(ctx context.Context, a Attempt) (int64, error)

	// EndAttempt records the outcome of a started attempt (matched by a.ID).
	EndAttempt(ctx context.Context, a Attempt) error

	// Settle ends the dispatcher's turn on a claimed delivery: a final
	// state, or StateQueued with the next try's time and round. The
	// optional attempt outcome is written in the same transaction. A
	// delivery cancelled while it was being sent stays cancelled.
	Settle(ctx context.Context, s Settlement) error

	// Recover is called once at start, before claiming: deliveries left
	// sending by a crash are queued again (due at now), and their
	// unfinished attempts are recorded as ambiguous. It returns how many
	// deliveries it requeued.
	Recover(ctx context.Context, now time.Time) (int, error)

	// Cancel cancels a message's deliveries that have not ended; Retry makes
	// its queued deliveries due at now, and requeues failed and expired
	// ones (round 0, new TTL from now+ttl, RetriedAt = now). Both return ErrNotFound for an
	// unknown id.
	Cancel(ctx context.Context, messageID string) error
	Retry(ctx context.Context, messageID string, now time.Time, ttl time.Duration) error

	// Wake makes every queued delivery due at now (a channel came back up).
	Wake(ctx context.Context, now time.Time) error

	// Receipt records a delivery or read receipt on the attempt with this
	// channel and upstream id; an unknown one is ignored.
	Receipt(ctx context.Context, channel, upstreamID string, kind ReceiptKind, at time.Time) error

	// Counts returns the number of deliveries in each state.
	Counts(ctx context.Context) (map[DeliveryState]int, error)

	// PruneIdempotency forgets idempotency keys of messages created before t.
	PruneIdempotency(ctx context.Context, before time.Time) error

	// ChannelState returns the durable key/value space of one channel.
	ChannelState(channel string) StateStore

	// Ping reports whether the store is usable.
	Ping(ctx context.Context) error

	// Close waits for pending writes and closes the store.
	Close() error
}

// MessageFilter selects a page of messages.
type MessageFilter struct {
	Status    MessageStatus // "" for all
	Submitter string        // "" for all
	Before    string        // message ID: only messages older than it
	Limit     int           // default 50
}

// Settlement is the dispatcher's verdict on a claimed delivery.
type Settlement struct {
	DeliveryID string
	State      DeliveryState // queued again, or a final state
	Channel    string        // delivered on (or last tried)
	Round      int
	NextAt     time.Time // when queued
	LastError  string
	Attempt    *Attempt // optional: the outcome of the last started attempt
	At         time.Time
}
