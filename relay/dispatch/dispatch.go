// Package dispatch is the delivery engine: it accepts messages into the
// store, claims due deliveries, and tries each one along its route. The
// rules that turn an attempt's outcome into failover, retry, health and
// expiry live in one place, decide.go.
package dispatch

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/relay-project/relay/relay"
	"github.com/relay-project/relay/relay/health"
	"github.com/relay-project/relay/relay/metrics"
)

// Channel is one configured adapter as the dispatcher uses it.
type Channel struct {
	Name       string
	Type       string
	Adapter    relay.Adapter
	TextLimit  int
	Idempotent bool
	sem        chan struct{}
	limiter    *rate.Limiter
}

// NewChannel wraps an adapter with its concurrency limit (default 4) and
// optional rate cap in messages per second (0 = none).
func NewChannel(name, typ string, a relay.Adapter, concurrency int, maxRate float64) *Channel {
	if concurrency <= 0 {
		concurrency = 4
	}
	c := &Channel{Name: name, Type: typ, Adapter: a, sem: make(chan struct{}, concurrency)}
	if l, ok := a.(relay.TextLimiter); ok {
		c.TextLimit = l.TextLimit()
	}
	if i, ok := a.(relay.Idempotent); ok {
		c.Idempotent = i.Idempotent()
	}
	if maxRate > 0 {
		c.limiter = rate.NewLimiter(rate.Limit(maxRate), max(1, int(maxRate)))
	}
	return c
}

// Runtime is one configuration's view: channels and contacts. A reload
// swaps it atomically; queued messages are untouched.
type Runtime struct {
	Channels  map[string]*Channel
	Directory *relay.Directory
	Admin     string // contact that gets notices; "" for none
}

// Options tune the dispatcher.
type Options struct {
	Workers         int           // concurrent deliveries (default 16)
	TTL             time.Duration // default message lifetime (24h)
	AttemptTimeout  time.Duration // per send (10s)
	RetryMin        time.Duration // first backoff when the whole route is down (5s)
	RetryMax        time.Duration // backoff cap (5m)
	RateLimitWait   time.Duration // retry-afters up to this are waited out (5s)
	ShutdownTimeout time.Duration // in-flight sends get this long after Stop (10s)
	PollInterval    time.Duration // how often to look for due deliveries without a wake-up (1s)
	Logger          *slog.Logger
	Metrics         *metrics.Metrics
	Now             func() time.Time
	// OnEnd, when set, is called after a delivery was settled in a final
	// state by the dispatcher (delivered, expired, failed), from the
	// worker that settled it. It must return promptly. With OnEnd set,
	// failed and expired replies to customers (relay.KindReply) get no
	// generic notice to delivery.admin: OnEnd tells the owner instead.
	OnEnd func(del *relay.Delivery, state relay.DeliveryState)
}

func (o *Options) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if o.Workers <= 0 {
		o.Workers = 16
	}
	def(&o.TTL, 24*time.Hour)
	def(&o.AttemptTimeout, 10*time.Second)
	def(&o.RetryMin, 5*time.Second)
	def(&o.RetryMax, 5*time.Minute)
	def(&o.RateLimitWait, 5*time.Second)
	def(&o.ShutdownTimeout, 10*time.Second)
	def(&o.PollInterval, time.Second)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = metrics.New()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Dispatcher accepts messages and delivers them.
type Dispatcher struct {
	store  relay.Store
	health *health.Monitor
	opt    Options
	log    *slog.Logger
	m      *metrics.Metrics
	now    func() time.Time
	rt     atomic.Pointer[Runtime]

	wake    chan struct{}
	running atomic.Bool

	inflight sync.Map // delivery ID → *inflight, for Cancel (cancel.go)

	ids *idSource
}

// New returns a dispatcher; Run starts its workers.
func New(store relay.Store, mon *health.Monitor, rt *Runtime, opt Options) *Dispatcher {
	opt.defaults()
	d := &Dispatcher{
		store: store, health: mon, opt: opt, log: opt.Logger, m: opt.Metrics, now: opt.Now,
		wake: make(chan struct{}, 1), ids: newIDSource(),
	}
	d.rt.Store(rt)
	return d
}

