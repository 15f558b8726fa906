package kakao

import (
	"github.com/relay-project/relay/relay"
)

// apply records what a verdict means for the channel and returns its error.
func (a *Adapter) apply(v verdict, addr string) error {
	if v.err == nil {
		a.recovered()
		return nil
	}
	switch v.effect {
	case effectQuotaSpent:
		a.mu.Lock()
		a.quotaUntil, a.quotaErr = v.until, v.err
		a.mu.Unlock()
		a.signalDown(downQuota, relay.HealthSignal{
			Down: true, Until: v.until, Notify: true,
			Reason: "Kakao daily message quota spent: sending resumes at 00:00 KST",
		})
	case effectRecipientQuota:
		a.mu.Lock()
		a.rcptUntil[addr] = v.until
		a.mu.Unlock()
	case effectConsentMissing:
		a.signalDown(downConsent, relay.HealthSignal{Down: true, Notify: true,
			Reason: "Kakao consent missing: " + v.scopes + ": run relay kakao login and agree to it"})
	case effectAppRefused:
		a.signalDown(downConsent, relay.HealthSignal{Down: true, Notify: true,
			Reason: "Kakao refused the app (" + v.err.Msg + "): check the app on developers.kakao.com"})
	case effectLoginNeeded:
		a.loginLost(v.err)
	}
	return v.err
}

// quotaBlock returns the remembered quota error while a daily quota (the
// channel's, or addr's when addr is not empty) is spent, without calling
// Kakao.
func (a *Adapter) quotaBlock(addr string) error {
	now := a.env.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if now.Before(a.quotaUntil) {
		e := *a.quotaErr
		e.RetryAfter = a.quotaUntil.Sub(now)
		return &e
	}
	if until, ok := a.rcptUntil[addr]; ok {
		if now.Before(until) {
			return &relay.Error{Kind: relay.KindPermanent, RetryAfter: until.Sub(now),
				Msg: "kakao: recipient's daily quota spent until 00:00 KST"}
		}
		delete(a.rcptUntil, addr)
	}
	return nil
}

// signalDown signals the channel down for cause, once per cause.
func (a *Adapter) signalDown(cause downCause, s relay.HealthSignal) {
	a.sigMu.Lock()
	defer a.sigMu.Unlock()
	a.mu.Lock()
	same := a.down == cause
	a.down = cause
	a.mu.Unlock()
	if !same {
		a.log.Warn("kakao: channel down", "reason", s.Reason)
		a.env.Signal(s)
	}
}

// recovered clears a signalled down state that a working call disproves:
// consent (the send went through) or a quota whose day has passed.
func (a *Adapter) recovered() {
	a.sigMu.Lock()
	defer a.sigMu.Unlock()
	a.mu.Lock()
	clear := a.down == downConsent || (a.down == downQuota && !a.env.Now().Before(a.quotaUntil))
	if clear {
		a.down = upNow
	}
	a.mu.Unlock()
	if clear {
		a.log.Info("kakao: channel works again")
		a.env.Signal(relay.HealthSignal{Down: false})
	}
}
