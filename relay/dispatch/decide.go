package dispatch

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/relay-project/relay/relay"
)

// The decision table. One pass over a delivery's route, channel by
// channel, from the first (the primary) on every pass:
//
//	before a channel                     decision
//	-----------------------------------  ---------------------------------------------
//	TTL passed                           end expired; notice to delivery.admin (not for notices)
//	channel not configured (reload)      skip; counts as unavailable, not as refused
//	refused this recipient earlier       skip for good (permanent / invalid outcome)
//	ambiguous earlier, not idempotent    skip for good: never resend where it may have arrived
//	health down (probe, auth, signal)    skip; a probe-less channel gets a half-open trial
//	rate-limited until T                 T-now <= rate_limit_wait: wait, then send; else skip
//
//	send outcome                         decision
//	-----------------------------------  ---------------------------------------------
//	delivered                            end delivered on this channel
//	temporary                            blame channel (fall count); next channel at once
//	ambiguous                            blame channel; next channel at once (may show on both)
//	rate_limited (retry-after R)         block channel for R; R <= rate_limit_wait: wait, retry
//	                                     it once; else next channel
//	auth                                 mark channel down now; next channel
//	permanent / invalid                  do not blame channel; next channel; skip it for good
//
//	after the pass                       decision
//	-----------------------------------  ---------------------------------------------
//	every channel skipped for good       end failed
//	otherwise                            queued; next pass after backoff (retry_min·2^round,
//	                                     ≤ retry_max, jitter), at the latest at the TTL

// process runs one pass over a claimed delivery and settles it.
func (d *Dispatcher) process(parent context.Context, del *relay.Delivery) {
	ctx, untrack := d.track(parent, &deliveryRef{id: del.ID, messageID: del.MessageID})
	defer untrack()
	now := d.now()
	if !now.Before(del.ExpiresAt) {
		d.settle(ctx, del, relay.StateExpired, del.Channel, "expired before any channel took it", nil)
		d.noticeExpired(ctx, del)
		return
	}
	rt := d.rt.Load()
	hops := d.route(rt, del)
	done := skipForGood(del, rt)
	var lastErr string
	waited := map[string]bool{} // rate-limited channels already retried once in this pass
	for i := 0; i < len(hops); i++ {
		hop := hops[i]
		ch := rt.Channels[hop.Channel]
		switch {
		case ch == nil:
			lastErr = fmt.Sprintf("channel %s is not configured", hop.Channel)
			continue
		case done[hop.Channel]:
			continue
		}
		// The rate limit is checked before health: Usable may hand out
		// a half-open trial, which must then be used.
		if until := d.health.BlockedUntil(hop.Channel); until.After(d.now()) {
			wait := until.Sub(d.now())
			if wait > d.opt.RateLimitWait || !sleep(ctx, wait) {
				lastErr = fmt.Sprintf("%s is rate-limited for %s", hop.Channel, wait.Round(time.Second))
				continue
			}
		}
		if !d.health.Usable(hop.Channel) {
			if lastErr == "" {
				lastErr = fmt.Sprintf("%s is down", hop.Channel)
			}
			continue
		}
		if ctx.Err() != nil {
			d.stopped(ctx, del)
			return
		}
		attempt, err := d.send(ctx, del, ch, hop)
		if errors.Is(err, errStore) {
			// The store failed, not the channel: do not blame it, try
			// this delivery again later.
			d.log.Error("record attempt start", "delivery", del.ID, "err", err)
			d.requeue(ctx, del, err.Error())
			return
		}
		if ctx.Err() != nil && err != nil {
			// Stopping, or the message was cancelled: this send was cut
			// short, which is not the channel's fault. If the request may
			// have gone out the attempt is ambiguous; if it never left
			// (waiting for a slot or the rate cap) it is no attempt.
			if !errors.Is(err, errNotSent) {
				attempt.Outcome, attempt.Error = relay.OutcomeAmbiguous, "interrupted: relay stopped while sending"
				if cancelled(ctx) {
					attempt.Error = "interrupted: the message was cancelled while sending"
				}
				d.endAttempt(attempt)
			}
			d.stopped(ctx, del)
			return
		}
		kind := relay.KindOf(err)
		d.m.Attempts.WithLabelValues(hop.Channel, string(relay.OutcomeOf(kind))).Inc()
		if kind == 0 {
			d.health.ObserveSend(hop.Channel, nil)
			d.delivered(ctx, del, hops, hop.Channel, &attempt)
			return
		}
		d.health.ObserveSend(hop.Channel, err)
		lastErr = attempt.Error
		d.endAttempt(attempt)
		switch kind {
		case relay.KindRateLimited:
			ra := relay.RetryAfterOf(err)
			if ra <= 0 {
				ra = time.Second
			}
			d.health.Block(hop.Channel, d.now().Add(ra))
			if ra <= d.opt.RateLimitWait && !waited[hop.Channel] {
				waited[hop.Channel] = true
				i-- // the wait happens at the top of the loop
			}
		case relay.KindPermanent, relay.KindInvalid:
			done[hop.Channel] = true
		case relay.KindAmbiguous:
			if !ch.Idempotent {
				done[hop.Channel] = true
			}
		}
		d.log.Info("attempt failed", "delivery", del.ID, "channel", hop.Channel, "outcome", relay.OutcomeOf(kind), "err", attempt.Error)
	}
	if allDone(hops, done) {
		msg := "every channel refused this recipient"
		if lastErr != "" {
			msg += ": " + lastErr
		}
		if ch := ambiguousOn(del); ch != "" {
			msg += fmt.Sprintf(" (it may have arrived on %s)", ch)
		}
		d.settle(ctx, del, relay.StateFailed, "", msg, nil)
		d.noticeFailed(ctx, del, msg)
		return
	}
	d.requeue(ctx, del, lastErr)
}

