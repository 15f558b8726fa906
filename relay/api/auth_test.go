package api

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/relay-project/relay/relay/metrics"
)

// TestLoopbackOnlyWithoutTokens: with no tokens configured, loopback and
// unix-socket clients are served and anyone else gets 403.
func TestLoopbackOnlyWithoutTokens(t *testing.T) {
	s := New(Deps{Metrics: metrics.New()}, nil)
	for _, c := range []struct {
		remote string
		ok     bool
	}{
		{"127.0.0.1:5000", true},
		{"[::1]:5000", true},
		{"@", true}, // unix socket peer
		{"203.0.113.9:5000", false},
		{"192.168.0.10:5000", false},
	} {
		r := httptest.NewRequest("GET", "/v1/channels", nil)
		r.RemoteAddr = c.remote
		r.Host = "localhost:8780"
		w := httptest.NewRecorder()
		_, ok := s.Authenticate(w, r)
		if ok != c.ok {
			t.Errorf("%s: served=%v, want %v", c.remote, ok, c.ok)
		}
		if !c.ok && w.Code != http.StatusForbidden {
			t.Errorf("%s: status %d, want 403", c.remote, w.Code)
		}
	}
}

// TestLoopbackRefusesBrowsersSentByOtherSites: without tokens a browser
// on the box must not be turned against relay by a web page: cross-site
// requests (CSRF) and names that resolve to loopback (DNS rebinding) are
// refused; the CLI and curl are served.
func TestLoopbackRefusesBrowsersSentByOtherSites(t *testing.T) {
	s := New(Deps{Metrics: metrics.New()}, nil)
	for _, c := range []struct {
		name, host string
		hdr        map[string]string
		ok         bool
	}{
		{"curl", "127.0.0.1:8780", nil, true},
		{"localhost", "localhost:8780", nil, true},
		{"same origin page", "localhost:8780", map[string]string{"Origin": "http://localhost:8780", "Sec-Fetch-Site": "same-origin"}, true},
		{"cross-site form", "localhost:8780", map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}, false},
		{"other origin, old browser", "localhost:8780", map[string]string{"Origin": "https://evil.example"}, false},
		{"opaque origin", "localhost:8780", map[string]string{"Origin": "null"}, false},
		{"DNS rebinding", "evil.example:8780", nil, false},
	} {
		r := httptest.NewRequest("POST", "/v1/messages", nil)
		r.RemoteAddr, r.Host = "127.0.0.1:5000", c.host
		for k, v := range c.hdr {
			r.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		if _, ok := s.Authenticate(w, r); ok != c.ok {
			t.Errorf("%s: served=%v, want %v (%s)", c.name, ok, c.ok, w.Body)
		}
	}
}

// TestTokensAreCheckedFromAnywhere: with tokens, a remote client with a
// valid token is served with that token's scopes, and loopback gets no
// free pass.
func TestTokensAreCheckedFromAnywhere(t *testing.T) {
	s := New(Deps{Metrics: metrics.New()}, []Token{{Name: "site", Secret: "abc", Scopes: []string{ScopeSend}}})
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "203.0.113.9:5000"
	r.Header.Set("Authorization", "Bearer abc")
	p, ok := s.Authenticate(httptest.NewRecorder(), r)
	if !ok || p.Name != "site" || !p.Has(ScopeSend) || p.Has(ScopeRead) {
		t.Fatalf("remote with token: %+v %v", p, ok)
	}
	r = httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "127.0.0.1:5000"
	w := httptest.NewRecorder()
	if _, ok := s.Authenticate(w, r); ok || w.Code != http.StatusUnauthorized {
		t.Fatalf("loopback without a token while tokens are configured: %v %d", ok, w.Code)
	}
}
