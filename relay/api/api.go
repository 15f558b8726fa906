// Package api is relay's HTTP API: JSON in and out, bearer tokens with
// scopes, loopback-only without tokens, stable error codes.
package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/relay-project/relay/relay"
	"github.com/relay-project/relay/relay/dispatch"
	"github.com/relay-project/relay/relay/health"
	"github.com/relay-project/relay/relay/metrics"
)

// MaxBody is the largest request body accepted (SPEC: 1 MiB, else 413).
const MaxBody = 1 << 20

// Scopes a token may hold.
const (
	ScopeSend  = "send"
	ScopeRead  = "read"
	ScopeAdmin = "admin"
)

// Token is one configured API token.
type Token struct {
	Name   string
	Secret string
	SendTo []string // contacts and group:NAME this token may address; empty = any
	Scopes []string
}

type token struct {
	Token
	digest [32]byte
}

// Principal is who made a request.
type Principal struct {
	Name   string // token name; "" for a loopback client without tokens
	scopes []string
	sendTo []string
	local  bool
}

// Has reports whether the principal holds scope (admin implies all).
func (p *Principal) Has(scope string) bool {
	if p.local || slices.Contains(p.scopes, ScopeAdmin) {
		return true
	}
	return slices.Contains(p.scopes, scope)
}

// Deps are what the API serves from.
type Deps struct {
	Dispatcher *dispatch.Dispatcher
	Store      relay.Store
	Health     *health.Monitor
	Metrics    *metrics.Metrics
	Logger     *slog.Logger
	// Inbound returns the webhook handler of a channel, if it has one.
	Inbound func(typ, channel string) (http.Handler, bool)
	// Conversations serves customer conversations and the web form; nil
	// answers those endpoints with 404.
	Conversations Conversations
}

// Server routes the API.
type Server struct {
	deps   Deps
	log    *slog.Logger
	tokens atomic.Pointer[[]token]
	mux    *http.ServeMux
}

// New returns the API handler.
func New(deps Deps, tokens []Token) *Server {
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{deps: deps, log: deps.Logger, mux: http.NewServeMux()}
	s.SetTokens(tokens)
	s.routes()
	return s
}

// SetTokens replaces the tokens (on reload).
func (s *Server) SetTokens(ts []Token) {
	out := make([]token, len(ts))
	for i, t := range ts {
		out[i] = token{Token: t, digest: sha256.Sum256([]byte(t.Secret))}
		if len(out[i].Scopes) == 0 {
			out[i].Scopes = []string{ScopeSend}
		}
	}
	s.tokens.Store(&out)
}

// Handle mounts an extra handler (the web console) on the API's mux.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	m.HandleFunc("GET /readyz", s.readyz)
	m.Handle("GET /metrics", s.auth(ScopeRead, promhttp.HandlerFor(s.deps.Metrics.Registry, promhttp.HandlerOpts{}).ServeHTTP))
	m.Handle("POST /v1/messages", s.auth(ScopeSend, s.submit))
	m.Handle("GET /v1/messages", s.auth(ScopeSend, s.list))
	m.Handle("GET /v1/messages/{id}", s.auth(ScopeSend, s.get))
	m.Handle("POST /v1/messages/{id}/cancel", s.auth(ScopeAdmin, s.cancel))
	m.Handle("POST /v1/messages/{id}/retry", s.auth(ScopeAdmin, s.retry))
	m.Handle("GET /v1/channels", s.auth(ScopeRead, s.channels))
	m.Handle("POST /v1/channels/{name}/link", s.auth(ScopeAdmin, s.link))
	m.Handle("POST /v1/channels/{name}/unlink", s.auth(ScopeAdmin, s.unlink))
	m.Handle("GET /v1/channels/{name}/auth-url", s.auth(ScopeAdmin, s.authURL))
	m.Handle("POST /v1/channels/{name}/authorize", s.auth(ScopeAdmin, s.authorize))
	m.HandleFunc("POST /v1/inbound/{type}/{channel}", s.inbound)
	m.HandleFunc("POST /v1/inbound/form", s.form)
	m.Handle("GET /v1/conversations", s.auth(ScopeRead, s.conversations))
	m.Handle("GET /v1/conversations/{id}", s.auth(ScopeRead, s.conversation))
	m.Handle("POST /v1/conversations/{id}/reply", s.auth(ScopeSend, s.replyConversation))
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
}

// ServeHTTP limits bodies and routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength > MaxBody {
		writeError(w, http.StatusRequestEntityTooLarge, "too_large", "request body over 1 MiB")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
	s.mux.ServeHTTP(w, r)
}

