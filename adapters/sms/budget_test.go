package sms

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/relay-project/relay/adapters/adaptertest"
	"github.com/relay-project/relay/relay"
)

var seoul = func() *time.Location {
	loc, err := time.LoadLocation("Asia/Seoul")
	if err != nil {
		return nil
	}
	return loc
}()

func budgetConfig(f *fakeSMS, url string, max int) Config {
	cfg := twilioConfig(f, url)
	cfg.MaxPerDay = max
	cfg.BudgetTimezone = "Asia/Seoul"
	return cfg
}

func send(a *Adapter, contact, text string) error {
	_, err := a.Send(context.Background(), &relay.Outgoing{Contact: contact, Address: "010-1234-5678", Text: text})
	return err
}

func TestBudgetSpentMarksDownUntilMidnightAndSurvivesRestart(t *testing.T) {
	if seoul == nil {
		t.Skip("no tzdata")
	}
	f, srv := startFake(t, adaptertest.Up)
	env := newTestEnv(time.Date(2026, 3, 5, 21, 0, 0, 0, seoul))
	a := build(t, budgetConfig(f, srv.URL, 3), env.env())
	for i := range 3 {
		if err := send(a, "owner", "hello"); err != nil {
			t.Fatalf("send %d within budget: %v", i+1, err)
		}
	}
	err := send(a, "owner", "hello")
	if relay.KindOf(err) != relay.KindAuth || !strings.Contains(err.Error(), "SMS budget spent: 3/3 today") {
		t.Fatalf("4th send = %v (kind %v), want auth 'SMS budget spent: 3/3 today'", err, relay.KindOf(err))
	}
	if ra := relay.RetryAfterOf(err); ra != 3*time.Hour {
		t.Errorf("retry after %v, want 3h (until midnight in Seoul)", ra)
	}
	if f.delivered() != 3 {
		t.Fatalf("provider got %d sends, want 3", f.delivered())
	}
	sigs := env.signals()
	if len(sigs) != 1 || !sigs[0].Down || !sigs[0].Notify || sigs[0].Reason != "SMS daily budget spent (3/3)" ||
		!sigs[0].Until.Equal(time.Date(2026, 3, 6, 0, 0, 0, 0, seoul)) {
		t.Fatalf("signals = %+v, want one Down until midnight with notice", sigs)
	}
	if err := a.Probe(context.Background()); relay.KindOf(err) != relay.KindAuth || !strings.Contains(err.Error(), "3/3") {
		t.Fatalf("Probe while spent = %v", err)
	}
	if _, ok, _ := env.state.Get(context.Background(), "budget:2026-03-05"); !ok {
		t.Fatal("budget not stored under budget:2026-03-05")
	}

	// A restart with the same store keeps the count: nothing more goes out.
	a.Close()
	b := build(t, budgetConfig(f, srv.URL, 3), env.env())
	if err := send(b, "owner", "again"); relay.KindOf(err) != relay.KindAuth {
		t.Fatalf("send after restart = %v, want the budget error", err)
	}
	if f.delivered() != 3 {
		t.Fatalf("provider got %d sends after restart, want 3", f.delivered())
	}

	// After midnight the next probe brings the channel back.
	env.set(time.Date(2026, 3, 6, 0, 0, 1, 0, seoul))
	if err := b.Probe(context.Background()); err != nil {
		t.Fatalf("Probe on the new day: %v", err)
	}
	sigs = env.signals()
	if last := sigs[len(sigs)-1]; last.Down {
		t.Fatalf("no up signal after midnight: %+v", sigs)
	}
	if err := send(b, "owner", "new day"); err != nil {
		t.Fatalf("send on the new day: %v", err)
	}
}