// SetRuntime swaps in a new configuration (SIGHUP).
func (d *Dispatcher) SetRuntime(rt *Runtime) { d.rt.Store(rt) }

// Runtime returns the current configuration view.
func (d *Dispatcher) Runtime() *Runtime { return d.rt.Load() }

// Running reports whether the workers are running (for /readyz).
func (d *Dispatcher) Running() bool { return d.running.Load() }

// Wake makes the claim loop look for due deliveries now.
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run recovers deliveries interrupted by a crash, then claims and delivers
// until ctx is done. Then it stops claiming, gives in-flight sends up to
// ShutdownTimeout, releases the rest back to the queue, and returns.
func (d *Dispatcher) Run(ctx context.Context) error {
	n, err := d.store.Recover(ctx, d.now())
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	if n > 0 {
		d.log.Warn("requeued deliveries interrupted by a restart", "count", n)
	}
	// Sends outlive ctx by ShutdownTimeout: a send in flight when the
	// daemon is asked to stop may finish.
	sendCtx, cancelSends := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSends()
	stopTimer := context.AfterFunc(ctx, func() {
		t := time.NewTimer(d.opt.ShutdownTimeout)
		defer t.Stop()
		select {
		case <-t.C:
			cancelSends()
		case <-sendCtx.Done():
		}
	})
	defer stopTimer()

	// Workers take claimed deliveries from work and report each one done
	// on finished. Both hold Workers, and at most Workers deliveries are
	// claimed and unsettled, so neither send ever blocks.
	work := make(chan *relay.Delivery, d.opt.Workers)
	finished := make(chan struct{}, d.opt.Workers)
	var wg sync.WaitGroup
	for range d.opt.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for del := range work {
				d.process(sendCtx, del)
				finished <- struct{}{}
			}
		}()
	}
	d.running.Store(true)
	defer d.running.Store(false)

	// While more deliveries are due than workers are free (a backlog), a
	// claim waits until a quarter of the workers are free: each Claim is
	// one due-query and one write in the store's single writer, and
	// claiming for every worker as it frees up would spend them one
	// delivery at a time, taking the writer from accepting messages.
	// Without a backlog a free worker claims at once, for latency.
	batch := max(1, d.opt.Workers/4)
	inFlight := 0
	due := true      // deliveries may be due: claim when workers are free
	backlog := false // the last claim filled every free worker
	timer := time.NewTimer(d.opt.PollInterval)
	defer timer.Stop()
loop:
	for {
		if free := d.opt.Workers - inFlight; due && free > 0 && (!backlog || free >= batch) && ctx.Err() == nil {
			dels, err := d.store.Claim(ctx, d.now(), free)
			if err != nil && ctx.Err() == nil {
				d.log.Error("claim deliveries", "err", err)
			}
			for _, del := range dels {
				work <- del
			}
			inFlight += len(dels)
			backlog = err == nil && len(dels) == free
			if !backlog {
				// Nothing more due (or the store failed): look again on a
				// wake-up, or after PollInterval.
				due = false
				if !timer.Stop() {
					select {
					case <-timer.C:
					default:
					}
				}
				timer.Reset(d.opt.PollInterval)
			}
			continue
		}
		select {
		case <-ctx.Done():
			break loop
		case <-finished:
			inFlight--
		case <-d.wake:
			due = true
		case <-timer.C:
			due = true
		}
	}
	close(work)
	wg.Wait()
	return nil
}

// backoff returns the wait before the next pass over a route whose every
// channel is down: RetryMin·2^round capped at RetryMax, with jitter in
// [d/2, d] so that deliveries queued together do not retry together.
func (d *Dispatcher) backoff(round int) time.Duration {
	b := d.opt.RetryMin
	for i := 0; i < round && b < d.opt.RetryMax; i++ {
		b *= 2
	}
	b = min(b, d.opt.RetryMax)
	return b/2 + time.Duration(rand.Int64N(int64(b/2)+1))
}