type ctxKey struct{}

// PrincipalOf returns the authenticated caller of a request.
func PrincipalOf(ctx context.Context) *Principal {
	p, _ := ctx.Value(ctxKey{}).(*Principal)
	return p
}

// Authenticate checks the request's bearer token (or, without tokens, that
// it comes from loopback or the unix socket). It returns the principal or
// writes the error.
func (s *Server) Authenticate(w http.ResponseWriter, r *http.Request) (*Principal, bool) {
	toks := *s.tokens.Load()
	if len(toks) == 0 {
		if !IsLocal(r) {
			writeError(w, http.StatusForbidden, "forbidden", "no tokens are configured: only loopback clients are served")
			return nil, false
		}
		if why := crossSite(r); why != "" {
			writeError(w, http.StatusForbidden, "forbidden", why)
			return nil, false
		}
		return &Principal{local: true}, true
	}
	h := r.Header.Get("Authorization")
	secret, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || secret == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="relay"`)
		writeError(w, http.StatusUnauthorized, "unauthorized", "missing bearer token")
		return nil, false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(secret)))
	var match *token
	for i := range toks {
		// Compare every token, in constant time, so timing tells nothing.
		if subtle.ConstantTimeCompare(got[:], toks[i].digest[:]) == 1 {
			match = &toks[i]
		}
	}
	if match == nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="relay", error="invalid_token"`)
		writeError(w, http.StatusUnauthorized, "unauthorized", "invalid token")
		return nil, false
	}
	return &Principal{Name: match.Name, scopes: match.Scopes, sendTo: match.SendTo}, true
}

func (s *Server) auth(scope string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := s.Authenticate(w, r)
		if !ok {
			return
		}
		if !p.Has(scope) {
			writeError(w, http.StatusForbidden, "forbidden", "this token lacks the "+scope+" scope")
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, p)))
	})
}

// crossSite explains why a tokenless loopback request must be refused
// because a browser was made to send it: a page on another site posting a
// form (CSRF), or a name that resolves to 127.0.0.1 (DNS rebinding). A
// loopback client without tokens is trusted, so a browser on the box (or
// an SSH tunnel to it) must not lend that trust to any web page.
func crossSite(r *http.Request) string {
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" || r.Header.Get("Sec-Fetch-Site") == "same-site" {
		return "cross-site request refused"
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil && net.ParseIP(host) != nil {
		// TCP: the Host must name loopback too.
		if !loopbackHost(r.Host) {
			return "Host " + r.Host + " is not a loopback name: use localhost or 127.0.0.1"
		}
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return "cross-origin request refused"
		}
	}
	return ""
}

func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// IsLocal reports whether the request came from loopback or a unix socket.
func IsLocal(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr == "" || r.RemoteAddr == "@" // unix socket peers have no address
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if err := s.deps.Store.Ping(r.Context()); err != nil {
		writeError(w, http.StatusServiceUnavailable, "not_ready", "store: "+err.Error())
		return
	}
	if !s.deps.Dispatcher.Running() {
		writeError(w, http.StatusServiceUnavailable, "not_ready", "workers are not running")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) inbound(w http.ResponseWriter, r *http.Request) {
	if s.deps.Inbound == nil {
		writeError(w, http.StatusNotFound, "not_found", "no inbound channels")
		return
	}
	h, ok := s.deps.Inbound(r.PathValue("type"), r.PathValue("channel"))
	if !ok {
		writeError(w, http.StatusNotFound, "unknown_channel", "no channel "+r.PathValue("channel")+" of type "+r.PathValue("type")+" takes webhooks")
		return
	}
	h.ServeHTTP(w, r)
}

// ErrorBody is the JSON error envelope.
type ErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	var b ErrorBody
	b.Error.Code, b.Error.Message = code, msg
	writeJSON(w, status, b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// errStatus maps domain errors to API errors.
func errStatus(err error) (int, string) {
	switch {
	case errors.Is(err, relay.ErrUnknownContact):
		return http.StatusUnprocessableEntity, "unknown_contact"
	case errors.Is(err, relay.ErrUnknownChannel):
		return http.StatusUnprocessableEntity, "unknown_channel"
	case errors.Is(err, relay.ErrNotFound):
		return http.StatusNotFound, "not_found"
	case errors.Is(err, relay.ErrIdempotencyReuse):
		return http.StatusUnprocessableEntity, "idempotency_conflict"
	case errors.Is(err, relay.ErrConflict):
		return http.StatusConflict, "conflict"
	default:
		return http.StatusInternalServerError, "internal"
	}
}
