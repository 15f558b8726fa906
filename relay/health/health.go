// Package health decides whether each channel is usable: active probes on
// an interval (faster while down), passive signals from real sends, events
// the adapter reports itself, and fall/rise hysteresis in HAProxy's words.
package health

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/relay-project/relay/relay"
)

// State is a channel's health.
type State string

// Health states. Unknown counts as usable.
const (
	Unknown State = "unknown"
	Up      State = "up"
	Down    State = "down"
)

// Config is a channel's `health = { interval, timeout, fall, rise }`.
type Config struct {
	Interval time.Duration
	Timeout  time.Duration
	Fall     int
	Rise     int
}

func (c Config) withDefaults() Config {
	if c.Interval <= 0 {
		c.Interval = 30 * time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Second
	}
	if c.Fall <= 0 {
		c.Fall = 3
	}
	if c.Rise <= 0 {
		c.Rise = 2
	}
	return c
}

// downInterval is the probe interval while a channel is down: faster, so
// that traffic returns to the primary soon after it recovers.
func (c Config) downInterval() time.Duration {
	d := c.Interval / 3
	if d < time.Second {
		d = min(time.Second, c.Interval)
	}
	return d
}

// Channel is what the monitor watches.
type Channel struct {
	Name   string
	Type   string
	Config Config
	// Probe is the adapter's Probe; it returns relay.ErrNoProbe when the
	// channel is judged by its sends alone.
	Probe func(ctx context.Context) error
	// Fresh says the channel's adapter is new (its settings changed on a
	// reload): what was known of the old one does not carry over, and the
	// first probe settles its state.
	Fresh bool
}

// Transition is one change of state, kept for the console's history strip.
type Transition struct {
	At     time.Time `json:"at"`
	State  State     `json:"state"`
	Reason string    `json:"reason,omitempty"`
}

// Status is one channel's health as the API shows it.
type Status struct {
	Name         string       `json:"name"`
	Type         string       `json:"type"`
	State        State        `json:"state"`
	Since        time.Time    `json:"since"`
	LastProbe    time.Time    `json:"last_probe,omitzero"`
	LastError    string       `json:"last_error,omitempty"`
	Reason       string       `json:"reason,omitempty"` // an adapter's own report: logged out, budget spent
	Until        time.Time    `json:"until,omitzero"`
	BlockedUntil time.Time    `json:"rate_limited_until,omitzero"`
	Probed       bool         `json:"probed"` // false for channels judged by sends alone
	History      []Transition `json:"-"`
}

// Change is reported to the monitor's OnChange callback.
type Change struct {
	Channel string
	From    State
	To      State
	Reason  string
	Notify  bool // the adapter asked for a notice to the admin
}

// Monitor tracks every channel's health. All methods are safe for
// concurrent use.
type Monitor struct {
	log      *slog.Logger
	now      func() time.Time
	onChange func(Change)

	mu       sync.Mutex
	channels map[string]*channel
	stop     context.CancelFunc
	wg       sync.WaitGroup
	poke     map[string]chan struct{}
}

type channel struct {
	Channel
	state      State
	since      time.Time
	lastProbe  time.Time
	lastErr    string
	okStreak   int
	failStreak int
	noProbe    bool

	signalDown   bool
	signalReason string
	signalUntil  time.Time

	trialAt       time.Time // half-open: when the next trial send may go
	trialInFlight bool
	blockedUntil  time.Time
	history       []Transition
}

// Options configure a Monitor.
type Options struct {
	Logger *slog.Logger
	Now    func() time.Time
	// OnChange is called, outside the monitor's lock, after every state
	// change.
	OnChange func(Change)
}

// New returns an idle monitor; Start begins probing.
func New(o Options) *Monitor {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.OnChange == nil {
		o.OnChange = func(Change) {}
	}
	return &Monitor{log: o.Logger, now: o.Now, onChange: o.OnChange, channels: map[string]*channel{}, poke: map[string]chan struct{}{}}
}

// Start (re)starts probing the given channels. State is kept for channels
// whose name and type are unchanged, so a reload does not forget that a
// channel is down; other channels start unknown. Start stops the probe
// loops of a previous Start first.
func (m *Monitor) Start(ctx context.Context, chans []Channel) {
	m.Stop()
	ctx, cancel := context.WithCancel(ctx)
	now := m.now()
	m.mu.Lock()
	m.stop = cancel
	old := m.channels
	m.channels = map[string]*channel{}
	m.poke = map[string]chan struct{}{}
	for _, c := range chans {
		c.Config = c.Config.withDefaults()
		ch := &channel{Channel: c, state: Unknown, since: now}
		if prev, ok := old[c.Name]; ok && prev.Type == c.Type && !c.Fresh {
			prev.Channel = c
			prev.noProbe = false
			ch = prev
		} else {
			ch.history = []Transition{{At: now, State: Unknown}}
		}
		m.channels[c.Name] = ch
		poke := make(chan struct{}, 1)
		m.poke[c.Name] = poke
		m.wg.Add(1)
		go m.loop(ctx, c.Name, poke)
	}
	m.mu.Unlock()
}

