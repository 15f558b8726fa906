// Package sms is the relay adapter for SMS through Twilio or Solapi
// (CoolSMS), with a daily budget that survives restarts.
//
// Addresses are phone numbers, normalised to E.164 (national numbers are
// read in default_region, KR by default). max_per_day counts what the
// provider bills: segments for Twilio, messages (SMS or LMS) for Solapi.
// When a send would pass it, the channel signals itself down until the
// next midnight in budget_timezone and sends fail with KindAuth.
package sms

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/relay-project/relay/relay"
)

func init() {
	relay.Register(relay.Factory{Type: "sms", NewConfig: func() any { return &Config{} }, New: New})
}

var (
	_ relay.Adapter          = (*Adapter)(nil)
	_ relay.TextLimiter      = (*Adapter)(nil)
	_ relay.ConfigValidator  = (*Config)(nil)
	_ relay.AddressValidator = (*Config)(nil)
)

// Text limits per provider, in runes. Twilio takes a Body of up to 1600
// characters and concatenates it itself (the budget counts its segments).
// Solapi's LMS takes 2000 bytes of EUC-KR: 1000 Hangul characters.
const (
	TwilioTextLimit = 1600
	SolapiTextLimit = 1000
)

// Adapter sends SMS through one provider account.
type Adapter struct {
	cfg    Config
	p      provider
	budget *budget // nil when there is no cap
	client *http.Client
	log    *slog.Logger
	once   sync.Once
}

// New builds an SMS adapter from a *Config. It does not touch the network.
func New(cfg any, env relay.Env) (relay.Adapter, error) {
	c, ok := cfg.(*Config)
	if !ok {
		return nil, fmt.Errorf("sms: config is %T, want *sms.Config", cfg)
	}
	if errs := c.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("sms: %w", errs[0])
	}
	a := &Adapter{cfg: *c, log: env.Logger}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	now := env.Now
	if now == nil {
		now = time.Now
	}
	a.client = &http.Client{
		// A redirect would resend credentials elsewhere: refuse it.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	base := strings.TrimRight(c.APIURL, "/")
	switch c.Provider {
	case ProviderTwilio:
		if base == "" {
			base = DefaultTwilioURL
		}
		from := c.From
		if e164, err := NormalizePhone(c.From, c.region()); err == nil {
			from = e164
		}
		a.p = &twilio{base: base, sid: c.AccountSID, token: c.AuthToken, from: from, client: a.client}
	case ProviderSolapi:
		if base == "" {
			base = DefaultSolapiURL
		}
		e164, _ := NormalizePhone(c.From, "KR") // checked by Validate
		from, _ := nationalKR(e164)
		a.p = &solapi{base: base, key: c.APIKey, secret: c.APISecret, from: from, client: a.client, now: now}
	}
	if c.MaxPerDay > 0 || c.MaxPerContactPerDay > 0 {
		if env.State == nil {
			return nil, fmt.Errorf("sms: max_per_day needs the channel state store")
		}
		loc, _ := c.location() // checked by Validate
		signal := env.Signal
		if signal == nil {
			signal = func(relay.HealthSignal) {}
		}
		a.budget = &budget{state: env.State, now: now, loc: loc, max: c.MaxPerDay,
			perContact: c.MaxPerContactPerDay, signal: signal}
	}
	return a, nil
}

// TextLimit implements relay.TextLimiter.
func (a *Adapter) TextLimit() int {
	if a.cfg.Provider == ProviderSolapi {
		return SolapiTextLimit
	}
	return TwilioTextLimit
}

// Send delivers out.Text to the phone number out.Address, charging the
// daily budget first.
func (a *Adapter) Send(ctx context.Context, out *relay.Outgoing) (relay.Sent, error) {
	to, err := a.cfg.recipient(out.Address)
	if err != nil {
		return relay.Sent{}, relay.Errorf(relay.KindPermanent, "sms: %v", err)
	}
	if strings.TrimSpace(out.Text) == "" {
		return relay.Sent{}, relay.Errorf(relay.KindInvalid, "sms: empty message")
	}
	var res *reservation
	if a.budget != nil {
		contact := out.Contact
		if contact == "" {
			contact = to
		}
		res, err = a.budget.reserve(ctx, contact, a.p.cost(out.Subject, out.Text))
		if err != nil {
			return relay.Sent{}, err
		}
	}
	id, err := a.p.send(ctx, to, out.Subject, out.Text)
	if err != nil {
		// Refund what surely did not go out; an ambiguous send may have
		// been billed, so it stays charged.
		if res != nil && relay.KindOf(err) != relay.KindAmbiguous {
			if rerr := a.budget.refund(context.WithoutCancel(ctx), res); rerr != nil {
				a.log.Warn("sms: budget refund not saved", "channel_error", rerr.Error())
			}
		}
		return relay.Sent{}, err
	}
	return relay.Sent{UpstreamID: id}, nil
}

// Probe fails while the day's budget is spent (and, after midnight,
// signals the channel up again); otherwise it makes the provider's
// cheapest authenticated call: Twilio's account resource, Solapi's
// balance (which must not be empty).
func (a *Adapter) Probe(ctx context.Context) error {
	if a.budget != nil {
		if err := a.budget.check(ctx); err != nil {
			return err
		}
	}
	return a.p.probe(ctx)
}

// Close releases idle connections. It may be called more than once.
func (a *Adapter) Close() error {
	a.once.Do(a.client.CloseIdleConnections)
	return nil
}
