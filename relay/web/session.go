package web

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/relay-project/relay/relay/api"
)

const (
	sessionCookie = "relay_session"
	langCookie    = "lang"
	csrfField     = "csrf"
	// anonTTL bounds a session that has not logged in (it only carries
	// the login form's CSRF token).
	anonTTL = 30 * time.Minute
	// maxSessions bounds memory: the oldest anonymous sessions go first.
	maxSessions = 4096
	// kakaoStateTTL bounds how long a Kakao login may take.
	kakaoStateTTL = 10 * time.Minute
)

var isLocal = api.IsLocal

// session is one browser's state, kept in memory only: a restart logs
// everyone out, which is acceptable for an admin console.
type session struct {
	id        string
	csrf      string
	user      string // token name; "" for a loopback user without tokens
	authed    bool
	viaToken  bool // logged in with a token (not by being on loopback)
	expires   time.Time
	kakao     map[string]kakaoPending // state → pending login
	createdAt time.Time
}

type kakaoPending struct {
	channel  string
	redirect string
	expires  time.Time
}

type sessions struct {
	now func() time.Time
	ttl time.Duration
	mu  sync.Mutex
	m   map[string]*session
	// failed limits wrong tokens: a token is long and random, but a
	// console on a network should not be a free oracle for guessing.
	failed *rate.Limiter
}

func newSessions(now func() time.Time, ttl time.Duration) *sessions {
	return &sessions{now: now, ttl: ttl, m: map[string]*session{}, failed: rate.NewLimiter(rate.Every(time.Second), 10)}
}

func randomID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// get returns the live session of the request's cookie, or nil.
func (ss *sessions) get(r *http.Request) *session {
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := ss.m[ck.Value]
	if !ok {
		return nil
	}
	if !ss.now().Before(s.expires) {
		delete(ss.m, s.id)
		return nil
	}
	return s
}

// create stores a new session and sets its cookie.
func (ss *sessions) create(w http.ResponseWriter, r *http.Request, authed, viaToken bool, user string) *session {
	now := ss.now()
	ttl := anonTTL
	if authed {
		ttl = ss.ttl
	}
	s := &session{id: randomID(), csrf: randomID(), user: user, authed: authed, viaToken: viaToken,
		expires: now.Add(ttl), createdAt: now, kakao: map[string]kakaoPending{}}
	ss.mu.Lock()
	ss.pruneLocked(now)
	ss.m[s.id] = s
	ss.mu.Unlock()
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: s.id, Path: "/ui/", HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteStrictMode, Expires: s.expires,
	})
	return s
}

func (ss *sessions) pruneLocked(now time.Time) {
	for id, s := range ss.m {
		if !now.Before(s.expires) {
			delete(ss.m, id)
		}
	}
	for len(ss.m) >= maxSessions {
		var oldest *session
		for _, s := range ss.m {
			if oldest == nil || (!s.authed && oldest.authed) || (s.authed == oldest.authed && s.createdAt.Before(oldest.createdAt)) {
				oldest = s
			}
		}
		delete(ss.m, oldest.id)
	}
}

func (ss *sessions) drop(w http.ResponseWriter, r *http.Request, s *session) {
	ss.mu.Lock()
	delete(ss.m, s.id)
	ss.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/ui/", HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
}

// addKakaoState binds a fresh OAuth state to the session.
func (ss *sessions) addKakaoState(s *session, channel, redirect string) string {
	state := randomID()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	now := ss.now()
	for k, p := range s.kakao {
		if !now.Before(p.expires) {
			delete(s.kakao, k)
		}
	}
	s.kakao[state] = kakaoPending{channel: channel, redirect: redirect, expires: now.Add(kakaoStateTTL)}
	return state
}

// takeKakaoState consumes a state of this session; it is single-use.
func (ss *sessions) takeKakaoState(s *session, state string) (kakaoPending, bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	p, ok := s.kakao[state]
	if !ok || state == "" {
		return kakaoPending{}, false
	}
	delete(s.kakao, state)
	return p, ss.now().Before(p.expires)
}

type handler func(w http.ResponseWriter, r *http.Request, s *session)

