package config

import (
	"errors"
	"testing"
	"time"
)

// minimal is the smallest valid file used by several tests.
const minimal = `
[channels.tg]
type = "fake"
token = "t"

[contacts.mom]
route = ["tg"]
tg = "123"
`

func mustParse(t *testing.T, src string) *Config {
	t.Helper()
	cfg, err := Parse("relay.toml", []byte(src))
	if err != nil {
		t.Fatalf("Parse: unexpected problems:\n%v", err)
	}
	return cfg
}

func problemsOf(t *testing.T, src string) Problems {
	t.Helper()
	_, err := Parse("relay.toml", []byte(src))
	if err == nil {
		t.Fatalf("Parse: no problems, want some")
	}
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("Parse error is %T, want Problems: %v", err, err)
	}
	return ps
}

func TestDefaults(t *testing.T) {
	cfg := mustParse(t, minimal)
	if cfg.Path != "relay.toml" {
		t.Errorf("Path = %q", cfg.Path)
	}
	if cfg.Server.Listen != "127.0.0.1:8780" || len(cfg.Server.Tokens) != 0 || cfg.Server.ReadHeaderTimeout != 10*time.Second {
		t.Errorf("server = %+v", cfg.Server)
	}
	if cfg.Store.Path != "relay.db" || cfg.Store.DSN != "" || cfg.Store.Synchronous != "FULL" {
		t.Errorf("store = %+v", cfg.Store)
	}
	d := cfg.Delivery
	if d.TTL != 24*time.Hour || d.AttemptTimeout != 10*time.Second || d.RetryMin != 5*time.Second ||
		d.RetryMax != 5*time.Minute || d.RateLimitWait != 5*time.Second || d.ShutdownTimeout != 10*time.Second ||
		d.Workers != 16 || d.Admin != "" {
		t.Errorf("delivery = %+v", d)
	}
	in := cfg.Inbound
	if in.AutoReplyEvery != 24*time.Hour || in.MaxLength != 4000 || in.RatePerHour != 20 {
		t.Errorf("inbound = %+v", in)
	}
	ch := cfg.Channels["tg"]
	if ch == nil || ch.Name != "tg" || ch.Type != "fake" || ch.Concurrency != 4 || ch.MaxRate != 0 {
		t.Fatalf("channel = %+v", ch)
	}
	if ch.Health != (Health{Interval: 30 * time.Second, Timeout: 5 * time.Second, Fall: 3, Rise: 2}) {
		t.Errorf("health = %+v", ch.Health)
	}
	if s, ok := ch.Settings.(*fakeConfig); !ok || s.Token != "t" {
		t.Errorf("settings = %#v", ch.Settings)
	}
}