func TestBudgetUpSignalAfterRestartOnNewDay(t *testing.T) {
	if seoul == nil {
		t.Skip("no tzdata")
	}
	f, srv := startFake(t, adaptertest.Up)
	env := newTestEnv(time.Date(2026, 3, 5, 23, 0, 0, 0, seoul))
	a := build(t, budgetConfig(f, srv.URL, 1), env.env())
	send(a, "owner", "one")
	if err := send(a, "owner", "two"); relay.KindOf(err) != relay.KindAuth {
		t.Fatalf("want spent, got %v", err)
	}
	a.Close()
	env.set(time.Date(2026, 3, 6, 8, 0, 0, 0, seoul))
	b := build(t, budgetConfig(f, srv.URL, 1), env.env())
	if err := b.Probe(context.Background()); err != nil {
		t.Fatal(err)
	}
	sigs := env.signals()
	if len(sigs) != 2 || sigs[1].Down {
		t.Fatalf("signals = %+v, want down then up", sigs)
	}
}

func TestBudgetCountsSegments(t *testing.T) {
	f, srv := startFake(t, adaptertest.Up)
	env := newTestEnv(time.Now())
	a := build(t, budgetConfig(f, srv.URL, 5), env.env())
	if err := send(a, "owner", strings.Repeat("가", 71)); err != nil { // UCS-2: 2 segments
		t.Fatal(err)
	}
	if n, _ := a.budget.used(context.Background()); n != 2 {
		t.Fatalf("used = %d, want 2 segments", n)
	}
	if err := send(a, "owner", strings.Repeat("a", 400)); err != nil { // GSM-7: 3 segments, 2+3 = 5 fits
		t.Fatalf("send filling the budget exactly: %v", err)
	}
	if n, _ := a.budget.used(context.Background()); n != 5 {
		t.Fatalf("used = %d, want 5", n)
	}
	if err := send(a, "owner", "x"); relay.KindOf(err) != relay.KindAuth {
		t.Fatalf("send over budget = %v", err)
	}
}

func TestBudgetRefundsRefusedSendsButNotAmbiguousOnes(t *testing.T) {
	f, srv := startFake(t, adaptertest.Up)
	env := newTestEnv(time.Now())
	a := build(t, budgetConfig(f, srv.URL, 10), env.env())
	f.setNext(400, string(readTestdata(t, "twilio_400_21211.json")))
	if err := send(a, "owner", "hi"); relay.KindOf(err) != relay.KindPermanent {
		t.Fatalf("want permanent, got %v", err)
	}
	if n, _ := a.budget.used(context.Background()); n != 0 {
		t.Fatalf("used = %d after a refused send, want 0", n)
	}

	h, hsrv := startFake(t, adaptertest.Hanging)
	hang := build(t, budgetConfig(h, hsrv.URL, 10), env.env())
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := hang.Send(ctx, &relay.Outgoing{Contact: "owner", Address: "01012345678", Text: "hi"})
	if relay.KindOf(err) != relay.KindAmbiguous {
		t.Fatalf("hanging send = %v, want ambiguous", err)
	}
	if n, _ := hang.budget.used(context.Background()); n != 1 {
		t.Fatalf("used = %d after an ambiguous send, want 1 (it may have been billed)", n)
	}
}

func TestBudgetPerContact(t *testing.T) {
	f, srv := startFake(t, adaptertest.Up)
	env := newTestEnv(time.Now())
	cfg := twilioConfig(f, srv.URL)
	cfg.MaxPerContactPerDay = 1
	a := build(t, cfg, env.env())
	if err := send(a, "mom", "hi"); err != nil {
		t.Fatal(err)
	}
	if err := send(a, "mom", "again"); relay.KindOf(err) != relay.KindPermanent {
		t.Fatalf("second send to mom = %v, want permanent", err)
	}
	if err := send(a, "owner", "hi"); err != nil {
		t.Fatalf("another contact is refused: %v", err)
	}
	if len(env.signals()) != 0 {
		t.Fatalf("per-contact cap signalled the channel: %+v", env.signals())
	}
}

