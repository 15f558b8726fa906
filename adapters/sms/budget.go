package sms

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/relay-project/relay/relay"
)

// budget counts billable units per day in env.State under "budget:DATE",
// so a restart does not reset the count. Sends reserve their cost before
// they go out (so concurrent sends cannot overshoot) and are refunded when
// the upstream refused them for sure.
type budget struct {
	state      relay.StateStore
	now        func() time.Time
	loc        *time.Location
	max        int
	perContact int
	signal     func(relay.HealthSignal)

	mu  sync.Mutex
	day string // the day rec belongs to; "" until loaded
	rec dayRecord
}

// dayRecord is the stored value of one day.
type dayRecord struct {
	Used     int            `json:"used"`
	Contacts map[string]int `json:"contacts,omitempty"`
	// Spent is set when a send was refused for the budget: the channel
	// stays down for the rest of the day, also across a restart.
	Spent bool `json:"spent,omitempty"`
}

func budgetKey(day string) string { return "budget:" + day }

func (b *budget) today() (day string, t time.Time) {
	t = b.now().In(b.loc)
	return t.Format(time.DateOnly), t
}

// nextMidnight is when the budget day after t starts.
func (b *budget) nextMidnight(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d+1, 0, 0, 0, 0, b.loc)
}

// roll makes b.rec today's record, loading it from the store when the
// day changed, and says the channel is up again when yesterday's budget
// had been spent. Called with b.mu held.
func (b *budget) roll(ctx context.Context) error {
	day, t := b.today()
	if day == b.day {
		return nil
	}
	wasSpent := b.day != "" && b.rec.Spent
	if b.day == "" {
		// First load since start: was yesterday spent (and the channel
		// left down by an earlier run)?
		y := t.AddDate(0, 0, -1).Format(time.DateOnly)
		if rec, err := b.load(ctx, y); err == nil && rec.Spent {
			wasSpent = true
		}
	}
	rec, err := b.load(ctx, day)
	if err != nil {
		return err
	}
	b.day, b.rec = day, rec
	if wasSpent && !rec.Spent {
		b.signal(relay.HealthSignal{Down: false, Reason: "SMS daily budget renewed"})
	}
	return nil
}

func (b *budget) load(ctx context.Context, day string) (dayRecord, error) {
	var rec dayRecord
	raw, ok, err := b.state.Get(ctx, budgetKey(day))
	if err != nil {
		return rec, relay.Errorf(relay.KindTemporary, "sms: read budget: %w", err)
	}
	if ok {
		if err := json.Unmarshal(raw, &rec); err != nil {
			return rec, relay.Errorf(relay.KindTemporary, "sms: stored budget %s is unreadable: %w", day, err)
		}
	}
	return rec, nil
}

func (b *budget) save(ctx context.Context) error {
	raw, _ := json.Marshal(b.rec)
	if err := b.state.Put(ctx, budgetKey(b.day), raw); err != nil {
		return relay.Errorf(relay.KindTemporary, "sms: save budget: %w", err)
	}
	return nil
}

// spentError is the error while the day's budget is spent. KindAuth makes
// the dispatcher mark the channel down; RetryAfter says until midnight.
func (b *budget) spentError(t time.Time) *relay.Error {
	e := relay.Errorf(relay.KindAuth, "sms: SMS budget spent: %d/%d today", b.rec.Used, b.max)
	e.RetryAfter = b.nextMidnight(t).Sub(t)
	return e
}

// reservation is a charge that can be refunded.
type reservation struct {
	day     string
	contact string
	cost    int
}

// reserve charges cost units to contact for today, or returns why not.
func (b *budget) reserve(ctx context.Context, contact string, cost int) (*reservation, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.roll(ctx); err != nil {
		return nil, err
	}
	_, t := b.today()
	if b.rec.Spent {
		return nil, b.spentError(t)
	}
	if b.max > 0 && b.rec.Used+cost > b.max {
		b.rec.Spent = true
		if err := b.save(ctx); err != nil {
			b.rec.Spent = false
			return nil, err
		}
		b.signal(relay.HealthSignal{
			Down:   true,
			Reason: fmt.Sprintf("SMS daily budget spent (%d/%d)", b.rec.Used, b.max),
			Until:  b.nextMidnight(t),
			Notify: true,
		})
		return nil, b.spentError(t)
	}
	if b.perContact > 0 && b.rec.Contacts[contact]+cost > b.perContact {
		// This contact's share is used up; others may still get SMS, so
		// the channel is not blamed.
		return nil, relay.Errorf(relay.KindPermanent, "sms: daily SMS budget for this contact spent: %d/%d today",
			b.rec.Contacts[contact], b.perContact)
	}
	b.rec.Used += cost
	if b.perContact > 0 {
		if b.rec.Contacts == nil {
			b.rec.Contacts = map[string]int{}
		}
		b.rec.Contacts[contact] += cost
	}
	if err := b.save(ctx); err != nil {
		b.undo(contact, cost)
		return nil, err
	}
	return &reservation{day: b.day, contact: contact, cost: cost}, nil
}

// refund returns a reservation whose send surely did not go out.
func (b *budget) refund(ctx context.Context, r *reservation) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if r.day != b.day {
		return nil // the day has turned; yesterday's count no longer matters
	}
	b.undo(r.contact, r.cost)
	return b.save(ctx)
}

func (b *budget) undo(contact string, cost int) {
	b.rec.Used -= cost
	if n, ok := b.rec.Contacts[contact]; ok {
		if n <= cost {
			delete(b.rec.Contacts, contact)
		} else {
			b.rec.Contacts[contact] = n - cost
		}
	}
}

// check returns the spent error while today's budget is spent; it also
// rolls the day, which signals the channel up after midnight.
func (b *budget) check(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.roll(ctx); err != nil {
		return err
	}
	if b.rec.Spent || (b.max > 0 && b.rec.Used >= b.max) {
		_, t := b.today()
		return b.spentError(t)
	}
	return nil
}

// used reports today's count (for tests and status).
func (b *budget) used(ctx context.Context) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.roll(ctx); err != nil {
		return 0, err
	}
	return b.rec.Used, nil
}
