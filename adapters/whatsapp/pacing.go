package whatsapp

import (
	"crypto/sha256"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/relay-project/relay/relay"
)

// pacer keeps the account's sending human-paced, because WhatsApp bans
// numbers that send like a bot (see Config):
//
//   - per recipient: one message every recipientInterval (default 3 s), so
//     the parts of a split text arrive like someone typing them;
//   - overall: sendsPerMinute (default 20) with a burst of 5, so a family
//     alert goes out at once but a flood does not;
//   - bulk: the same text to more than bulkRecipients (default 5) different
//     people within bulkWindow (default 10 min) is refused: that is temporary
//     ban 104, "you sent the same message to too many people".
//
// The pacer lives in memory: a restart forgets it, which errs on the side of
// sending.
type pacer struct {
	s   settings
	mu  sync.Mutex
	all *rate.Limiter
	// per holds one limiter per recipient JID; idle ones are dropped.
	per  map[string]*recipientLimiter
	bulk map[[sha256.Size]byte]map[string]time.Time
}

type recipientLimiter struct {
	lim  *rate.Limiter
	last time.Time
}

// overallBurst lets a short fan-out (one alert to a family) go at once.
const overallBurst = 5

func newPacer(s settings) *pacer {
	burst := min(overallBurst, s.sendsPerMinute)
	return &pacer{
		s:    s,
		all:  rate.NewLimiter(rate.Every(time.Minute/time.Duration(s.sendsPerMinute)), burst),
		per:  map[string]*recipientLimiter{},
		bulk: map[[sha256.Size]byte]map[string]time.Time{},
	}
}

// admit decides whether a send of text to recipient may go at now. It
// returns how long the caller must wait before sending and a cancel func
// that gives the slot back if the caller does not send after all; or a
// KindRateLimited error when the wait would be longer than maxWait.
func (p *pacer) admit(now time.Time, recipient, text string, maxWait time.Duration) (time.Duration, func(), error) {
	p.mu.Lock()
	defer p.mu.Unlock()

	key := sha256.Sum256([]byte(text))
	p.pruneBulk(now)
	seen := p.bulk[key]
	if _, again := seen[recipient]; !again && len(seen) >= p.s.bulkRecipients {
		oldest := now
		for _, t := range seen {
			if t.Before(oldest) {
				oldest = t
			}
		}
		return 0, nil, relay.RateLimited(oldest.Add(p.s.bulkWindow).Sub(now),
			"whatsapp: the same text already went to %d people in %v; not sending it to more, to protect the account from a ban",
			len(seen), p.s.bulkWindow)
	}

	rl := p.per[recipient]
	if rl == nil {
		p.pruneRecipients(now)
		rl = &recipientLimiter{lim: rate.NewLimiter(rate.Every(p.s.recipientInterval), 1)}
		p.per[recipient] = rl
	}
	r1 := rl.lim.ReserveN(now, 1)
	r2 := p.all.ReserveN(now, 1)
	wait := max(r1.DelayFrom(now), r2.DelayFrom(now))
	if wait > 0 && wait > maxWait {
		r1.CancelAt(now)
		r2.CancelAt(now)
		return 0, nil, relay.RateLimited(wait, "whatsapp: paced: next send possible in %v", wait.Round(time.Millisecond))
	}
	rl.last = now.Add(wait)
	if seen == nil {
		seen = map[string]time.Time{}
		p.bulk[key] = seen
	}
	prev, hadPrev := seen[recipient]
	seen[recipient] = now
	cancel := func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		r1.CancelAt(now)
		r2.CancelAt(now)
		if hadPrev {
			seen[recipient] = prev
		} else {
			delete(seen, recipient)
		}
	}
	return wait, cancel, nil
}

func (p *pacer) pruneBulk(now time.Time) {
	for key, seen := range p.bulk {
		for r, t := range seen {
			if now.Sub(t) >= p.s.bulkWindow {
				delete(seen, r)
			}
		}
		if len(seen) == 0 {
			delete(p.bulk, key)
		}
	}
}

// pruneRecipients drops limiters that have been idle long enough to be full
// again, so the map does not grow with every number ever messaged.
func (p *pacer) pruneRecipients(now time.Time) {
	if len(p.per) < 256 {
		return
	}
	for r, rl := range p.per {
		if now.Sub(rl.last) > p.s.recipientInterval {
			delete(p.per, r)
		}
	}
}

func (p *pacer) String() string {
	return fmt.Sprintf("1 per %v per recipient, %d/min overall, same text to at most %d people per %v",
		p.s.recipientInterval, p.s.sendsPerMinute, p.s.bulkRecipients, p.s.bulkWindow)
}
