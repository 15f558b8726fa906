package daemon_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relay-project/relay/config"
	"github.com/relay-project/relay/relay"
	"github.com/relay-project/relay/relay/store/sqlite"
)

// TestHealthDownAndFailback: probes take the primary down when its
// health_url fails, deliveries skip it (no attempt), and once probes
// succeed `rise` times it is up and new deliveries use it first again.
func TestHealthDownAndFailback(t *testing.T) {
	primary, backup := newSink(t), newSink(t)
	cfg := strings.Replace(twoHooks(primary.srv.URL, backup.srv.URL, ""),
		`url = "`+primary.srv.URL+`"
health = { interval = "1h", fall = 3, rise = 1 }`,
		`url = "`+primary.srv.URL+`"
health_url = "`+primary.srv.URL+`/healthz"
health = { interval = "30ms", timeout = "1s", fall = 2, rise = 2 }`, 1)
	n := startDaemon(t, "", cfg)
	n.waitChannel("primary", "up", 5*time.Second)

	primary.set("500")
	n.waitChannel("primary", "down", 5*time.Second)
	id := n.accept(`{"to": "owner", "text": "during the outage"}`)
	m := n.waitStatus(id, "delivered", 5*time.Second)
	if routeOf(m.Deliveries[0]) != "backup:delivered" {
		t.Fatalf("a down channel was tried: %s", routeOf(m.Deliveries[0]))
	}

	primary.set("ok")
	n.waitChannel("primary", "up", 5*time.Second)
	id = n.accept(`{"to": "owner", "text": "after recovery"}`)
	m = n.waitStatus(id, "delivered", 5*time.Second)
	if m.Deliveries[0].Channel != "primary" {
		t.Fatalf("no failback: delivered on %s", m.Deliveries[0].Channel)
	}
}

// TestQueuedWhileAllDownDeliveredOnRecovery: with every channel down the
// message is accepted (202) and waits; when a channel comes back the
// waiting delivery goes out without waiting for its backoff.
func TestQueuedWhileAllDownDeliveredOnRecovery(t *testing.T) {
	primary, backup := newSink(t), newSink(t)
	primary.set("500")
	backup.set("500")
	cfg := twoHooks(primary.srv.URL, backup.srv.URL, "")
	cfg = strings.Replace(cfg, `retry_max = "200ms"`, `retry_max = "1h"`, 1)
	cfg = strings.Replace(cfg, `retry_min = "50ms"`, `retry_min = "1h"`, 1)
	cfg = strings.Replace(cfg, `url = "`+primary.srv.URL+`"
health = { interval = "1h", fall = 3, rise = 1 }`, `url = "`+primary.srv.URL+`"
health_url = "`+primary.srv.URL+`/healthz"
health = { interval = "30ms", fall = 1, rise = 1 }`, 1)
	n := startDaemon(t, "", cfg)
	n.waitChannel("primary", "down", 5*time.Second)
	id := n.accept(`{"to": "owner", "text": "hold on"}`)
	// The backup is tried and fails; the delivery goes back to the queue
	// (it is "sending" only while the attempt runs) and waits.
	deadline := time.Now().Add(5 * time.Second)
	for {
		m := n.message(id)
		if len(m.Deliveries[0].Attempts) > 0 && m.Status == "queued" {
			break
		}
		if m.Status != "queued" && m.Status != "sending" {
			t.Fatalf("status %s while every channel is down", m.Status)
		}
		if time.Now().After(deadline) {
			t.Fatalf("not back in the queue after the backup failed: %s, %d attempts", m.Status, len(m.Deliveries[0].Attempts))
		}
		time.Sleep(5 * time.Millisecond)
	}
	primary.set("ok")
	m := n.waitStatus(id, "delivered", 5*time.Second) // not an hour: recovery wakes the queue
	if m.Deliveries[0].Channel != "primary" {
		t.Fatalf("delivered on %s", m.Deliveries[0].Channel)
	}
}

