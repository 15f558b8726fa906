package main

import (
	"log/slog"

	rdaemon "github.com/relay-project/relay/relay/daemon"
	"github.com/relay-project/relay/relay/inbound/inboundweb"
	"github.com/relay-project/relay/relay/web"
)

// mountConsole mounts the web console at /ui/ (and redirects / there) on
// the daemon's API listener. It returns a function that stops the WhatsApp
// pairings the console runs and waits for them; serve defers it, so it
// runs after the daemon has stopped. A console that cannot be built is
// logged, and the daemon runs without it.
func mountConsole(d *rdaemon.Daemon, log *slog.Logger) (stop func()) {
	opts := web.DaemonOptions(d, log.With("component", "console"))
	opts.Conversations = inboundweb.New(d.Conversations())
	c, err := web.New(opts)
	if err != nil {
		log.Error("web console disabled", "err", err)
		return func() {}
	}
	d.API().Handle("/ui/", c)
	d.API().Handle("GET /{$}", web.Redirect())
	return func() { _ = c.Close() }
}
