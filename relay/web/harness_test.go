package web

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/relay-project/relay/adapters/console"
	_ "github.com/relay-project/relay/adapters/webhook"
	"github.com/relay-project/relay/config"
	"github.com/relay-project/relay/relay"
	"github.com/relay-project/relay/relay/daemon"
)

const (
	adminSecret = "admin-secret-0123456789abcdef"
	sendSecret  = "send-secret-0123456789abcdef"
)

// upstream is a fake webhook receiver (the wire format of adapters/webhook:
// a JSON POST answered 2xx when taken; GET health_url answers 2xx when up)
// that a test switches to failing.
type upstream struct {
	srv        *httptest.Server
	mu         sync.Mutex
	failHealth bool // GET health_url answers 503
	failSend   bool // POSTs answer 503
	posts      int
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		u.mu.Lock()
		fail := u.failSend
		if r.Method == http.MethodGet {
			fail = u.failHealth
		} else {
			u.posts++
		}
		u.mu.Unlock()
		if fail {
			http.Error(w, "service unavailable", http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) set(health, send bool) {
	u.mu.Lock()
	u.failHealth, u.failSend = health, send
	u.mu.Unlock()
}

// fakePairing is a WhatsApp-like channel: relay.Linker that issues QR codes
// until the test calls succeed.
type fakePairing struct {
	name    string
	mu      sync.Mutex
	account string
	linked  chan string
	wg      sync.WaitGroup
	// closed ends a pairing in progress: Close stops the adapter's own
	// work, as a real adapter's disconnect ends its QR channel.
	closed    chan struct{}
	closeOnce sync.Once
}

var (
	fakesMu sync.Mutex
	fakes   = map[string]*fakePairing{}
)

func fakeFor(name string) *fakePairing {
	fakesMu.Lock()
	defer fakesMu.Unlock()
	return fakes[name]
}

// fakeKakao is a Kakao-like channel: relay.Authorizer recording the code.
type fakeKakao struct {
	mu    sync.Mutex
	codes []string
	redir []string
}

var kakaos sync.Map // channel name → *fakeKakao

func init() {
	relay.Register(relay.Factory{Type: "fakewa", NewConfig: func() any { return &struct{}{} },
		New: func(_ any, env relay.Env) (relay.Adapter, error) {
			f := &fakePairing{name: env.Name, linked: make(chan string, 1), closed: make(chan struct{})}
			fakesMu.Lock()
			fakes[env.Name] = f
			fakesMu.Unlock()
			return f, nil
		}})
	relay.Register(relay.Factory{Type: "fakekakao", NewConfig: func() any { return &struct{}{} },
		New: func(_ any, env relay.Env) (relay.Adapter, error) {
			k := &fakeKakao{}
			kakaos.Store(env.Name, k)
			return k, nil
		}})
}

var (
	_ relay.Linker     = (*fakePairing)(nil)
	_ relay.Authorizer = (*fakeKakao)(nil)
)

func (f *fakePairing) Send(context.Context, *relay.Outgoing) (relay.Sent, error) {
	return relay.Sent{}, relay.Errorf(relay.KindAuth, "whatsapp: not linked")
}
func (f *fakePairing) Probe(context.Context) error { return relay.ErrNoProbe }
func (f *fakePairing) Close() error {
	f.closeOnce.Do(func() { close(f.closed) })
	f.wg.Wait()
	return nil
}

func (f *fakePairing) Link(ctx context.Context, phone string) (<-chan relay.LinkEvent, error) {
	if f.LinkedAccount() != "" {
		return nil, errors.New("already linked")
	}
	ch := make(chan relay.LinkEvent)
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer close(ch)
		first := relay.LinkEvent{Kind: "qr", Code: "2@fake-qr-payload,one"}
		if phone != "" {
			first = relay.LinkEvent{Kind: "code", Code: "ABCD-EFGH"}
		}
		select {
		case ch <- first:
		case <-ctx.Done():
			return
		case <-f.closed:
			return
		}
		select {
		case acct := <-f.linked:
			f.mu.Lock()
			f.account = acct
			f.mu.Unlock()
			select {
			case ch <- relay.LinkEvent{Kind: "success", Account: acct}:
			case <-ctx.Done():
			}
		case <-ctx.Done():
		case <-f.closed:
		}
	}()
	return ch, nil
}

func (f *fakePairing) succeed(acct string) { f.linked <- acct }

func (f *fakePairing) Unlink(context.Context) error {
	f.mu.Lock()
	f.account = ""
	f.mu.Unlock()
	return nil
}

func (f *fakePairing) LinkedAccount() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.account
}

