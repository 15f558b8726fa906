package daemon_test

import (
	"context"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relay-project/relay/config"
	"github.com/relay-project/relay/relay"
)

type failStart struct{}

func (failStart) Send(context.Context, *relay.Outgoing) (relay.Sent, error) {
	return relay.Sent{}, errors.New("not started")
}
func (failStart) Probe(context.Context) error { return relay.ErrNoProbe }
func (failStart) Close() error                { return nil }
func (failStart) Start(context.Context) error { return errors.New("session store locked") }

func init() {
	relay.Register(relay.Factory{Type: "testfailstart", NewConfig: func() any { return &struct{}{} },
		New: func(any, relay.Env) (relay.Adapter, error) { return failStart{}, nil }})
}

// TestChannelThatCannotStartIsDown: a channel whose Start fails is down
// with the reason; the daemon still serves.
func TestChannelThatCannotStartIsDown(t *testing.T) {
	n := startDaemon(t, "", `
[server]
listen = "127.0.0.1:0"
[store]
path = "%DIR%/relay.db"
[channels.broken]
type = "testfailstart"
[contacts.owner]
route = ["broken"]
broken = "x"
`)
	if s := n.channelState("broken"); s != "down" {
		t.Fatalf("channel whose Start failed is %q, want down", s)
	}
}

// TestCrossSiteFormPostRefused: without tokens only loopback is served,
// and a browser on loopback (or an SSH tunnel) must not be made to post a
// cross-site form (CSRF), nor be reached through DNS rebinding.
func TestCrossSiteFormPostRefused(t *testing.T) {
	primary, backup := newSink(t), newSink(t)
	n := startDaemon(t, "", twoHooks(primary.srv.URL, backup.srv.URL, ""))
	form := url.Values{"to": {"owner"}, "text": {"sent by evil.example"}}
	r := n.do("POST", "/v1/messages", "application/x-www-form-urlencoded", []byte(form.Encode()),
		"Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site")
	if r.status == 202 {
		t.Fatalf("cross-site form post accepted: %d %s", r.status, r.body)
	}
}

