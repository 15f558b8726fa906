package health

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relay-project/relay/relay"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// switchProbe fails while down is set.
type switchProbe struct {
	down  atomic.Bool
	calls atomic.Int64
}

func (p *switchProbe) Probe(context.Context) error {
	p.calls.Add(1)
	if p.down.Load() {
		return errors.New("upstream: 503")
	}
	return nil
}

func waitState(t *testing.T, m *Monitor, name string, want State) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if s, _ := m.Get(name); s.State == want {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	s, _ := m.Get(name)
	t.Fatalf("channel %s: state %s, want %s", name, s.State, want)
}

// TestProbesFallAndRise checks the first probe settles unknown, fall
// consecutive failures mark it down, rise successes bring it back, and
// every change is reported.
func TestProbesFallAndRise(t *testing.T) {
	p := &switchProbe{}
	var mu sync.Mutex
	var changes []Change
	m := New(Options{OnChange: func(c Change) { mu.Lock(); changes = append(changes, c); mu.Unlock() }})
	ctx := context.Background()
	m.Start(ctx, []Channel{{Name: "tg", Type: "telegram", Config: Config{Interval: 5 * time.Millisecond, Timeout: time.Second, Fall: 3, Rise: 2}, Probe: p.Probe}})
	defer m.Stop()
	waitState(t, m, "tg", Up)

	p.down.Store(true)
	before := p.calls.Load()
	waitState(t, m, "tg", Down)
	if n := p.calls.Load() - before; n < 3 {
		t.Fatalf("down after %d failed probes, want fall=3", n)
	}
	s, _ := m.Get("tg")
	if s.LastError != "upstream: 503" {
		t.Fatalf("last error %q", s.LastError)
	}
	p.down.Store(false)
	waitState(t, m, "tg", Up)

	mu.Lock()
	defer mu.Unlock()
	var seq []State
	for _, c := range changes {
		seq = append(seq, c.To)
	}
	if len(seq) != 3 || seq[0] != Up || seq[1] != Down || seq[2] != Up {
		t.Fatalf("changes %v, want [up down up]", seq)
	}
}

func TestFirstFailedProbeSettlesDown(t *testing.T) {
	p := &switchProbe{}
	p.down.Store(true)
	m := New(Options{})
	m.Start(context.Background(), []Channel{{Name: "x", Config: Config{Interval: time.Hour}, Probe: p.Probe}})
	defer m.Stop()
	waitState(t, m, "x", Down)
}

// TestHysteresisWithPassiveSignals drives state by send outcomes alone.
func TestHysteresisWithPassiveSignals(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	m := New(Options{Now: clock.Now})
	noProbe := func(context.Context) error { return relay.ErrNoProbe }
	m.Start(context.Background(), []Channel{{Name: "hook", Config: Config{Interval: time.Minute, Fall: 2, Rise: 2}, Probe: noProbe}})
	defer m.Stop()
	// Wait for the loop to learn there is no probe.
	for i := 0; i < 1000; i++ {
		if s, _ := m.Get("hook"); !s.Probed {
			break
		}
		time.Sleep(time.Millisecond)
	}
	fail := relay.Errorf(relay.KindTemporary, "503")
	m.ObserveSend("hook", fail)
	if s, _ := m.Get("hook"); s.State != Unknown {
		t.Fatalf("one failure of fall=2: %s", s.State)
	}
	m.ObserveSend("hook", relay.Errorf(relay.KindPermanent, "bad address"))
	if s, _ := m.Get("hook"); s.State != Unknown {
		t.Fatalf("a permanent error must not count: %s", s.State)
	}
	m.ObserveSend("hook", fail) // the second consecutive failure: a permanent error in between does not reset the streak
	if s, _ := m.Get("hook"); s.State != Down {
		t.Fatalf("fall reached: %s", s.State)
	}
	// Half-open: no trial before interval, exactly one trial after it.
	if m.Usable("hook") {
		t.Fatal("down channel usable before its interval")
	}
	clock.Add(time.Minute)
	if !m.Usable("hook") {
		t.Fatal("no trial send after the interval")
	}
	if m.Usable("hook") {
		t.Fatal("a second concurrent trial was let through")
	}
	m.ObserveSend("hook", nil)
	if s, _ := m.Get("hook"); s.State != Up {
		t.Fatalf("a successful trial send must bring a probe-less channel up: %s", s.State)
	}
}