func TestBudgetStoreFailureSendsNothing(t *testing.T) {
	f, srv := startFake(t, adaptertest.Up)
	env := newTestEnv(time.Now())
	env.state.fail = true
	a := build(t, budgetConfig(f, srv.URL, 10), env.env())
	if err := send(a, "owner", "hi"); relay.KindOf(err) != relay.KindTemporary {
		t.Fatalf("send with a broken store = %v, want temporary", err)
	}
	if f.delivered() != 0 {
		t.Fatal("sent without recording the cost")
	}
}

func TestBudgetDayInConfiguredZone(t *testing.T) {
	if seoul == nil {
		t.Skip("no tzdata")
	}
	f, srv := startFake(t, adaptertest.Up)
	env := newTestEnv(time.Date(2026, 1, 1, 15, 30, 0, 0, time.UTC)) // 00:30 on 2 Jan in Seoul
	a := build(t, budgetConfig(f, srv.URL, 10), env.env())
	if err := send(a, "owner", "hi"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := env.state.Get(context.Background(), "budget:2026-01-02"); !ok {
		t.Fatalf("budget not kept under Seoul's date: %v", env.state.m)
	}
}

func TestConfigValidate(t *testing.T) {
	tw := Config{Provider: "twilio", AccountSID: "AC1", AuthToken: "t", From: "+15005550006"}
	so := Config{Provider: "solapi", APIKey: "k", APISecretFile: "/run/s", From: "010-1234-5678"}
	mod := func(c Config, f func(*Config)) Config { f(&c); return c }
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"twilio ok", tw, ""},
		{"solapi ok", so, ""},
		{"alphanumeric sender", mod(tw, func(c *Config) { c.From = "Shop24" }), ""},
		{"no provider", Config{}, "provider:"},
		{"bad provider", mod(tw, func(c *Config) { c.Provider = "nexmo" }), "provider:"},
		{"no sid", mod(tw, func(c *Config) { c.AccountSID = "" }), "account_sid:"},
		{"no token", mod(tw, func(c *Config) { c.AuthToken = "" }), "auth_token:"},
		{"solapi key on twilio", mod(tw, func(c *Config) { c.APIKey = "k" }), "api_key:"},
		{"no secret", mod(so, func(c *Config) { c.APISecretFile = "" }), "api_secret:"},
		{"solapi foreign sender", mod(so, func(c *Config) { c.From = "+14155552671" }), "from:"},
		{"no from", mod(tw, func(c *Config) { c.From = "" }), "from:"},
		{"negative budget", mod(tw, func(c *Config) { c.MaxPerDay = -1 }), "max_per_day:"},
		{"bad region", mod(tw, func(c *Config) { c.DefaultRegion = "XX" }), "default_region:"},
		{"bad zone", mod(tw, func(c *Config) { c.BudgetTimezone = "Mars/Base" }), "budget_timezone:"},
		{"bad url", mod(tw, func(c *Config) { c.APIURL = "api.twilio.com" }), "api_url:"},
	}
	for _, c := range cases {
		errs := c.cfg.Validate()
		if c.want == "" {
			if len(errs) > 0 {
				t.Errorf("%s: %v", c.name, errs)
			}
			continue
		}
		found := false
		for _, e := range errs {
			found = found || strings.HasPrefix(e.Error(), c.want)
		}
		if !found {
			t.Errorf("%s: errors %v, want one starting %q", c.name, errs, c.want)
		}
	}
	if err := so.ValidateAddress("010-1234-5678"); err != nil {
		t.Errorf("solapi ValidateAddress: %v", err)
	}
	if err := so.ValidateAddress("+1 415 555 2671"); err == nil {
		t.Error("solapi accepted a US number")
	}
	if err := tw.ValidateAddress("+1 415 555 2671"); err != nil {
		t.Errorf("twilio ValidateAddress: %v", err)
	}
}
