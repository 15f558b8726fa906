package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/relay-project/relay/config"
	rdaemon "github.com/relay-project/relay/relay/daemon"
)

// serveInProcess runs a daemon in the test process on a free loopback port
// with a SQLite store in a temp dir, configured by body (channels and
// contacts). It returns the configuration file, for the CLI's -c, and the
// daemon; both go away with the test.
func serveInProcess(t *testing.T, body string) (string, *rdaemon.Daemon) {
	t.Helper()
	dir := t.TempDir()
	addr := freeAddr(t)
	cfgPath := filepath.Join(dir, "relay.toml")
	text := fmt.Sprintf("[server]\nlisten = %q\n[store]\npath = %q\n%s", addr, filepath.Join(dir, "relay.db"), body)
	if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	d, err := rdaemon.New(cfg, rdaemon.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	for d.Addr() == "" {
		time.Sleep(5 * time.Millisecond)
	}
	return cfgPath, d
}