func TestAuthErrorForcesDown(t *testing.T) {
	m := New(Options{})
	m.Start(context.Background(), []Channel{{Name: "k", Config: Config{Interval: time.Hour}, Probe: func(context.Context) error { return nil }}})
	defer m.Stop()
	waitState(t, m, "k", Up)
	m.ObserveSend("k", relay.Errorf(relay.KindAuth, "kakao: refresh token expired"))
	s, _ := m.Get("k")
	if s.State != Down || s.LastError != "kakao: refresh token expired" {
		t.Fatalf("after auth error: %+v", s)
	}
	if m.Usable("k") {
		t.Fatal("a probed channel that is down must not be usable")
	}
}

func TestSignalHoldsDownUntilCleared(t *testing.T) {
	var notified atomic.Int64
	m := New(Options{OnChange: func(c Change) {
		if c.Notify {
			notified.Add(1)
		}
	}})
	p := &switchProbe{}
	m.Start(context.Background(), []Channel{{Name: "wa", Config: Config{Interval: 5 * time.Millisecond, Rise: 1}, Probe: p.Probe}})
	defer m.Stop()
	waitState(t, m, "wa", Up)
	m.Signal("wa", relay.HealthSignal{Down: true, Reason: "WhatsApp was logged out", Notify: true})
	if s, _ := m.Get("wa"); s.State != Down || s.Reason != "WhatsApp was logged out" {
		t.Fatalf("after signal: %+v", s)
	}
	before := p.calls.Load()
	for p.calls.Load() < before+3 {
		time.Sleep(time.Millisecond)
	}
	if s, _ := m.Get("wa"); s.State != Down {
		t.Fatal("successful probes overruled the adapter's down signal")
	}
	m.Signal("wa", relay.HealthSignal{Down: false})
	waitState(t, m, "wa", Up)
	if notified.Load() != 1 {
		t.Fatalf("notify changes: %d", notified.Load())
	}
}

func TestReloadKeepsState(t *testing.T) {
	m := New(Options{})
	down := func(context.Context) error { return errors.New("refused") }
	m.Start(context.Background(), []Channel{{Name: "a", Type: "webhook", Config: Config{Interval: time.Hour}, Probe: down}})
	waitState(t, m, "a", Down)
	since := func() time.Time { s, _ := m.Get("a"); return s.Since }()
	m.Start(context.Background(), []Channel{{Name: "a", Type: "webhook", Config: Config{Interval: time.Hour}, Probe: down}, {Name: "b", Type: "console", Config: Config{Interval: time.Hour}, Probe: func(context.Context) error { return nil }}})
	defer m.Stop()
	s, _ := m.Get("a")
	if s.State != Down || !s.Since.Equal(since) {
		t.Fatalf("reload lost state: %+v", s)
	}
	waitState(t, m, "b", Up)
}

// A probe-less channel (webhook without health_url) that keeps failing with
// an auth error must still get only one half-open trial per interval.
func TestAuthFailureKeepsHalfOpenThrottle(t *testing.T) {
	now := time.Unix(1000, 0)
	m := New(Options{Now: func() time.Time { return now }})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m.Start(ctx, []Channel{{Name: "hook", Config: Config{Interval: 30 * time.Second},
		Probe: func(context.Context) error { return relay.ErrNoProbe }}})
	defer m.Stop()
	for i := 0; i < 100; i++ { // let the loop mark it probe-less
		if st, _ := m.Get("hook"); !st.Probed {
			break
		}
		time.Sleep(time.Millisecond)
	}
	auth := relay.Errorf(relay.KindAuth, "hook: 401")
	m.ObserveSend("hook", auth) // down
	now = now.Add(31 * time.Second)
	if !m.Usable("hook") {
		t.Fatal("no trial after the interval")
	}
	m.ObserveSend("hook", auth) // the trial fails: auth again
	if m.Usable("hook") {
		t.Fatal("a second trial right after a failed one: half-open throttle lost after an auth failure")
	}
}

// TestAuthFailureNotifiesAdmin: a channel that loses its login through a
// send error asks for a notice to the admin (SPEC: "a channel lost its
// login"), once.
func TestAuthFailureNotifiesAdmin(t *testing.T) {
	var notices atomic.Int64
	m := New(Options{OnChange: func(c Change) {
		if c.Notify && c.To == Down {
			notices.Add(1)
		}
	}})
	m.Start(context.Background(), []Channel{{Name: "tg", Config: Config{Interval: time.Hour}, Probe: func(context.Context) error { return nil }}})
	defer m.Stop()
	waitState(t, m, "tg", Up)
	m.ObserveSend("tg", relay.Errorf(relay.KindAuth, "telegram: 401 Unauthorized"))
	m.ObserveSend("tg", relay.Errorf(relay.KindAuth, "telegram: 401 Unauthorized"))
	if n := notices.Load(); n != 1 {
		t.Fatalf("%d notices, want 1", n)
	}
}
