// Package daemon wires relay together: configuration, store, channels,
// health monitor, dispatcher and HTTP API, with the lifecycle SPEC asks
// for (readiness, reload, drain). cmd/relay runs it; end-to-end tests run
// it in process. Adapter packages are linked in by the caller.
package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/relay-project/relay/config"
	"github.com/relay-project/relay/relay"
	"github.com/relay-project/relay/relay/api"
	"github.com/relay-project/relay/relay/dispatch"
	"github.com/relay-project/relay/relay/health"
	"github.com/relay-project/relay/relay/inbound"
	"github.com/relay-project/relay/relay/metrics"
	"github.com/relay-project/relay/relay/store/postgres"
	"github.com/relay-project/relay/relay/store/sqlite"
)

// Options are the daemon's run-time knobs beyond the config file.
type Options struct {
	Logger *slog.Logger
	// Notify is called with systemd notify states ("READY=1", ...); nil
	// for none.
	Notify func(state string)
	// WatchdogInterval, when positive, sends WATCHDOG=1 this often while
	// the dispatcher runs and the store answers.
	WatchdogInterval time.Duration
	// Now is the clock (tests).
	Now func() time.Time
}

// Daemon is one running relay.
type Daemon struct {
	opt     Options
	log     *slog.Logger
	now     func() time.Time
	metrics *metrics.Metrics
	store   relay.Store
	monitor *health.Monitor
	disp    *dispatch.Dispatcher
	api     *api.Server
	inbound *inbound.Pipeline

	mu       sync.Mutex
	cfg      *config.Config
	webhooks map[string]http.Handler // "type/channel" → handler
	ctx      context.Context         // the run context, for adapters started on reload
	live     map[string]*liveChannel // the adapters in use, by channel name
	reloadMu sync.Mutex              // one reload at a time
	stopping bool                    // set when Serve stops: no more reloads

	listener net.Listener
	server   *http.Server
}

// New opens the store and builds the channels of cfg; nothing is started.
func New(cfg *config.Config, opt Options) (*Daemon, error) {
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Notify == nil {
		opt.Notify = func(string) {}
	}
	d := &Daemon{opt: opt, log: opt.Logger, now: opt.Now, metrics: metrics.New(), cfg: cfg}
	st, err := openStore(cfg, opt)
	if err != nil {
		return nil, err
	}
	d.store = st
	d.metrics.RegisterQueue(func() (map[string]int, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := st.Counts(ctx)
		out := make(map[string]int, len(c))
		for k, v := range c {
			out[string(k)] = v
		}
		return out, err
	})
	d.monitor = health.New(health.Options{Logger: opt.Logger, Now: opt.Now, OnChange: d.healthChanged})
	d.inbound = inbound.New(inbound.Options{Store: st, Logger: opt.Logger, Metrics: d.metrics, Now: opt.Now})
	d.inbound.SetConfig(inboundConfig(cfg))
	rt, hooks, live, _, err := d.buildRuntime(cfg, nil)
	if err != nil {
		st.Close()
		return nil, err
	}
	d.webhooks, d.live = hooks, live
	d.disp = dispatch.New(st, d.monitor, rt, dispatch.Options{
		Workers: cfg.Delivery.Workers, TTL: cfg.Delivery.TTL, AttemptTimeout: cfg.Delivery.AttemptTimeout,
		RetryMin: cfg.Delivery.RetryMin, RetryMax: cfg.Delivery.RetryMax, RateLimitWait: cfg.Delivery.RateLimitWait,
		ShutdownTimeout: cfg.Delivery.ShutdownTimeout, Logger: opt.Logger, Metrics: d.metrics, Now: opt.Now,
		OnEnd: d.inbound.DeliveryEnded,
	})
	d.inbound.Attach(d.disp)
	d.api = api.New(api.Deps{
		Dispatcher: d.disp, Store: st, Health: d.monitor, Metrics: d.metrics, Logger: opt.Logger,
		Inbound: d.webhook, Conversations: d.inbound,
	}, tokens(cfg))
	return d, nil
}