// TestAuthFailureNotifiesAdmin: notices go to delivery.admin when "a
// channel lost its login" (SPEC), here a webhook answering 401.
func TestAuthFailureNotifiesAdmin(t *testing.T) {
	primary, backup := newSink(t), newSink(t)
	primary.set("401")
	dir := t.TempDir()
	n := startDaemon(t, dir, twoHooks(primary.srv.URL, backup.srv.URL, ""))
	id := n.accept(`{"to": "owner", "text": "one"}`)
	n.waitStatus(id, "delivered", 10*time.Second)
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(filepath.Join(dir, "admin.log"))
		if strings.Contains(string(b), "primary") {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("no notice to delivery.admin after primary's credentials were refused (401)")
}

// TestCancelStopsFailover: a cancel while the primary hangs stops the
// failover to the backup.
func TestCancelStopsFailover(t *testing.T) {
	primary, backup := newSink(t), newSink(t)
	primary.set("hang")
	n := startDaemon(t, "", twoHooks(primary.srv.URL, backup.srv.URL, ""))
	id := n.accept(`{"to": "owner", "text": "never mind"}`)
	for i := 0; i < 200; i++ {
		primary.mu.Lock()
		h := primary.hits
		primary.mu.Unlock()
		if h > 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if r := n.do("POST", "/v1/messages/"+id+"/cancel", "", nil); r.status != 200 {
		t.Fatalf("cancel: %d %s", r.status, r.body)
	}
	time.Sleep(time.Second)
	if got := backup.texts(); len(got) > 0 {
		m := n.message(id)
		t.Fatalf("cancelled message still sent to backup: %v; API status %s, route %s", got, m.Status, routeOf(m.Deliveries[0]))
	}
}

var (
	liveMu   sync.Mutex
	live     int
	liveEnvs []relay.Env
)

type liveAdapter struct{ env relay.Env }

func (liveAdapter) Send(context.Context, *relay.Outgoing) (relay.Sent, error) {
	return relay.Sent{}, nil
}
func (liveAdapter) Probe(context.Context) error { return nil }
func (l liveAdapter) Start(context.Context) error {
	liveMu.Lock()
	live++
	liveEnvs = append(liveEnvs, l.env)
	liveMu.Unlock()
	return nil
}
func (liveAdapter) Close() error { liveMu.Lock(); live--; liveMu.Unlock(); return nil }

type liveConfig struct {
	Generation int `toml:"generation"`
}

func init() {
	relay.Register(relay.Factory{Type: "testlive", NewConfig: func() any { return &liveConfig{} },
		New: func(_ any, env relay.Env) (relay.Adapter, error) { return liveAdapter{env: env}, nil }})
}

// TestReloadKeepsAnUnchangedChannel: a SIGHUP that changes nothing about a
// channel keeps its adapter (no second Telegram poller, no second WhatsApp
// connection on one session); a changed channel's old adapter is closed
// before the new one starts, and its late health signals are ignored.
func TestReloadKeepsAnUnchangedChannel(t *testing.T) {
	cfgText := `
[server]
listen = "127.0.0.1:0"
[store]
path = "%DIR%/relay.db"
[channels.wa]
type = "testlive"
generation = 1
[contacts.owner]
route = ["wa"]
wa = "x"
`
	liveMu.Lock()
	live, liveEnvs = 0, nil // the counters are package-wide: -count=N reruns this test
	liveMu.Unlock()
	n := startDaemon(t, "", cfgText)
	n.waitChannel("wa", "up", 5*time.Second)
	reload := func(text string) {
		t.Helper()
		c, err := config.Parse("reload.toml", []byte(strings.ReplaceAll(text, "%DIR%", n.dir)))
		if err != nil {
			t.Fatal(err)
		}
		if err := n.d.Reload(c); err != nil {
			t.Fatal(err)
		}
	}
	counts := func() (int, int) {
		liveMu.Lock()
		defer liveMu.Unlock()
		return live, len(liveEnvs)
	}
	reload(cfgText)
	if l, starts := counts(); l != 1 || starts != 1 {
		t.Fatalf("unchanged reload: %d live instances, %d starts; want 1, 1", l, starts)
	}
	reload(strings.Replace(cfgText, "generation = 1", "generation = 2", 1))
	if l, starts := counts(); l != 1 || starts != 2 {
		t.Fatalf("changed reload: %d live instances, %d starts; want 1, 2", l, starts)
	}
	// The replaced instance reports what WhatsApp would tell it ("stream
	// replaced"): it must not take the new channel down.
	liveMu.Lock()
	old := liveEnvs[0]
	liveMu.Unlock()
	old.Signal(relay.HealthSignal{Down: true, Reason: "stream replaced"})
	if s := n.channelState("wa"); s == "down" {
		t.Fatal("a retired adapter's signal took the channel down")
	}
}

// TestReloadFixedChannelIsProbedAfresh: an operator fixes a channel that
// is down and reloads; the new adapter is probed at once, not left down
// with the old one's state until its next probes.
func TestReloadFixedChannelIsProbedAfresh(t *testing.T) {
	cfgText := `
[server]
listen = "127.0.0.1:0"
[store]
path = "%DIR%/relay.db"
[channels.primary]
type = "console"
file = "%DIR%/primary.log"
fail = true
health = { interval = "1h" }
[contacts.owner]
route = ["primary"]
primary = "owner"
`
	n := startDaemon(t, "", cfgText)
	n.waitChannel("primary", "down", 5*time.Second)
	c, err := config.Parse("reload.toml", []byte(strings.ReplaceAll(strings.Replace(cfgText, "fail = true", "fail = false", 1), "%DIR%", n.dir)))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.d.Reload(c); err != nil {
		t.Fatal(err)
	}
	n.waitChannel("primary", "up", 5*time.Second)
	id := n.accept(`{"to": "owner", "text": "fixed"}`)
	n.waitStatus(id, "delivered", 5*time.Second)
}
