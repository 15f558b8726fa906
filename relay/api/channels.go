package api

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/relay-project/relay/relay"
	"github.com/relay-project/relay/relay/health"
)

// ChannelView is one channel in GET /v1/channels.
type ChannelView struct {
	health.Status
	Account string `json:"account,omitempty"` // the linked account (WhatsApp)
}

func (s *Server) channels(w http.ResponseWriter, r *http.Request) {
	st := s.deps.Health.Status()
	rt := s.deps.Dispatcher.Runtime()
	out := make([]ChannelView, len(st))
	for i, c := range st {
		out[i] = ChannelView{Status: c}
		if ch, ok := rt.Channels[c.Name]; ok {
			if l, ok := ch.Adapter.(relay.Linker); ok {
				out[i].Account = l.LinkedAccount()
			}
		}
	}
	resp := map[string]any{"channels": out}
	if counts, err := s.deps.Store.Counts(r.Context()); err == nil {
		q := map[string]int{}
		for k, v := range counts {
			q[string(k)] = v
		}
		resp["queue"] = q
	}
	writeJSON(w, http.StatusOK, resp)
}

// ability finds the channel named in the path and the optional ability T
// of its adapter, or writes the error (unknown channel, or a channel
// without that ability, described by lacks).
func ability[T any](s *Server, w http.ResponseWriter, r *http.Request, lacks string) (T, bool) {
	var zero T
	name := r.PathValue("name")
	ch, ok := s.deps.Dispatcher.Runtime().Channels[name]
	if !ok {
		writeError(w, http.StatusNotFound, "unknown_channel", "no channel named "+name)
		return zero, false
	}
	a, ok := ch.Adapter.(T)
	if !ok {
		writeError(w, http.StatusBadRequest, "invalid_request", "channel "+name+" "+lacks)
		return zero, false
	}
	return a, true
}

// link streams pairing events as NDJSON, one relay.LinkEvent per line,
// until the account is linked, pairing fails or the client goes away.
func (s *Server) link(w http.ResponseWriter, r *http.Request) {
	l, ok := ability[relay.Linker](s, w, r, "is not linked by pairing")
	if !ok {
		return
	}
	var body struct {
		Phone string `json:"phone"`
	}
	if r.ContentLength != 0 {
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			writeError(w, http.StatusBadRequest, "invalid_json", err.Error())
			return
		}
	}
	events, err := l.Link(r.Context(), body.Phone)
	if err != nil {
		writeError(w, http.StatusConflict, "conflict", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	enc := json.NewEncoder(w)
	for ev := range events {
		if err := enc.Encode(ev); err != nil {
			return
		}
		if fl != nil {
			fl.Flush()
		}
	}
}

func (s *Server) unlink(w http.ResponseWriter, r *http.Request) {
	l, ok := ability[relay.Linker](s, w, r, "is not linked by pairing")
	if !ok {
		return
	}
	if err := l.Unlink(r.Context()); err != nil {
		writeError(w, http.StatusBadGateway, "upstream", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "unlinked"})
}

func (s *Server) authURL(w http.ResponseWriter, r *http.Request) {
	au, ok := ability[relay.Authorizer](s, w, r, "has no OAuth login")
	if !ok {
		return
	}
	redirect, state := r.URL.Query().Get("redirect_uri"), r.URL.Query().Get("state")
	if redirect == "" {
		writeError(w, http.StatusBadRequest, "invalid_request", "redirect_uri is required")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"url": au.AuthURL(redirect, state)})
}

func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	au, ok := ability[relay.Authorizer](s, w, r, "has no OAuth login")
	if !ok {
		return
	}
	var body struct {
		Code        string `json:"code"`
		RedirectURI string `json:"redirect_uri"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Code == "" || body.RedirectURI == "" {
		writeError(w, http.StatusBadRequest, "invalid_request", `body {"code", "redirect_uri"} is required`)
		return
	}
	if err := au.Authorize(r.Context(), body.Code, body.RedirectURI); err != nil {
		writeError(w, http.StatusBadGateway, "upstream", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "authorized", "at": time.Now().UTC()})
}