// guard admits a logged-in session (or, without tokens, any loopback
// client, which gets a session for its CSRF token) and checks POSTs for
// cross-site request forgery.
func (c *Console) guard(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := c.sessions.get(r)
		if c.opt.TokensConfigured() {
			if s == nil || !s.authed || !s.viaToken {
				if r.Method != http.MethodGet {
					c.fail(w, r, nil, http.StatusUnauthorized, "err.login_required")
					return
				}
				http.Redirect(w, r, "/ui/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
		} else if s == nil || !s.authed {
			if r.Method != http.MethodGet {
				// A POST without a session cannot carry a valid CSRF token.
				c.fail(w, r, nil, http.StatusForbidden, "err.csrf")
				return
			}
			s = c.sessions.create(w, r, true, false, "")
		}
		if r.Method == http.MethodPost && !c.checkCSRF(r, s) {
			c.fail(w, r, s, http.StatusForbidden, "err.csrf")
			return
		}
		h(w, r, s)
	})
}

// checkCSRF requires a same-origin Origin header (when the browser sends
// one) and the session's token in the form, compared in constant time.
func (c *Console) checkCSRF(r *http.Request, s *session) bool {
	if !sameOrigin(r) {
		return false
	}
	if err := r.ParseForm(); err != nil {
		return false
	}
	got := r.PostFormValue(csrfField)
	return s != nil && got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) == 1
}

// sameOrigin rejects a request whose Origin (or, lacking it, Sec-Fetch-Site)
// says it came from another site.
func sameOrigin(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" {
		if o == "null" {
			return false
		}
		u, err := url.Parse(o)
		if err != nil || !strings.EqualFold(u.Host, r.Host) {
			return false
		}
		return true
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
		return true
	}
	return false
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	if !c.opt.TokensConfigured() {
		http.Redirect(w, r, "/ui/", http.StatusSeeOther)
		return
	}
	s := c.sessions.get(r)
	if s != nil && s.authed && s.viaToken {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	if s == nil {
		s = c.sessions.create(w, r, false, false, "")
	}
	c.render(w, r, s, http.StatusOK, "login", map[string]any{"Next": safeNext(r.URL.Query().Get("next"))})
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	if !c.opt.TokensConfigured() {
		http.Redirect(w, r, "/ui/", http.StatusSeeOther)
		return
	}
	s := c.sessions.get(r)
	if !c.checkCSRF(r, s) {
		c.fail(w, r, s, http.StatusForbidden, "err.csrf")
		return
	}
	next := safeNext(r.PostFormValue("next"))
	if !c.sessions.failed.Allow() {
		c.render(w, r, s, http.StatusTooManyRequests, "login", map[string]any{"Next": next, "Error": "login.slow_down"})
		return
	}
	name, err := c.opt.CheckToken(strings.TrimSpace(r.PostFormValue("token")))
	if err != nil {
		msg := "login.invalid"
		if errors.Is(err, ErrNotAdmin) {
			msg = "login.not_admin"
		}
		c.log.Warn("console login refused", "remote", r.RemoteAddr, "reason", err.Error())
		c.render(w, r, s, http.StatusUnauthorized, "login", map[string]any{"Next": next, "Error": msg})
		return
	}
	// A new session id on login, so an id planted before cannot ride it.
	c.sessions.drop(w, r, s)
	c.sessions.create(w, r, true, true, name)
	c.log.Info("console login", "token", name, "remote", r.RemoteAddr)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, s *session) {
	c.sessions.drop(w, r, s)
	if c.opt.TokensConfigured() {
		http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/ui/", http.StatusSeeOther)
}

// safeNext keeps redirects inside the console.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/ui/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/ui/"
	}
	return next
}

// setLang stores the chosen language in a cookie and goes back.
func (c *Console) setLang(w http.ResponseWriter, r *http.Request) {
	l := r.URL.Query().Get("l")
	if _, ok := catalogues[l]; ok {
		http.SetCookie(w, &http.Cookie{Name: langCookie, Value: l, Path: "/", MaxAge: 365 * 24 * 3600,
			SameSite: http.SameSiteLaxMode, Secure: r.TLS != nil, HttpOnly: true})
	}
	http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
}
