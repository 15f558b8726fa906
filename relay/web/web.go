// Package web is relay's web console: channel health with history, recent
// deliveries with the route each took, one message's attempt timeline,
// customer conversations with a reply box, WhatsApp linking by QR code,
// Kakao login and a test send, in Korean and English.
//
// It is server-rendered with html/template; the CSS and a few lines of
// JavaScript are embedded, so there is no front-end build. The daemon
// mounts it on the API's listener at /ui/. With API tokens configured it
// asks for an admin token once and keeps a session cookie; without tokens
// it is served to loopback clients only, like the API.
package web

import (
	"context"
	"embed"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/relay-project/relay/relay"
	"github.com/relay-project/relay/relay/dispatch"
	"github.com/relay-project/relay/relay/health"
)

//go:embed templates/*.html static/* i18n/*.json
var files embed.FS

// Token errors returned by Options.CheckToken.
var (
	// ErrInvalidToken means the secret is not a configured API token.
	ErrInvalidToken = errors.New("invalid token")
	// ErrNotAdmin means the token is valid but lacks the admin scope.
	ErrNotAdmin = errors.New("token lacks the admin scope")
)

// Options are what the console serves from.
type Options struct {
	Dispatcher *dispatch.Dispatcher
	Store      relay.Store
	Health     *health.Monitor
	// TokensConfigured reports whether API tokens are configured now (it
	// is asked on every request, so a reload that adds tokens takes
	// effect). Without tokens only loopback clients are served.
	TokensConfigured func() bool
	// CheckToken checks an API token's secret and returns the token's
	// name; it returns ErrInvalidToken or ErrNotAdmin when the token may
	// not use the console. Required when tokens are configured.
	CheckToken func(secret string) (name string, err error)
	// Conversations serves the two-way pages; nil shows them as not
	// configured.
	Conversations Conversations
	// PublicURL is the console's origin as browsers see it
	// ("https://relay.example.com"), for the Kakao redirect behind a
	// reverse proxy; empty derives it from the request.
	PublicURL string
	// SessionTTL is how long a login lasts (default 12h).
	SessionTTL time.Duration
	// Refresh is how often the overview reloads itself (default 10s).
	Refresh time.Duration
	// LinkTimeout bounds one WhatsApp pairing (default 5m).
	LinkTimeout time.Duration
	Logger      *slog.Logger
	Now         func() time.Time
}

// Console is the web console's handler. Close stops pairings it runs.
type Console struct {
	opt      Options
	log      *slog.Logger
	now      func() time.Time
	mux      *http.ServeMux
	tmpl     map[string]*templates // by language
	sessions *sessions
	links    *linker
	static   http.Handler

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New builds the console. Mount it at "/ui/" and Redirect at "GET /{$}".
func New(opt Options) (*Console, error) {
	if opt.Dispatcher == nil || opt.Store == nil || opt.Health == nil {
		return nil, errors.New("web: Dispatcher, Store and Health are required")
	}
	if opt.TokensConfigured == nil {
		opt.TokensConfigured = func() bool { return false }
	}
	if opt.CheckToken == nil {
		opt.CheckToken = func(string) (string, error) { return "", ErrInvalidToken }
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.SessionTTL <= 0 {
		opt.SessionTTL = 12 * time.Hour
	}
	if opt.Refresh <= 0 {
		opt.Refresh = 10 * time.Second
	}
	if opt.LinkTimeout <= 0 {
		opt.LinkTimeout = 5 * time.Minute
	}
	tm, err := parseTemplates()
	if err != nil {
		return nil, err
	}
	static, _ := fs.Sub(files, "static")
	ctx, cancel := context.WithCancel(context.Background())
	c := &Console{
		opt: opt, log: opt.Logger, now: opt.Now, mux: http.NewServeMux(), tmpl: tm,
		sessions: newSessions(opt.Now, opt.SessionTTL),
		static:   http.StripPrefix("/ui/static/", http.FileServerFS(static)),
		ctx:      ctx, cancel: cancel,
	}
	c.links = &linker{c: c, runs: map[string]*linkRun{}}
	c.routes()
	return c, nil
}

// Close cancels running pairings and waits for them.
func (c *Console) Close() error {
	c.cancel()
	c.wg.Wait()
	return nil
}

// Redirect sends "/" to the console.
func Redirect() http.Handler {
	return http.RedirectHandler("/ui/", http.StatusFound)
}

func (c *Console) routes() {
	m := c.mux
	m.Handle("GET /ui/static/", c.static)
	m.HandleFunc("GET /ui/login", c.loginPage)
	m.HandleFunc("POST /ui/login", c.login)
	m.HandleFunc("GET /ui/lang", c.setLang)
	m.Handle("POST /ui/logout", c.guard(c.logout))
	m.Handle("GET /ui/{$}", c.guard(c.overview))
	m.Handle("GET /ui/messages/{id}", c.guard(c.message))
	m.Handle("GET /ui/send", c.guard(c.sendPage))
	m.Handle("POST /ui/send", c.guard(c.send))
	m.Handle("GET /ui/conversations", c.guard(c.conversations))
	m.Handle("GET /ui/conversations/{id}", c.guard(c.conversation))
	m.Handle("POST /ui/conversations/{id}/reply", c.guard(c.reply))
	m.Handle("GET /ui/channels/{name}/link", c.guard(c.linkPage))
	m.Handle("POST /ui/channels/{name}/link", c.guard(c.linkStart))
	m.Handle("GET /ui/channels/{name}/link/status", c.guard(c.linkStatus))
	m.Handle("GET /ui/channels/{name}/link/qr.png", c.guard(c.linkQR))
	m.Handle("POST /ui/channels/{name}/unlink", c.guard(c.unlink))
	m.Handle("GET /ui/channels/{name}/kakao-login", c.guard(c.kakaoLogin))
	m.HandleFunc("GET /ui/kakao/callback", c.kakaoCallback)
	m.Handle("/ui/", c.guard(func(w http.ResponseWriter, r *http.Request, s *session) {
		c.fail(w, r, s, http.StatusNotFound, "err.not_found")
	}))
}

// ServeHTTP applies the loopback rule and the security headers, then routes.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	// same-origin, not no-referrer: with no-referrer browsers send
	// "Origin: null" on form posts, which the CSRF check refuses.
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; "+
		"connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	if !c.opt.TokensConfigured() && !isLocal(r) {
		http.Error(w, "403 forbidden: no API tokens are configured, so the console is served to loopback clients only", http.StatusForbidden)
		return
	}
	c.mux.ServeHTTP(w, r)
}
