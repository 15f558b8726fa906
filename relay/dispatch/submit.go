package dispatch

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/relay-project/relay/relay"
)

// Request is a message to accept.
type Request struct {
	To             []string // contacts and "group:NAME"
	Text           string
	Subject        string
	Priority       string
	Route          []string      // optional: channels to use instead of each contact's route
	TTL            time.Duration // optional: default Options.TTL
	Submitter      string        // API token name
	IdempotencyKey string
	RequestHash    string
	Kind           relay.MessageKind
	ConversationID string
	// Hops, when set, pins one delivery to exactly these hops (a reply to
	// a customer goes back only on the channel the customer used). To
	// must then name one recipient label.
	Hops []relay.Hop
}

// idSource makes ULIDs, monotonic within a millisecond.
type idSource struct {
	mu      sync.Mutex
	entropy *ulid.MonotonicEntropy
}

func newIDSource() *idSource {
	return &idSource{entropy: ulid.Monotonic(rand.Reader, 0)}
}

func (s *idSource) next(t time.Time) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return ulid.MustNew(ulid.Timestamp(t), s.entropy).String()
}

// NewID returns a fresh ULID.
func (d *Dispatcher) NewID() string { return d.ids.next(d.now()) }

// Submit resolves the recipients, stores the message with one delivery per
// contact, and returns once it is committed. created is false when an
// Idempotency-Key matched an earlier message (which is returned).
func (d *Dispatcher) Submit(ctx context.Context, r Request) (*relay.Message, bool, error) {
	m, err := d.Prepare(r)
	if err != nil {
		return nil, false, err
	}
	stored, created, err := d.store.Submit(ctx, m)
	if err != nil {
		return nil, false, err
	}
	if created {
		d.Submitted(stored)
	}
	return stored, created, nil
}

// Prepare resolves r into a message with its deliveries, as Submit does,
// without storing it. A caller that must store the message in one
// transaction with rows of its own (a customer's message and its forward)
// stores it, then calls Submitted.
func (d *Dispatcher) Prepare(r Request) (*relay.Message, error) {
	rt := d.rt.Load()
	now := d.now()
	ttl := r.TTL
	if ttl <= 0 {
		ttl = d.opt.TTL
	}
	kind := r.Kind
	if kind == "" {
		kind = relay.KindMessage
	}
	m := &relay.Message{
		ID: d.ids.next(now), Kind: kind, Subject: r.Subject, Text: r.Text, Priority: r.Priority,
		CreatedAt: now, ExpiresAt: now.Add(ttl), Submitter: r.Submitter,
		IdempotencyKey: r.IdempotencyKey, RequestHash: r.RequestHash, ConversationID: r.ConversationID,
	}
	if len(r.Hops) > 0 {
		for _, h := range r.Hops {
			if _, ok := rt.Channels[h.Channel]; !ok {
				return nil, fmt.Errorf("%w: %s", relay.ErrUnknownChannel, h.Channel)
			}
		}
		label := strings.Join(r.To, ",")
		m.Deliveries = []*relay.Delivery{d.newDelivery(m, label, r.Hops, true)}
		return m, nil
	}
	for _, ch := range r.Route {
		if _, ok := rt.Channels[ch]; !ok {
			return nil, fmt.Errorf("%w: %s", relay.ErrUnknownChannel, ch)
		}
	}
	contacts, err := rt.Directory.Resolve(r.To)
	if err != nil {
		return nil, err
	}
	for _, c := range contacts {
		hops, err := rt.Directory.Route(c, r.Route)
		if err != nil {
			return nil, err
		}
		m.Deliveries = append(m.Deliveries, d.newDelivery(m, c, hops, len(r.Route) > 0))
	}
	return m, nil
}

// Submitted counts a message the caller stored itself (see Prepare) and
// wakes the workers for it.
func (d *Dispatcher) Submitted(m *relay.Message) {
	d.m.Accepted.Inc()
	d.Wake()
}

func (d *Dispatcher) newDelivery(m *relay.Message, contact string, hops []relay.Hop, pinned bool) *relay.Delivery {
	return &relay.Delivery{
		ID: d.ids.next(m.CreatedAt), MessageID: m.ID, Contact: contact, Route: hops, Pinned: pinned,
		State: relay.StateQueued, NextAt: m.CreatedAt, ExpiresAt: m.ExpiresAt, UpdatedAt: m.CreatedAt,
		Kind: m.Kind, Subject: m.Subject, Text: m.Text, Priority: m.Priority, CreatedAt: m.CreatedAt,
	}
}

// Notify sends a notice from relay itself to delivery.admin over the
// admin's route. A notice about a notice is never sent; without an admin
// it only logs.
func (d *Dispatcher) Notify(ctx context.Context, text string) {
	rt := d.rt.Load()
	if rt.Admin == "" {
		d.log.Warn("no delivery.admin to notify", "notice", text)
		return
	}
	_, _, err := d.Submit(ctx, Request{To: []string{rt.Admin}, Text: "[relay] " + text, Subject: "relay notice", Kind: relay.KindNotice, Priority: relay.PriorityHigh})
	if err != nil {
		d.log.Error("queue notice to admin", "err", err)
	}
}

func (d *Dispatcher) noticeExpired(ctx context.Context, del *relay.Delivery) {
	if del.Kind == relay.KindNotice || (del.Kind == relay.KindReply && d.opt.OnEnd != nil) {
		return
	}
	d.Notify(context.WithoutCancel(ctx), fmt.Sprintf("message %s to %s expired undelivered (created %s); last error: %s",
		del.MessageID, del.Contact, del.CreatedAt.UTC().Format(time.RFC3339), orNone(del.LastError)))
}

func (d *Dispatcher) noticeFailed(ctx context.Context, del *relay.Delivery, why string) {
	if del.Kind == relay.KindNotice || (del.Kind == relay.KindReply && d.opt.OnEnd != nil) {
		return
	}
	d.Notify(context.WithoutCancel(ctx), fmt.Sprintf("message %s to %s failed: %s", del.MessageID, del.Contact, why))
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// Retry makes a message's waiting deliveries due now and brings failed and
// expired ones back with a fresh TTL (an operator's "retry now").
func (d *Dispatcher) Retry(ctx context.Context, messageID string) error {
	if err := d.store.Retry(ctx, messageID, d.now(), d.opt.TTL); err != nil {
		return err
	}
	d.Wake()
	return nil
}
