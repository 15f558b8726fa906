package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"

	"github.com/relay-project/relay/config"
	rdaemon "github.com/relay-project/relay/relay/daemon"
)

func cmdServe(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("c", "", "configuration file")
	level := fs.String("log-level", envOr("RELAY_LOG_LEVEL", "info"), "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(stderr, "relay: -log-level %q: %v\n", *level, err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	if path := os.Getenv("RELAY_CPUPROFILE"); path != "" {
		// For measuring the daemon under load (see BenchmarkDaemon).
		f, err := os.Create(path)
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer func() { pprof.StopCPUProfile(); f.Close() }()
		}
	}
	path := config.Find(*cfgPath)
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintf(stderr, "relay: %v\n", err)
		return 1
	}
	notify := func(state string) {
		if _, err := daemon.SdNotify(false, state); err != nil {
			log.Debug("sd_notify", "err", err)
		}
	}
	var wd time.Duration
	if d, err := daemon.SdWatchdogEnabled(false); err == nil && d > 0 {
		wd = d / 2
	}
	d, err := rdaemon.New(cfg, rdaemon.Options{Logger: log, Notify: notify, WatchdogInterval: wd})
	if err != nil {
		fmt.Fprintf(stderr, "relay: %v\n", err)
		return 1
	}
	defer mountConsole(d, log)()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	for {
		select {
		case err := <-done:
			if err != nil {
				log.Error("relay stopped with an error", "err", err)
				return 1
			}
			return 0
		case <-hup:
			notify("RELOADING=1\nMONOTONIC_USEC=" + monotonicUsec())
			reload(d, path, log)
			notify("READY=1")
		}
	}
}

func reload(d *rdaemon.Daemon, path string, log *slog.Logger) {
	cfg, err := config.Load(path)
	if err == nil {
		err = d.Reload(cfg)
	}
	if err != nil {
		var ps config.Problems
		if errors.As(err, &ps) {
			for _, p := range ps {
				log.Error("reload refused: configuration problem; the old configuration stays in force", "problem", p.String())
			}
			return
		}
		log.Error("reload refused; the old configuration stays in force", "err", err)
	}
}

// monotonicUsec is CLOCK_MONOTONIC in microseconds, which systemd wants
// with RELOADING=1.
func monotonicUsec() string {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return "0"
	}
	return fmt.Sprint(ts.Sec*1e6 + ts.Nsec/1e3)
}

func envOr(k, def string) string {
	if v := strings.TrimSpace(os.Getenv(k)); v != "" {
		return v
	}
	return def
}
