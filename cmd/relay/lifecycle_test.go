package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSystemdLifecycle runs `relay serve` as systemd would (NOTIFY_SOCKET)
// and checks READY=1 after the API listens, RELOADING=1 then READY=1 on
// SIGHUP (a broken file is refused and the daemon keeps serving), and
// STOPPING=1 and exit status 0 on SIGTERM.
func TestSystemdLifecycle(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the daemon")
	}
	bin := relayBinary(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	states := make(chan string, 32)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, _, err := conn.ReadFromUnix(buf)
			if err != nil {
				return
			}
			for _, line := range strings.Split(string(buf[:n]), "\n") {
				states <- line
			}
		}
	}()
	expect := func(want string) {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case s := <-states:
				if s == want {
					return
				}
			case <-timeout:
				t.Fatalf("no %s from relay", want)
			}
		}
	}

	sink := newCountingSink(t)
	cfg, addr := writeConfig(t, dir, sink.url, "")
	t.Setenv("NOTIFY_SOCKET", sock)
	c := startChild(t, bin, cfg, addr)
	expect("READY=1")

	// A broken configuration is refused; the daemon keeps serving.
	good, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, append(good, []byte("\n[contacts.x]\nroute = [\"nope\"]\n")...), 0o600)
	c.cmd.Process.Signal(syscall.SIGHUP)
	expect("RELOADING=1")
	expect("READY=1")
	sub := newSubmitter(c.base, 1)
	if _, err := sub.submit("still here"); err != nil {
		t.Fatalf("after a refused reload: %v", err)
	}

	c.cmd.Process.Signal(syscall.SIGTERM)
	expect("STOPPING=1")
	if err := c.cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, c.stderr)
	}
	// stderr is safe to read once the process has exited.
	if !strings.Contains(c.stderr.String(), "reload refused") || !strings.Contains(c.stderr.String(), `unknown channel \"nope\"`) {
		t.Fatalf("the refused reload was not logged with its problem: %s", c.stderr)
	}
}
