package daemon_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/relay-project/relay/adapters/console"
	_ "github.com/relay-project/relay/adapters/webhook"
	"github.com/relay-project/relay/config"
	"github.com/relay-project/relay/relay/api"
	"github.com/relay-project/relay/relay/daemon"
)

// sink is a fake webhook receiver whose behaviour a test switches.
type sink struct {
	srv *httptest.Server

	mu       sync.Mutex
	mode     string // "ok", "500", "hang", "429:N", "400", "401"
	received []map[string]any
	hits     int
	release  chan struct{}
}

func newSink(t *testing.T) *sink {
	s := &sink{mode: "ok", release: make(chan struct{})}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(func() { s.unhang(); s.srv.Close() })
	return s
}

func (s *sink) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	mode := s.mode
	s.mu.Unlock()
	if r.URL.Path == "/healthz" {
		if mode == "ok" {
			return
		}
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.hits++
	s.mu.Unlock()
	switch {
	case mode == "500":
		http.Error(w, "boom", http.StatusInternalServerError)
		return
	case mode == "hang":
		s.mu.Lock()
		release := s.release
		s.mu.Unlock()
		select {
		case <-release:
		case <-r.Context().Done():
		}
		return
	case strings.HasPrefix(mode, "429:"):
		s.set("ok") // the next try passes
		w.Header().Set("Retry-After", strings.TrimPrefix(mode, "429:"))
		http.Error(w, "slow down", http.StatusTooManyRequests)
		return
	case mode == "400":
		http.Error(w, "no such user", http.StatusBadRequest)
		return
	case mode == "401":
		http.Error(w, "bad credentials", http.StatusUnauthorized)
		return
	}
	var p map[string]any
	_ = json.Unmarshal(body, &p)
	s.mu.Lock()
	s.received = append(s.received, p)
	s.mu.Unlock()
}

// unhang answers every hanging request (200) and re-arms the hang.
func (s *sink) unhang() {
	s.mu.Lock()
	close(s.release)
	s.release = make(chan struct{})
	s.mu.Unlock()
}

func (s *sink) set(mode string) { s.mu.Lock(); s.mode = mode; s.mu.Unlock() }

func (s *sink) got() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]map[string]any(nil), s.received...)
}

func (s *sink) texts() []string {
	var out []string
	for _, p := range s.got() {
		out = append(out, fmt.Sprint(p["text"]))
	}
	return out
}

// closedAddr is an address where nothing listens.
func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := l.Addr().String()
	l.Close()
	return a
}

// node is one daemon running in the test process.
type node struct {
	t      *testing.T
	d      *daemon.Daemon
	base   string
	cancel context.CancelFunc
	done   chan error
	dir    string
	token  string // sent when a request names no Authorization
}

// startDaemon runs a daemon on cfgText (%DIR% is replaced by a temp dir).
func startDaemon(t *testing.T, dir, cfgText string) *node {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	cfgText = strings.ReplaceAll(cfgText, "%DIR%", dir)
	path := filepath.Join(dir, "relay.toml")
	if err := os.WriteFile(path, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	d, err := daemon.New(cfg, daemon.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &node{t: t, d: d, cancel: cancel, done: make(chan error, 1), dir: dir}
	go func() { n.done <- d.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for d.Addr() == "" || !n.ready() {
		if time.Now().After(deadline) {
			t.Fatal("daemon not ready in 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Cleanup(func() { n.stop() })
	return n
}

func (n *node) ready() bool {
	if n.d.Addr() == "" {
		return false
	}
	n.base = "http://" + n.d.Addr()
	resp, err := http.Get(n.base + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

// stop shuts the daemon down and returns Run's error.
func (n *node) stop() error {
	if n.cancel == nil {
		return nil
	}
	n.cancel()
	n.cancel = nil
	select {
	case err := <-n.done:
		return err
	case <-time.After(30 * time.Second):
		n.t.Fatal("daemon did not stop in 30s")
		return nil
	}
}

type response struct {
	status int
	body   []byte
}

func (r response) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

func (r response) code() string {
	var e api.ErrorBody
	_ = json.Unmarshal(r.body, &e)
	return e.Error.Code
}

func (n *node) do(method, path, ctype string, body []byte, hdr ...string) response {
	n.t.Helper()
	req, _ := http.NewRequest(method, n.base+path, bytes.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if req.Header.Get("Authorization") == "" && n.token != "" {
		req.Header.Set("Authorization", "Bearer "+n.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, b}
}

func (n *node) send(body string, hdr ...string) response {
	n.t.Helper()
	return n.do("POST", "/v1/messages", "application/json", []byte(body), hdr...)
}

// accept submits and returns the message id, failing on anything but 202.
func (n *node) accept(body string, hdr ...string) string {
	n.t.Helper()
	r := n.send(body, hdr...)
	if r.status != http.StatusAccepted {
		n.t.Fatalf("submit %s: %d %s", body, r.status, r.body)
	}
	var v struct{ ID string }
	r.json(n.t, &v)
	return v.ID
}

func (n *node) message(id string) api.MessageView {
	n.t.Helper()
	r := n.do("GET", "/v1/messages/"+id, "", nil)
	if r.status != 200 {
		n.t.Fatalf("get %s: %d %s", id, r.status, r.body)
	}
	var m api.MessageView
	r.json(n.t, &m)
	return m
}

// waitStatus polls a message until its status is want.
func (n *node) waitStatus(id, want string, within time.Duration) api.MessageView {
	n.t.Helper()
	deadline := time.Now().Add(within)
	for {
		m := n.message(id)
		if m.Status == want {
			return m
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("message %s: status %s after %s, want %s: %+v", id, m.Status, within, want, m)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (n *node) channelState(name string) string {
	r := n.do("GET", "/v1/channels", "", nil)
	var v struct {
		Channels []api.ChannelView `json:"channels"`
	}
	r.json(n.t, &v)
	for _, c := range v.Channels {
		if c.Name == name {
			return string(c.State)
		}
	}
	return ""
}

func (n *node) waitChannel(name, state string, within time.Duration) {
	n.t.Helper()
	deadline := time.Now().Add(within)
	for n.channelState(name) != state {
		if time.Now().After(deadline) {
			n.t.Fatalf("channel %s: %s after %s, want %s", name, n.channelState(name), within, state)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// routeOf lists "channel:outcome" for a delivery's attempts.
func routeOf(d api.DeliveryView) string {
	var parts []string
	for _, a := range d.Attempts {
		parts = append(parts, a.Channel+":"+a.Outcome)
	}
	return strings.Join(parts, " ")
}
