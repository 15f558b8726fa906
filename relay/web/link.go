package web

import (
	"context"
	"encoding/json"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"sync"

	qrcode "github.com/skip2/go-qrcode"

	"github.com/relay-project/relay/relay"
)

// linker runs at most one WhatsApp pairing per channel and keeps its
// latest event for the page to poll. The pairings belong to the console:
// Close cancels them and waits.
type linker struct {
	c       *Console
	startMu sync.Mutex // serialises starts, so two clicks make one pairing
	mu      sync.Mutex
	runs    map[string]*linkRun
}

type linkRun struct {
	seq      int // counts events, so the page knows when the QR code changed
	ev       relay.LinkEvent
	done     bool
	cancel   context.CancelFunc
	finished chan struct{}
}

// linkState is the JSON the link page polls.
type linkState struct {
	Kind    string `json:"kind"` // "idle", "waiting", "qr", "code", "success", "error"
	Seq     int    `json:"seq"`
	Code    string `json:"code,omitempty"` // the pairing code (never the QR payload)
	Account string `json:"account,omitempty"`
	Error   string `json:"error,omitempty"`
	Active  bool   `json:"active"`
	Linked  string `json:"linked,omitempty"`
}

func (l *linker) state(name string, lk relay.Linker) linkState {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := linkState{Kind: "idle", Linked: lk.LinkedAccount()}
	if run, ok := l.runs[name]; ok {
		st.Seq, st.Active = run.seq, !run.done
		switch {
		case run.ev.Kind != "":
			st.Kind = run.ev.Kind
		case !run.done:
			st.Kind = "waiting"
		}
		st.Account, st.Error = run.ev.Account, run.ev.Error
		if run.ev.Kind == "code" {
			st.Code = run.ev.Code
		}
	}
	return st
}

// start cancels a pairing in progress on the channel and starts another.
func (l *linker) start(name string, lk relay.Linker, phone string) {
	l.startMu.Lock()
	defer l.startMu.Unlock()
	l.mu.Lock()
	old := l.runs[name]
	l.mu.Unlock()
	if old != nil {
		old.cancel()
		<-old.finished
	}
	ctx, cancel := context.WithTimeout(l.c.ctx, l.c.opt.LinkTimeout)
	run := &linkRun{cancel: cancel, finished: make(chan struct{})}
	events, err := lk.Link(ctx, phone)
	l.mu.Lock()
	l.runs[name] = run
	if err != nil {
		run.seq, run.ev, run.done = 1, relay.LinkEvent{Kind: "error", Error: err.Error()}, true
		l.mu.Unlock()
		cancel()
		close(run.finished)
		return
	}
	l.mu.Unlock()
	l.c.wg.Add(1)
	go func() {
		defer l.c.wg.Done()
		defer close(run.finished)
		defer cancel()
		for ev := range events {
			l.mu.Lock()
			run.seq++
			run.ev = ev
			l.mu.Unlock()
			if ev.Kind == "success" {
				l.c.log.Info("console: channel linked", "channel", name)
			}
		}
		l.mu.Lock()
		run.done = true
		if run.ev.Kind != "success" && run.ev.Kind != "error" {
			run.seq++
			run.ev = relay.LinkEvent{Kind: "error", Error: "pairing ended without a link (timed out or cancelled)"}
		}
		l.mu.Unlock()
	}()
}

func (l *linker) qr(name string) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	run, ok := l.runs[name]
	if !ok || run.done || run.ev.Kind != "qr" {
		return "", false
	}
	return run.ev.Code, true
}

func (c *Console) channelAdapter(name string) (relay.Adapter, bool) {
	ch, ok := c.opt.Dispatcher.Runtime().Channels[name]
	if !ok {
		return nil, false
	}
	return ch.Adapter, true
}

func (c *Console) linkerOf(w http.ResponseWriter, r *http.Request, s *session) (string, relay.Linker, bool) {
	name := r.PathValue("name")
	a, ok := c.channelAdapter(name)
	if !ok {
		c.fail(w, r, s, http.StatusNotFound, "err.no_channel")
		return "", nil, false
	}
	lk, ok := a.(relay.Linker)
	if !ok {
		c.fail(w, r, s, http.StatusNotFound, "err.not_linkable")
		return "", nil, false
	}
	return name, lk, true
}

func (c *Console) linkPage(w http.ResponseWriter, r *http.Request, s *session) {
	name, lk, ok := c.linkerOf(w, r, s)
	if !ok {
		return
	}
	c.render(w, r, s, http.StatusOK, "link", map[string]any{
		"Channel": name, "State": c.links.state(name, lk), "Unlinked": r.URL.Query().Get("unlinked") != "",
		"Base": template.URL("/ui/channels/" + url.PathEscape(name) + "/link"),
	})
}