// requeue puts a delivery back in the queue for its next pass, after the
// backoff of its round (at the latest at its TTL).
func (d *Dispatcher) requeue(ctx context.Context, del *relay.Delivery, lastErr string) {
	next := d.now().Add(d.backoff(del.Round))
	if next.After(del.ExpiresAt) {
		next = del.ExpiresAt
	}
	d.settleRetrying(ctx, relay.Settlement{DeliveryID: del.ID, State: relay.StateQueued, Round: del.Round + 1, NextAt: next, LastError: lastErr, At: d.now()})
}

// stopped ends a pass cut short: a cancelled message needs nothing more
// (the store has it cancelled); when the daemon stops, the delivery goes
// back to the queue, due now.
func (d *Dispatcher) stopped(ctx context.Context, del *relay.Delivery) {
	if cancelled(ctx) {
		return
	}
	d.release(del)
}

// settleRetrying writes a settlement, retrying a failing store a few
// times: a delivery whose settlement is lost stays "sending" until the
// next start.
func (d *Dispatcher) settleRetrying(ctx context.Context, s relay.Settlement) error {
	var err error
	for try, wait := 0, 50*time.Millisecond; try < 4; try, wait = try+1, wait*4 {
		if err = d.store.Settle(context.WithoutCancel(ctx), s); err == nil || errors.Is(err, relay.ErrNotFound) {
			return err
		}
		if try < 3 {
			sleep(context.Background(), wait) // bounded: about 1s in all, only while the store fails
		}
	}
	d.log.Error("settle delivery", "delivery", s.DeliveryID, "state", s.State, "err", err)
	return err
}

// route returns the hops to try: the contact's current route when the
// contact still exists and the route was not pinned, else the snapshot
// taken at accept time.
func (d *Dispatcher) route(rt *Runtime, del *relay.Delivery) []relay.Hop {
	if del.Pinned || rt.Directory == nil {
		return del.Route
	}
	if _, ok := rt.Directory.Contacts[del.Contact]; !ok {
		return del.Route
	}
	hops, err := rt.Directory.Route(del.Contact, nil)
	if err != nil {
		return del.Route
	}
	return hops
}

// skipForGood returns the channels this delivery must not be sent on
// again: refused for this recipient, or ambiguous on a channel without an
// idempotency key.
func skipForGood(del *relay.Delivery, rt *Runtime) map[string]bool {
	done := map[string]bool{}
	for _, a := range del.Attempts {
		if a.At.Before(del.RetriedAt) {
			continue // an operator retried after this: a fresh start
		}
		switch a.Outcome {
		case relay.OutcomePermanent:
			done[a.Channel] = true
		case relay.OutcomeAmbiguous:
			if ch := rt.Channels[a.Channel]; ch == nil || !ch.Idempotent {
				done[a.Channel] = true
			}
		}
	}
	return done
}

func allDone(hops []relay.Hop, done map[string]bool) bool {
	for _, h := range hops {
		if !done[h.Channel] {
			return false
		}
	}
	return true
}

func ambiguousOn(del *relay.Delivery) string {
	var chans []string
	for _, a := range del.Attempts {
		if a.Outcome == relay.OutcomeAmbiguous {
			chans = append(chans, a.Channel)
		}
	}
	return strings.Join(chans, ", ")
}

