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
func (d *Dispatcher) process(ctx context.Context, del *relay.Delivery) {
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
			d.release(del)
			return
		}
		attempt, err := d.send(ctx, del, ch, hop)
		if ctx.Err() != nil && err != nil {
			// Stopping: this send was cut short, which is not the
			// channel's fault. Back to the queue; the attempt stays
			// ambiguous because the request may have gone out.
			attempt.Outcome, attempt.Error = relay.OutcomeAmbiguous, "interrupted: relay stopped while sending"
			d.endAttempt(attempt)
			d.release(del)
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
	next := d.now().Add(d.backoff(del.Round))
	if next.After(del.ExpiresAt) {
		next = del.ExpiresAt
	}
	s := relay.Settlement{DeliveryID: del.ID, State: relay.StateQueued, Round: del.Round + 1, NextAt: next, LastError: lastErr, At: d.now()}
	if err := d.store.Settle(context.WithoutCancel(ctx), s); err != nil {
		d.log.Error("requeue delivery", "delivery", del.ID, "err", err)
	}
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
	a := relay.Attempt{DeliveryID: del.ID, Channel: ch.Name, At: d.now()}
	id, err := d.store.StartAttempt(context.WithoutCancel(ctx), a)
	if err != nil {
		a.Outcome, a.Error = relay.OutcomeTemporary, "store: "+err.Error()
		return a, relay.Errorf(relay.KindTemporary, "store: %w", err)
	}
	a.ID = id
	parts := relay.SplitText(del.Text, ch.TextLimit)
	var first string
	for i, text := range parts {
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
	select {
	case ch.sem <- struct{}{}:
		defer func() { <-ch.sem }()
	case <-ctx.Done():
		return relay.Sent{}, relay.Errorf(relay.KindTemporary, "%s: %w", ch.Name, ctx.Err())
	}
	if ch.limiter != nil {
		if err := ch.limiter.Wait(ctx); err != nil {
			return relay.Sent{}, relay.Errorf(relay.KindTemporary, "%s: rate cap: %w", ch.Name, err)
		}
	}
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
	if err := d.store.Settle(context.WithoutCancel(ctx), s); err != nil {
		d.log.Error("settle delivery", "delivery", del.ID, "state", state, "err", err)
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