func (k *fakeKakao) Send(context.Context, *relay.Outgoing) (relay.Sent, error) {
	return relay.Sent{}, nil
}
func (k *fakeKakao) Probe(context.Context) error { return nil }
func (k *fakeKakao) Close() error                { return nil }
func (k *fakeKakao) AuthURL(redirect, state string) string {
	return "https://kauth.example/oauth/authorize?" + url.Values{"redirect_uri": {redirect}, "state": {state}}.Encode()
}
func (k *fakeKakao) Authorize(_ context.Context, code, redirect string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if code == "bad" {
		return relay.Errorf(relay.KindAuth, "kakao: KOE320 authorization code not found")
	}
	k.codes, k.redir = append(k.codes, code), append(k.redir, redirect)
	return nil
}

// setup is a running daemon with the console mounted.
type setup struct {
	d       *daemon.Daemon
	c       *Console
	up      *upstream
	base    string
	dir     string
	backupF string
}

type setupOpts struct {
	tokens  bool
	extra   string // more TOML (channels)
	modify  func(*Options)
	refresh time.Duration
}

// start runs a real daemon (SQLite in a temp dir) on 127.0.0.1 with a
// webhook channel "hook" pointed at a fake upstream, a console channel
// "backup" as second hop, and the console mounted as cmd/relay does it.
func start(t *testing.T, o setupOpts) *setup {
	t.Helper()
	s := &setup{up: newUpstream(t), dir: t.TempDir()}
	s.backupF = filepath.Join(s.dir, "backup.txt")
	var b strings.Builder
	b.WriteString("[server]\nlisten = \"127.0.0.1:0\"\n")
	if o.tokens {
		b.WriteString("[[server.tokens]]\nname = \"ops\"\nsecret = \"" + adminSecret + "\"\nscopes = [\"admin\"]\n")
		b.WriteString("[[server.tokens]]\nname = \"site\"\nsecret = \"" + sendSecret + "\"\nscopes = [\"send\"]\n")
	}
	b.WriteString("[store]\npath = \"" + filepath.Join(s.dir, "relay.db") + "\"\n")
	b.WriteString("[delivery]\nretry_min = \"200ms\"\nretry_max = \"1s\"\nshutdown_timeout = \"2s\"\n")
	b.WriteString("[channels.hook]\ntype = \"webhook\"\nurl = \"" + s.up.srv.URL + "/hook\"\nhealth_url = \"" + s.up.srv.URL +
		"/healthz\"\nhealth = { interval = \"200ms\", timeout = \"1s\", fall = 1, rise = 1 }\n")
	b.WriteString("[channels.backup]\ntype = \"console\"\nfile = \"" + s.backupF + "\"\n")
	b.WriteString(o.extra)
	b.WriteString("[contacts.owner]\nroute = [\"hook\", \"backup\"]\nhook = \"owner-hook\"\nbackup = \"owner\"\n")
	b.WriteString("[contacts.mom]\nroute = [\"backup\"]\nbackup = \"mom\"\n")
	b.WriteString("[groups]\nfamily = [\"owner\", \"mom\"]\n")
	cfg, err := config.Parse("test.toml", []byte(b.String()))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, b.String())
	}
	d, err := daemon.New(cfg, daemon.Options{})
	if err != nil {
		t.Fatal(err)
	}
	opt := DaemonOptions(d, nil)
	opt.Refresh = o.refresh
	if o.modify != nil {
		o.modify(&opt)
	}
	c, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	d.API().Handle("/ui/", c)
	d.API().Handle("GET /{$}", Redirect())
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("daemon: %v", err)
		}
		_ = c.Close()
	})
	s.d, s.c, s.base = d, c, "http://"+l.Addr().String()
	return s
}

// client is a browser-like HTTP client: a cookie jar, no redirects followed.
type client struct {
	t    *testing.T
	base string
	hc   *http.Client
}

func (s *setup) client(t *testing.T) *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: t, base: s.base, hc: &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type resp struct {
	status   int
	body     string
	location string
	header   http.Header
}

func (c *client) do(req *http.Request) resp {
	c.t.Helper()
	r, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return resp{status: r.StatusCode, body: string(b), location: r.Header.Get("Location"), header: r.Header}
}

func (c *client) get(path string, hdr ...string) resp {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.base+path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return c.do(req)
}

func (c *client) post(path string, form url.Values, hdr ...string) resp {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, c.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", c.base)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return c.do(req)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf returns the form token of a page.
func (c *client) csrf(path string) string {
	c.t.Helper()
	r := c.get(path)
	m := csrfRE.FindStringSubmatch(r.body)
	if m == nil {
		c.t.Fatalf("GET %s: no csrf field (status %d)\n%s", path, r.status, r.body)
	}
	return m[1]
}

// login logs the client in with secret and returns the response.
func (c *client) login(secret string) resp {
	c.t.Helper()
	tok := c.csrf("/ui/login")
	return c.post("/ui/login", url.Values{"csrf": {tok}, "token": {secret}, "next": {"/ui/"}})
}

// waitFor polls cond until it holds or the deadline passes; each poll is
// bounded by a timer, not a bare sleep.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}