// Stop ends probing and waits for the probe loops.
func (m *Monitor) Stop() {
	m.mu.Lock()
	stop := m.stop
	m.stop = nil
	m.mu.Unlock()
	if stop != nil {
		stop()
	}
	m.wg.Wait()
}

func (m *Monitor) loop(ctx context.Context, name string, poke <-chan struct{}) {
	defer m.wg.Done()
	timer := time.NewTimer(0) // the first probe settles unknown at once
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-poke:
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		case <-timer.C:
		}
		next, ok := m.probeOnce(ctx, name)
		if !ok {
			return
		}
		timer.Reset(next)
	}
}

// probeOnce runs one probe and returns the delay to the next one; ok is
// false when the channel has no probe (or is gone).
func (m *Monitor) probeOnce(ctx context.Context, name string) (time.Duration, bool) {
	m.mu.Lock()
	ch, found := m.channels[name]
	if !found {
		m.mu.Unlock()
		return 0, false
	}
	cfg, probe := ch.Config, ch.Probe
	m.mu.Unlock()
	if probe == nil {
		m.markNoProbe(name)
		return 0, false
	}
	pctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	err := probe(pctx)
	cancel()
	if ctx.Err() != nil {
		return 0, false
	}
	if errors.Is(err, relay.ErrNoProbe) {
		m.markNoProbe(name)
		return 0, false
	}
	state := m.observe(name, err, true)
	if state == Down {
		return cfg.downInterval(), true
	}
	return cfg.Interval, true
}

func (m *Monitor) markNoProbe(name string) {
	m.mu.Lock()
	if ch, ok := m.channels[name]; ok {
		ch.noProbe = true
	}
	m.mu.Unlock()
}

// ObserveSend records the outcome of a real send (the passive signal). A
// nil error counts as a success; kinds that do not blame the channel
// (permanent, invalid, rate-limited) are ignored; auth marks the channel
// down at once.
func (m *Monitor) ObserveSend(name string, err error) {
	switch relay.KindOf(err) {
	case relay.KindPermanent, relay.KindInvalid, relay.KindRateLimited:
		m.endTrial(name)
		return
	case relay.KindAuth:
		// A channel that lost its login: the admin hears of it (SPEC).
		m.forceDown(name, err.Error(), true)
		return
	}
	m.observe(name, err, false)
}

func (m *Monitor) endTrial(name string) {
	m.mu.Lock()
	if ch, ok := m.channels[name]; ok && ch.trialInFlight {
		ch.trialInFlight = false
		ch.trialAt = m.now().Add(ch.Config.Interval)
	}
	m.mu.Unlock()
}

// observe applies one success or failure and returns the resulting state.
func (m *Monitor) observe(name string, err error, probe bool) State {
	now := m.now()
	m.mu.Lock()
	ch, ok := m.channels[name]
	if !ok {
		m.mu.Unlock()
		return Unknown
	}
	from := ch.state
	if probe {
		ch.lastProbe = now
	}
	if ch.trialInFlight {
		ch.trialInFlight = false
		ch.trialAt = now.Add(ch.Config.Interval)
	}
	var to State
	reason := ""
	if err == nil {
		ch.failStreak = 0
		ch.okStreak++
		to = from
		switch {
		case ch.signalDown && (ch.signalUntil.IsZero() || now.Before(ch.signalUntil)):
			// The adapter said it is down (logged out); a probe that
			// succeeds anyway does not overrule it.
		case from == Unknown:
			to = Up
		case from == Down && (ch.okStreak >= ch.Config.Rise || (ch.noProbe && !probe)):
			// A channel without a probe is brought back by one
			// successful trial send (half-open).
			to = Up
		}
		if to == Up {
			ch.signalDown = false
			ch.lastErr = ""
		}
	} else {
		ch.okStreak = 0
		ch.failStreak++
		ch.lastErr = err.Error()
		reason = ch.lastErr
		to = from
		switch {
		case from == Unknown && probe:
			to = Down
		case from != Down && ch.failStreak >= ch.Config.Fall:
			to = Down
		}
	}
	changed := m.setState(ch, to, reason, now)
	m.mu.Unlock()
	if changed {
		m.report(Change{Channel: name, From: from, To: to, Reason: reason})
	}
	return to
}