func (c *Console) linkStart(w http.ResponseWriter, r *http.Request, s *session) {
	name, lk, ok := c.linkerOf(w, r, s)
	if !ok {
		return
	}
	phone := strings.TrimSpace(r.PostFormValue("phone"))
	if len(phone) > 32 || strings.ContainsAny(phone, "\r\n<>") {
		c.fail(w, r, s, http.StatusBadRequest, "link.bad_phone")
		return
	}
	c.links.start(name, lk, phone)
	http.Redirect(w, r, "/ui/channels/"+url.PathEscape(name)+"/link", http.StatusSeeOther)
}

func (c *Console) linkStatus(w http.ResponseWriter, r *http.Request, s *session) {
	name, lk, ok := c.linkerOf(w, r, s)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(c.links.state(name, lk))
}

func (c *Console) linkQR(w http.ResponseWriter, r *http.Request, s *session) {
	name, _, ok := c.linkerOf(w, r, s)
	if !ok {
		return
	}
	code, ok := c.links.qr(name)
	if !ok {
		http.Error(w, "no QR code right now", http.StatusNotFound)
		return
	}
	png, err := qrcode.Encode(code, qrcode.Medium, 320)
	if err != nil {
		c.log.Error("console: encode QR code", "err", err)
		http.Error(w, "cannot draw the QR code", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(png)
}

func (c *Console) unlink(w http.ResponseWriter, r *http.Request, s *session) {
	name, lk, ok := c.linkerOf(w, r, s)
	if !ok {
		return
	}
	if err := lk.Unlink(r.Context()); err != nil {
		c.log.Error("console: unlink", "channel", name, "err", err)
		c.fail(w, r, s, http.StatusBadGateway, "link.unlink_failed", err.Error())
		return
	}
	c.log.Info("console: channel unlinked", "channel", name)
	http.Redirect(w, r, "/ui/channels/"+url.PathEscape(name)+"/link?unlinked=1", http.StatusSeeOther)
}

// origin is the console's origin as the browser sees it.
func (c *Console) origin(r *http.Request) string {
	if c.opt.PublicURL != "" {
		return strings.TrimRight(c.opt.PublicURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// kakaoLogin sends the browser to Kakao's login with a state bound to this
// session. It is a plain link, not a form: the CSP's form-action 'self'
// would stop a form's redirect to Kakao, and starting a login changes
// nothing until the callback, which checks the state.
func (c *Console) kakaoLogin(w http.ResponseWriter, r *http.Request, s *session) {
	name := r.PathValue("name")
	a, ok := c.channelAdapter(name)
	if !ok {
		c.fail(w, r, s, http.StatusNotFound, "err.no_channel")
		return
	}
	au, ok := a.(relay.Authorizer)
	if !ok {
		c.fail(w, r, s, http.StatusNotFound, "err.not_authorizer")
		return
	}
	redirect := c.origin(r) + "/ui/kakao/callback"
	state := c.sessions.addKakaoState(s, name, redirect)
	http.Redirect(w, r, au.AuthURL(redirect, state), http.StatusSeeOther)
}

// kakaoCallback finishes a Kakao login. Kakao redirects here cross-site,
// and a SameSite=Strict cookie is not sent on a cross-site navigation; so
// without a cookie the page reloads itself once from our own origin (a
// same-site navigation, which carries the cookie).
func (c *Console) kakaoCallback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s := c.sessions.get(r)
	if s == nil && q.Get("bounce") == "" {
		q.Set("bounce", "1")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		u := template.HTMLEscapeString("/ui/kakao/callback?" + q.Encode())
		_, _ = w.Write([]byte(`<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=` + u +
			`"><title>relay</title><p><a href="` + u + `">Continue</a></p>`))
		return
	}
	if s == nil || !s.authed || (c.opt.TokensConfigured() && !s.viaToken) {
		c.fail(w, r, nil, http.StatusUnauthorized, "kakao.session_lost")
		return
	}
	p, ok := c.sessions.takeKakaoState(s, q.Get("state"))
	if !ok {
		c.fail(w, r, s, http.StatusBadRequest, "kakao.bad_state")
		return
	}
	data := map[string]any{"Channel": p.channel}
	if e := q.Get("error"); e != "" {
		data["Error"] = "kakao.refused"
		data["Detail"] = shorten(e, 80)
		c.render(w, r, s, http.StatusOK, "kakao", data)
		return
	}
	a, ok := c.channelAdapter(p.channel)
	au, isAuth := a.(relay.Authorizer)
	if !ok || !isAuth {
		c.fail(w, r, s, http.StatusNotFound, "err.no_channel")
		return
	}
	if err := au.Authorize(r.Context(), q.Get("code"), p.redirect); err != nil {
		c.log.Error("console: kakao login", "channel", p.channel, "err", err)
		data["Error"] = "kakao.failed"
		data["Detail"] = err.Error()
		c.render(w, r, s, http.StatusBadGateway, "kakao", data)
		return
	}
	c.log.Info("console: kakao login stored", "channel", p.channel)
	data["OK"] = true
	c.render(w, r, s, http.StatusOK, "kakao", data)
}