// TestRestartRecovery: deliveries left "sending" by a crash are picked up
// at the next start, their interrupted attempt recorded as ambiguous; a
// channel that deduplicates (webhook: delivery_id) gets it again.
func TestRestartRecovery(t *testing.T) {
	primary, backup := newSink(t), newSink(t)
	dir := t.TempDir()
	cfgText := strings.ReplaceAll(twoHooks(primary.srv.URL, backup.srv.URL, ""), "%DIR%", dir)
	path := filepath.Join(dir, "relay.toml")
	os.WriteFile(path, []byte(cfgText), 0o600)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	// Simulate the crash: a message accepted and claimed, an attempt
	// started, and the process gone.
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "relay.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	dir2 := cfg.Directory()
	hops, _ := dir2.Route("owner", nil)
	m := &relay.Message{ID: "01JCRASHMSG0000000000000000", Kind: relay.KindMessage, Text: "in flight at the crash", CreatedAt: now, ExpiresAt: now.Add(time.Hour),
		Deliveries: []*relay.Delivery{{ID: "01JCRASHDEL0000000000000000", MessageID: "01JCRASHMSG0000000000000000", Contact: "owner", Route: hops,
			State: relay.StateQueued, NextAt: now, ExpiresAt: now.Add(time.Hour), Kind: relay.KindMessage, Text: "in flight at the crash", CreatedAt: now}}}
	if _, _, err := st.Submit(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if ds, err := st.Claim(context.Background(), now, 10); err != nil || len(ds) != 1 {
		t.Fatalf("claim: %v %v", ds, err)
	}
	if _, err := st.StartAttempt(context.Background(), relay.Attempt{DeliveryID: "01JCRASHDEL0000000000000000", Channel: "primary", At: now}); err != nil {
		t.Fatal(err)
	}
	st.Close()

	n := startDaemon(t, dir, cfgText)
	got := n.waitStatus("01JCRASHMSG0000000000000000", "delivered", 10*time.Second)
	d := got.Deliveries[0]
	if !strings.HasPrefix(routeOf(d), "primary:ambiguous primary:delivered") {
		t.Fatalf("route after restart: %s", routeOf(d))
	}
	if !strings.Contains(d.Attempts[0].Error, "interrupted") {
		t.Fatalf("interrupted attempt error %q", d.Attempts[0].Error)
	}
}

// TestShutdownDrainsInFlight: stopping lets a send in flight finish (it
// is delivered, not failed), stops accepting, and Run returns nil.
func TestShutdownDrainsInFlight(t *testing.T) {
	primary, backup := newSink(t), newSink(t)
	primary.set("hang")
	cfg := strings.Replace(twoHooks(primary.srv.URL, backup.srv.URL, ""), `attempt_timeout = "300ms"`, `attempt_timeout = "5s"`, 1)
	n := startDaemon(t, "", cfg)
	id := n.accept(`{"to": "owner", "text": "finish me"}`)
	deadline := time.Now().Add(5 * time.Second)
	for {
		primary.mu.Lock()
		hits := primary.hits
		primary.mu.Unlock()
		if hits > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("send never started")
		}
		time.Sleep(5 * time.Millisecond)
	}
	base := n.base
	stopped := make(chan error, 1)
	go func() { stopped <- n.stop() }()
	time.Sleep(100 * time.Millisecond)
	primary.set("ok")
	primary.unhang() // the hanging request now answers 200
	if err := <-stopped; err != nil {
		t.Fatalf("Run returned %v after a clean stop", err)
	}
	if _, err := httpGet(base + "/healthz"); err == nil {
		t.Fatal("still serving after stop")
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(n.dir, "relay.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m, err := st.Message(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if s := m.Status(); s != "delivered" {
		t.Fatalf("in-flight send after drain: %s", s)
	}
}

// TestReload: a new configuration changes routes and channels; queued
// messages survive and use the new route; an invalid configuration is
// refused and the old one stays.
func TestReload(t *testing.T) {
	primary, backup := newSink(t), newSink(t)
	primary.set("500")
	backup.set("500")
	cfg := strings.Replace(twoHooks(primary.srv.URL, backup.srv.URL, ""), `retry_max = "200ms"`, `retry_max = "100ms"`, 1)
	n := startDaemon(t, "", cfg)
	id := n.accept(`{"to": "owner", "text": "survive the reload"}`)
	third := newSink(t)
	newCfg := strings.Replace(cfg, `[contacts.owner]
route = ["primary", "backup"]`, fmt.Sprintf(`[channels.third]
type = "webhook"
url = "%s"
[contacts.owner]
third = "owner-3"
route = ["third", "primary", "backup"]`, third.srv.URL), 1)
	newCfg = strings.ReplaceAll(newCfg, "%DIR%", n.dir)
	c, err := config.Parse("reload.toml", []byte(newCfg))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.d.Reload(c); err != nil {
		t.Fatal(err)
	}
	m := n.waitStatus(id, "delivered", 10*time.Second)
	if m.Deliveries[0].Channel != "third" {
		t.Fatalf("after reload delivered on %s", m.Deliveries[0].Channel)
	}
	if got := third.texts(); len(got) != 1 || got[0] != "survive the reload" {
		t.Fatalf("third got %v", got)
	}
	// A reload whose adapters cannot be built keeps the old config.
	bad := *c
	bad.Channels = map[string]*config.Channel{"x": {Name: "x", Type: "nope"}}
	bad.ChannelOrder = []string{"x"}
	if err := n.d.Reload(&bad); err == nil {
		t.Fatal("a broken config was applied")
	}
	if n.channelState("third") == "" {
		t.Fatal("old channels lost after a refused reload")
	}
}