// storeBackend is what the daemon needs of a store: the outbox and the
// conversations. SQLite and PostgreSQL both are.
type storeBackend interface {
	relay.Store
	relay.ConversationStore
}

// openStore opens PostgreSQL when store.dsn is set, else the SQLite file.
func openStore(cfg *config.Config, opt Options) (storeBackend, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if cfg.Store.DSN != "" {
		st, err := postgres.Open(ctx, cfg.Store.DSN, postgres.Options{Logger: opt.Logger, Now: opt.Now})
		if err != nil {
			return nil, fmt.Errorf("open store (store.dsn): %w", err)
		}
		return st, nil
	}
	st, err := sqlite.Open(ctx, cfg.Store.Path, sqlite.Options{Synchronous: cfg.Store.Synchronous, Logger: opt.Logger})
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", cfg.Store.Path, err)
	}
	return st, nil
}

// API returns the HTTP handler (to mount the web console on, or to test).
func (d *Daemon) API() *api.Server { return d.api }

// Dispatcher returns the delivery engine.
func (d *Daemon) Dispatcher() *dispatch.Dispatcher { return d.disp }

// Store returns the store.
func (d *Daemon) Store() relay.Store { return d.store }

// Health returns the health monitor.
func (d *Daemon) Health() *health.Monitor { return d.monitor }

// Config returns the configuration in force.
func (d *Daemon) Config() *config.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

// Addr returns the address the API listens on, once Run has started it.
func (d *Daemon) Addr() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.listener == nil {
		return ""
	}
	return d.listener.Addr().String()
}

func tokens(cfg *config.Config) []api.Token {
	out := make([]api.Token, len(cfg.Server.Tokens))
	for i, t := range cfg.Server.Tokens {
		out[i] = api.Token{Name: t.Name, Secret: t.Secret, SendTo: t.SendTo, Scopes: t.Scopes}
	}
	return out
}

// liveChannel is one adapter instance and what it was built from. A reload
// keeps an adapter whose type and settings did not change, so a channel
// never runs twice (two Telegram pollers, two WhatsApp connections on one
// session) and keeps its connection.
type liveChannel struct {
	typ      string
	settings any
	adapter  relay.Adapter
	started  bool
	retired  atomic.Bool // set before Close: its late signals are ignored
}

// buildRuntime returns the runtime for cfg: adapters of unchanged channels
// are taken over from live, the others are constructed (no network). It
// also returns the channels of live that the new runtime does not keep.
func (d *Daemon) buildRuntime(cfg *config.Config, live map[string]*liveChannel) (*dispatch.Runtime, map[string]http.Handler, map[string]*liveChannel, []*liveChannel, error) {
	rt := &dispatch.Runtime{Channels: map[string]*dispatch.Channel{}, Directory: cfg.Directory(), Admin: cfg.Delivery.Admin}
	hooks := map[string]http.Handler{}
	next := map[string]*liveChannel{}
	var built []*liveChannel
	fail := func(err error) (*dispatch.Runtime, map[string]http.Handler, map[string]*liveChannel, []*liveChannel, error) {
		for _, lc := range built {
			_ = lc.adapter.Close()
		}
		return nil, nil, nil, nil, err
	}
	for _, name := range cfg.ChannelOrder {
		c := cfg.Channels[name]
		lc, ok := live[name]
		if !ok || lc.typ != c.Type || !reflect.DeepEqual(lc.settings, c.Settings) {
			f, ok := relay.Lookup(c.Type)
			if !ok {
				return fail(fmt.Errorf("channels.%s: adapter type %q is not built in", name, c.Type))
			}
			lc = &liveChannel{typ: c.Type, settings: c.Settings}
			env := relay.Env{
				Name:     name,
				Logger:   d.log.With("channel", name),
				State:    d.store.ChannelState(name),
				Inbound:  d.inbound.Sink(name),
				Receipts: d.store,
				Signal: func(s relay.HealthSignal) {
					if !lc.retired.Load() {
						d.monitor.Signal(name, s)
					}
				},
				Now: d.now,
			}
			a, err := f.New(c.Settings, env)
			if err != nil {
				return fail(fmt.Errorf("channels.%s: %w", name, err))
			}
			lc.adapter = a
			built = append(built, lc)
		}
		next[name] = lc
		rt.Channels[name] = dispatch.NewChannel(name, c.Type, lc.adapter, c.Concurrency, c.MaxRate)
		if w, ok := lc.adapter.(relay.WebhookReceiver); ok {
			hooks[c.Type+"/"+name] = w.Webhook()
		}
	}
	var gone []*liveChannel
	for name, lc := range live {
		if next[name] != lc {
			gone = append(gone, lc)
		}
	}
	return rt, hooks, next, gone, nil
}

