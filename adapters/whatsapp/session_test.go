package whatsapp

import (
	"bytes"
	"context"
	"database/sql"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relay-project/relay/relay"
)

// The real whatsmeow client over a real SQLite session file: the store is
// created and upgraded, an unlinked device leaves the channel down without
// touching the network (whatsmeow is never asked to connect).
func TestRealSessionStoreNotLinked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "whatsapp.db")
	signals := make(chan relay.HealthSignal, 4)
	var logs bytes.Buffer
	env := relay.Env{
		Name:   "wa",
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Signal: func(s relay.HealthSignal) { signals <- s },
	}
	a, err := New(&Config{Session: path}, env)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := a.(relay.Starter).Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("Start took %v", took)
	}
	select {
	case s := <-signals:
		if !s.Down || s.Reason != reasonNotLinked {
			t.Fatalf("signal %+v, want down: not linked", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no health signal")
	}
	if err := a.Probe(context.Background()); err == nil || !strings.Contains(err.Error(), "not linked") {
		t.Fatalf("Probe = %v, want not linked", err)
	}
	if got := a.(relay.Linker).LinkedAccount(); got != "" {
		t.Fatalf("LinkedAccount = %q", got)
	}
	_, err = a.Send(context.Background(), &relay.Outgoing{Address: owner, Text: "hi", Key: "k"})
	if relay.KindOf(err) != relay.KindAuth {
		t.Fatalf("Send = %v, want auth", err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}

	// The schema is whatsmeow's, upgraded, with WAL and no device row.
	db, err := sql.Open("sqlite", sqliteDSN(path))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var version, devices int
	var journal string
	if err := db.QueryRow("SELECT version FROM whatsmeow_version").Scan(&version); err != nil || version == 0 {
		t.Fatalf("whatsmeow_version: %d, %v", version, err)
	}
	if err := db.QueryRow("SELECT count(*) FROM whatsmeow_device").Scan(&devices); err != nil || devices != 0 {
		t.Fatalf("devices: %d, %v", devices, err)
	}
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&journal); err != nil || journal != "wal" {
		t.Fatalf("journal_mode %q, %v", journal, err)
	}
	if strings.Contains(logs.String(), "level=INFO") && strings.Contains(logs.String(), "component=whatsmeow") {
		t.Fatalf("whatsmeow logged above debug on a quiet start:\n%s", logs.String())
	}
}

// The same file opens again (upgrade is idempotent), and a second adapter
// can be built and closed without Start.
func TestRealSessionStoreReopens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "whatsapp.db")
	for range 2 {
		a, err := New(&Config{Session: path}, relay.Env{Name: "wa"})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.(relay.Starter).Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		<-a.(*Adapter).ready
		if err := a.(*Adapter).openErr; err != nil {
			t.Fatalf("open: %v", err)
		}
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
	}
	a, err := New(&Config{Session: path}, relay.Env{Name: "wa"})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("Close without Start: %v", err)
	}
}

// A broken session store leaves the channel down with a notice; the daemon
// is not stopped.
func TestSessionStoreUnusable(t *testing.T) {
	dir := t.TempDir() // a directory is not a database file
	signals := make(chan relay.HealthSignal, 4)
	a, err := New(&Config{Session: dir}, relay.Env{Name: "wa", Signal: func(s relay.HealthSignal) { signals <- s }})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.(relay.Starter).Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-signals:
		if !s.Down || !s.Notify || !strings.HasPrefix(s.Reason, "session store:") {
			t.Fatalf("signal %+v", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no health signal")
	}
	if err := a.Probe(context.Background()); err == nil {
		t.Fatal("Probe succeeded with an unusable session store")
	}
}

func TestLoggerBridgeIsQuiet(t *testing.T) {
	var buf bytes.Buffer
	l := newSlogLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})))
	c := l.Sub("Client")
	c.Infof("connected to %s", "server")
	c.Debugf("chatter")
	c.Sub("Send").Warnf("send trouble %d", 1)
	c.Errorf("boom")
	out := buf.String()
	if strings.Contains(out, "connected") || strings.Contains(out, "chatter") {
		t.Fatalf("info/debug passed at info level:\n%s", out)
	}
	if !strings.Contains(out, "level=WARN msg=\"send trouble 1\"") || !strings.Contains(out, "module=Client/Send") ||
		!strings.Contains(out, "level=ERROR msg=boom") {
		t.Fatalf("warn/error missing:\n%s", out)
	}
	buf.Reset()
	dl := newSlogLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	dl.Sub("Client").Sub("Recv").Debugf("<message>%s</message>", "ciphertext")
	dl.Sub("Client").Infof("hello")
	if strings.Contains(buf.String(), "ciphertext") || !strings.Contains(buf.String(), "level=DEBUG msg=hello") {
		t.Fatalf("debug output:\n%s", buf.String())
	}
}