// setState changes the state under m.mu; it reports whether it changed.
func (m *Monitor) setState(ch *channel, to State, reason string, now time.Time) bool {
	if ch.state == to {
		return false
	}
	ch.state, ch.since = to, now
	if to == Down {
		ch.trialAt = now.Add(ch.Config.Interval)
		ch.okStreak = 0
	}
	ch.history = append(ch.history, Transition{At: now, State: to, Reason: reason})
	cut := 0
	for cut < len(ch.history)-1 && now.Sub(ch.history[cut+1].At) > 24*time.Hour {
		cut++
	}
	ch.history = ch.history[cut:]
	return true
}

func (m *Monitor) report(c Change) {
	lvl := slog.LevelInfo
	if c.To == Down {
		lvl = slog.LevelWarn
	}
	m.log.Log(context.Background(), lvl, "channel health changed", "channel", c.Channel, "from", c.From, "to", c.To, "reason", c.Reason)
	m.onChange(c)
}

// ForceDown marks a channel down at once (an authentication failure the
// adapter cannot repair, a channel that cannot start). Probes bring it
// back after `rise` successes.
func (m *Monitor) ForceDown(name, reason string) { m.forceDown(name, reason, false) }

func (m *Monitor) forceDown(name, reason string, notify bool) {
	now := m.now()
	m.mu.Lock()
	ch, ok := m.channels[name]
	if !ok {
		m.mu.Unlock()
		return
	}
	from := ch.state
	ch.lastErr = reason
	ch.okStreak = 0
	ch.failStreak = max(ch.failStreak, ch.Config.Fall)
	ch.trialInFlight = false
	// Even when it was down already: the next half-open trial is one
	// interval away, not due at once.
	ch.trialAt = now.Add(ch.Config.Interval)
	changed := m.setState(ch, Down, reason, now)
	m.mu.Unlock()
	if changed {
		m.report(Change{Channel: name, From: from, To: Down, Reason: reason, Notify: notify})
	}
}

// Signal applies an adapter's own report about its health.
func (m *Monitor) Signal(name string, s relay.HealthSignal) {
	now := m.now()
	m.mu.Lock()
	ch, ok := m.channels[name]
	if !ok {
		m.mu.Unlock()
		return
	}
	from := ch.state
	to := from
	if s.Down {
		ch.signalDown, ch.signalReason, ch.signalUntil = true, s.Reason, s.Until
		ch.lastErr = s.Reason
		to = Down
	} else {
		ch.signalDown, ch.signalReason, ch.signalUntil = false, s.Reason, time.Time{}
		if from == Down {
			// Recovery reported by the adapter (reconnected, new login):
			// let the next probe confirm it soon.
			m.pokeLocked(name)
		}
	}
	changed := m.setState(ch, to, s.Reason, now)
	m.mu.Unlock()
	if changed || s.Notify {
		m.report(Change{Channel: name, From: from, To: to, Reason: s.Reason, Notify: s.Notify})
	}
}

func (m *Monitor) pokeLocked(name string) {
	if p, ok := m.poke[name]; ok {
		select {
		case p <- struct{}{}:
		default:
		}
	}
}

// Usable reports whether a send may be tried on the channel now: it is not
// down, or it has no probe and its half-open trial is due (then this call
// takes the trial, and the caller must report the send with ObserveSend).
func (m *Monitor) Usable(name string) bool {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	ch, ok := m.channels[name]
	if !ok {
		return false
	}
	if ch.state != Down {
		return true
	}
	if ch.noProbe && !ch.signalDown && !ch.trialInFlight && !now.Before(ch.trialAt) {
		ch.trialInFlight = true
		return true
	}
	return false
}

// Block records an upstream's retry-after: no send before until.
func (m *Monitor) Block(name string, until time.Time) {
	m.mu.Lock()
	if ch, ok := m.channels[name]; ok && until.After(ch.blockedUntil) {
		ch.blockedUntil = until
	}
	m.mu.Unlock()
}

// BlockedUntil returns when the channel's rate limit ends (zero if none).
func (m *Monitor) BlockedUntil(name string) time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ch, ok := m.channels[name]; ok {
		return ch.blockedUntil
	}
	return time.Time{}
}

// Status returns every channel's health, sorted by name.
func (m *Monitor) Status() []Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Status, 0, len(m.channels))
	for _, ch := range m.channels {
		out = append(out, ch.status())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Get returns one channel's health.
func (m *Monitor) Get(name string) (Status, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ch, ok := m.channels[name]
	if !ok {
		return Status{}, false
	}
	return ch.status(), true
}

func (ch *channel) status() Status {
	s := Status{
		Name: ch.Name, Type: ch.Type, State: ch.state, Since: ch.since, LastProbe: ch.lastProbe,
		LastError: ch.lastErr, BlockedUntil: ch.blockedUntil, Probed: !ch.noProbe,
		History: append([]Transition(nil), ch.history...),
	}
	if ch.signalDown {
		s.Reason, s.Until = ch.signalReason, ch.signalUntil
	}
	return s
}
