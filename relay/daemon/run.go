package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/relay-project/relay/config"
)

// Run serves until ctx is done: it starts the adapters, the health
// monitor, the dispatcher and the API, says READY=1, and on ctx's end
// stops accepting, drains in-flight sends within the shutdown timeout,
// closes the adapters and the store. It returns nil after a clean stop.
func (d *Daemon) Run(ctx context.Context) error {
	cfg := d.Config()
	l, err := Listen(cfg.Server.Listen)
	if err != nil {
		retire(mapValues(d.live))
		d.store.Close()
		return fmt.Errorf("server.listen %s: %w", cfg.Server.Listen, err)
	}
	return d.Serve(ctx, l)
}

// Serve is Run on a listener the caller opened.
func (d *Daemon) Serve(ctx context.Context, l net.Listener) error {
	cfg := d.Config()
	runCtx, cancelRun := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRun()
	d.mu.Lock()
	d.listener, d.ctx = l, runCtx
	d.mu.Unlock()

	d.reloadMu.Lock()
	rt := d.disp.Runtime()
	d.monitor.Start(runCtx, d.healthChannels(cfg, rt))
	d.startChannels(runCtx, d.live)
	d.reloadMu.Unlock()

	dispCtx, stopDisp := context.WithCancel(runCtx)
	var wg sync.WaitGroup
	dispErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		dispErr <- d.disp.Run(dispCtx)
	}()

	d.server = &http.Server{
		Handler:           d.api,
		ReadHeaderTimeout: cfg.Server.ReadHeaderTimeout,
		ReadTimeout:       time.Minute,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          nil,
	}
	srvErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := d.server.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			srvErr <- err
		}
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		d.watchdog(dispCtx)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		d.housekeeping(dispCtx)
	}()
	d.log.Info("relay is ready", "listen", l.Addr().String(), "channels", len(rt.Channels))
	d.opt.Notify("READY=1")

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-srvErr:
	case runErr = <-dispErr:
	}
	d.opt.Notify("STOPPING=1")
	d.reloadMu.Lock()
	d.stopping = true
	d.reloadMu.Unlock()
	d.log.Info("stopping: no new messages; draining in-flight sends", "timeout", cfg.Delivery.ShutdownTimeout)
	// Stop claiming and stop accepting at the same time, so the whole
	// stop takes one shutdown_timeout, well inside systemd's
	// TimeoutStopSec. Messages accepted meanwhile are durable and wait.
	stopDisp()
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Delivery.ShutdownTimeout)
	_ = d.server.Shutdown(sctx)
	cancel()
	wg.Wait()
	d.monitor.Stop()
	cancelRun()
	d.reloadMu.Lock()
	retire(mapValues(d.live))
	d.reloadMu.Unlock()
	if err := d.store.Close(); err != nil && runErr == nil {
		runErr = err
	}
	d.log.Info("stopped")
	return runErr
}

// watchdog sends WATCHDOG=1 while the dispatcher runs and the store
// answers, so systemd restarts a daemon that is stuck, not one that is busy.
func (d *Daemon) watchdog(ctx context.Context) {
	if d.opt.WatchdogInterval <= 0 {
		return
	}
	t := time.NewTicker(d.opt.WatchdogInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			pctx, cancel := context.WithTimeout(ctx, d.opt.WatchdogInterval)
			err := d.store.Ping(pctx)
			cancel()
			if err == nil && d.disp.Running() {
				d.opt.Notify("WATCHDOG=1")
			}
		}
	}
}

// housekeeping forgets idempotency keys older than 24 hours, hourly.
func (d *Daemon) housekeeping(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if err := d.store.PruneIdempotency(ctx, d.now().Add(-24*time.Hour)); err != nil && ctx.Err() == nil {
			d.log.Error("prune idempotency keys", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Reload applies a new configuration (SIGHUP): contacts, routes, groups,
// channels and tokens. Queued messages stay in the store and continue on
// the new routes. Channels whose type and settings are unchanged keep their
// adapter (and connection); a changed channel's old adapter is closed
// before its new one starts, so no channel runs twice. If the new channels
// cannot be built, the old configuration stays in force and the error says
// why. Listen address and store changes need a restart.
func (d *Daemon) Reload(cfg *config.Config) error {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	if d.stopping {
		return errors.New("relay is stopping")
	}
	d.mu.Lock()
	runCtx := d.ctx
	old := d.cfg
	d.mu.Unlock()
	rt, hooks, live, gone, err := d.buildRuntime(cfg, d.live)
	if err != nil {
		return err
	}
	d.disp.SetRuntime(rt)
	d.api.SetTokens(tokens(cfg))
	d.inbound.SetConfig(inboundConfig(cfg))
	d.mu.Lock()
	d.cfg, d.webhooks = cfg, hooks
	d.mu.Unlock()
	d.live = live
	// Sends in flight on a retired adapter fail and fail over; a reload
	// is rare, and two live copies of a channel are worse.
	retire(gone)
	if runCtx != nil {
		d.monitor.Start(runCtx, d.healthChannels(cfg, rt))
		d.startChannels(runCtx, live)
	}
	if old.Server.Listen != cfg.Server.Listen || old.Store != cfg.Store {
		d.log.Warn("server.listen and store changes take effect after a restart")
	}
	d.disp.Wake()
	d.log.Info("configuration reloaded", "channels", len(rt.Channels), "replaced", len(gone), "contacts", len(cfg.Contacts))
	return nil
}

func mapValues(m map[string]*liveChannel) []*liveChannel {
	out := make([]*liveChannel, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