// retire closes adapters the configuration no longer uses; their late
// health signals are ignored from now on.
func retire(chans []*liveChannel) {
	for _, lc := range chans {
		lc.retired.Store(true)
		_ = lc.adapter.Close()
	}
}

// startChannels starts the adapters not started yet. A channel that cannot
// start is down with the reason, not fatal: the daemon serves and accepts
// while upstreams are down. The monitor must know the channels already.
func (d *Daemon) startChannels(ctx context.Context, live map[string]*liveChannel) {
	for name, lc := range live {
		if lc.started {
			continue
		}
		lc.started = true
		if s, ok := lc.adapter.(relay.Starter); ok {
			if err := s.Start(ctx); err != nil {
				d.log.Error("start channel", "channel", name, "err", err)
				d.monitor.ForceDown(name, "start: "+err.Error())
			}
		}
	}
}

func (d *Daemon) healthChannels(cfg *config.Config, rt *dispatch.Runtime) []health.Channel {
	var out []health.Channel
	for _, name := range cfg.ChannelOrder {
		c := cfg.Channels[name]
		a := rt.Channels[name].Adapter
		fresh := false
		if lc, ok := d.live[name]; ok && !lc.started {
			fresh = true // a new adapter: the old one's health says nothing of it
		}
		out = append(out, health.Channel{Name: name, Type: c.Type, Probe: a.Probe, Fresh: fresh, Config: health.Config{
			Interval: c.Health.Interval, Timeout: c.Health.Timeout, Fall: c.Health.Fall, Rise: c.Health.Rise,
		}})
		d.metrics.SetChannelState(name, string(health.Unknown))
	}
	return out
}

func (d *Daemon) webhook(typ, channel string) (http.Handler, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	h, ok := d.webhooks[typ+"/"+channel]
	return h, ok
}

// healthChanged reacts to a channel's state change: metrics; deliveries
// waiting for the route are retried at once when a channel comes back; an
// adapter's request for a notice goes to the admin.
func (d *Daemon) healthChanged(c health.Change) {
	d.metrics.SetChannelState(c.Channel, string(c.To))
	if c.To == health.Up && c.From == health.Down {
		if err := d.store.Wake(context.Background(), d.now()); err != nil {
			d.log.Error("wake queued deliveries", "err", err)
		}
		d.disp.Wake()
	}
	if c.Notify {
		what := "is down"
		if c.To != health.Down {
			what = "reports"
		}
		d.disp.Notify(context.Background(), fmt.Sprintf("channel %s %s: %s", c.Channel, what, c.Reason))
	}
}

// Listen opens the API's listener: "host:port" or "unix:/path".
func Listen(addr string) (net.Listener, error) {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		_ = os.Remove(path)
		l, err := net.Listen("unix", path)
		if err != nil {
			return nil, err
		}
		_ = os.Chmod(path, 0o660)
		return l, nil
	}
	return net.Listen("tcp", addr)
}