// send splits the text to the channel's limit and sends every part within
// the attempt timeout, honouring the channel's concurrency and rate cap.
func (d *Dispatcher) send(ctx context.Context, del *relay.Delivery, ch *Channel, hop relay.Hop) (relay.Attempt, error) {
	a := relay.Attempt{DeliveryID: del.ID, Channel: ch.Name}
	// Wait for a slot on the channel and for its rate cap before the
	// attempt is recorded: a wait cut short sent nothing.
	select {
	case ch.sem <- struct{}{}:
		defer func() { <-ch.sem }()
	case <-ctx.Done():
		return a, fmt.Errorf("%s: waiting for a free slot: %w", ch.Name, errNotSent)
	}
	if ch.limiter != nil {
		if err := ch.limiter.Wait(ctx); err != nil {
			return a, fmt.Errorf("%s: waiting for the rate cap: %w", ch.Name, errNotSent)
		}
	}
	a.At = d.now()
	id, err := d.store.StartAttempt(context.WithoutCancel(ctx), a)
	if err != nil {
		return a, fmt.Errorf("%w: %w", errStore, err)
	}
	a.ID = id
	parts := relay.SplitText(del.Text, ch.TextLimit)
	var first string
	for i, text := range parts {
		if i > 0 && ch.limiter != nil {
			if err := ch.limiter.Wait(ctx); err != nil {
				err = relay.Errorf(relay.KindTemporary, "%s: rate cap: %w", ch.Name, err)
				a.Outcome, a.Error = relay.OutcomeTemporary, fmt.Sprintf("part %d/%d: %s", i+1, len(parts), err)
				return a, err
			}
		}
		sent, err := d.sendPart(ctx, ch, &relay.Outgoing{
			MessageID: del.MessageID, DeliveryID: del.ID, Contact: del.Contact, Address: hop.Address,
			Subject: del.Subject, Text: text, Priority: del.Priority, Part: i + 1, Parts: len(parts),
			CreatedAt: del.CreatedAt, Key: fmt.Sprintf("%s/%s/%d", del.ID, ch.Name, i+1),
		})
		if err != nil {
			a.Outcome = relay.OutcomeOf(relay.KindOf(err))
			a.Error = err.Error()
			if i > 0 {
				a.Error = fmt.Sprintf("part %d/%d: %s", i+1, len(parts), a.Error)
			}
			return a, err
		}
		if i == 0 {
			first = sent.UpstreamID
		}
	}
	a.Outcome, a.UpstreamID = relay.OutcomeDelivered, first
	return a, nil
}

func (d *Dispatcher) sendPart(ctx context.Context, ch *Channel, out *relay.Outgoing) (relay.Sent, error) {
	sctx, cancel := context.WithTimeout(ctx, d.opt.AttemptTimeout)
	defer cancel()
	sent, err := ch.Adapter.Send(sctx, out)
	if err != nil && relay.KindOf(err) == relay.KindAmbiguous && errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		err = fmt.Errorf("%s: no answer within %s: %w", ch.Name, d.opt.AttemptTimeout, err)
	}
	return sent, err
}

func (d *Dispatcher) endAttempt(a relay.Attempt) {
	if a.ID == 0 {
		return
	}
	if err := d.store.EndAttempt(context.Background(), a); err != nil {
		d.log.Error("record attempt", "delivery", a.DeliveryID, "err", err)
	}
}

// delivered settles a delivery as delivered and counts it.
func (d *Dispatcher) delivered(ctx context.Context, del *relay.Delivery, hops []relay.Hop, channel string, a *relay.Attempt) {
	d.settle(ctx, del, relay.StateDelivered, channel, "", a)
	d.m.Latency.Observe(d.now().Sub(del.CreatedAt).Seconds())
	if len(hops) > 0 && hops[0].Channel != channel {
		d.m.Failovers.WithLabelValues(hops[0].Channel, channel).Inc()
	}
}

func (d *Dispatcher) settle(ctx context.Context, del *relay.Delivery, state relay.DeliveryState, channel, lastErr string, a *relay.Attempt) {
	s := relay.Settlement{DeliveryID: del.ID, State: state, Channel: channel, Round: del.Round, LastError: lastErr, Attempt: a, At: d.now()}
	if err := d.settleRetrying(ctx, s); err != nil {
		return
	}
	d.m.Deliveries.WithLabelValues(channel, string(state)).Inc()
	if d.opt.OnEnd != nil && state.Final() {
		if state == relay.StateFailed {
			del.LastError = lastErr // why every channel refused
		}
		d.opt.OnEnd(del, state)
	}
}

// errNotSent marks a send that was cut short before anything left;
// errStore a store failure around a send.
var (
	errNotSent = errors.New("not sent")
	errStore   = errors.New("store")
)

// release puts a delivery back in the queue, due now, without counting a
// pass: the daemon is stopping.
func (d *Dispatcher) release(del *relay.Delivery) {
	s := relay.Settlement{DeliveryID: del.ID, State: relay.StateQueued, Round: del.Round, NextAt: d.now(), LastError: del.LastError, At: d.now()}
	if err := d.store.Settle(context.Background(), s); err != nil {
		d.log.Error("release delivery", "delivery", del.ID, "err", err)
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
