package web

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func TestRootRedirectsToConsole(t *testing.T) {
	s := start(t, setupOpts{})
	r := s.client(t).get("/")
	if r.status != http.StatusFound || r.location != "/ui/" {
		t.Fatalf("GET / = %d %q, want 302 to /ui/", r.status, r.location)
	}
}

func TestWithoutTokensOnlyLoopbackIsServed(t *testing.T) {
	s := start(t, setupOpts{})
	c := s.client(t)
	if r := c.get("/ui/"); r.status != http.StatusOK || !strings.Contains(r.body, `id="ch-hook"`) {
		t.Fatalf("loopback GET /ui/ = %d, want 200 with the channels\n%s", r.status, r.body)
	}
	for _, path := range []string{"/ui/", "/ui/login", "/ui/static/style.css", "/ui/messages/x", "/ui/kakao/callback"} {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.RemoteAddr = "192.0.2.7:51234"
		w := httptest.NewRecorder()
		s.c.ServeHTTP(w, req)
		if w.Code != http.StatusForbidden {
			t.Errorf("non-loopback GET %s without tokens = %d, want 403", path, w.Code)
		}
	}
	req := httptest.NewRequest(http.MethodPost, "/ui/send", strings.NewReader("to=owner&text=hi"))
	req.RemoteAddr = "[2001:db8::1]:443"
	w := httptest.NewRecorder()
	s.c.ServeHTTP(w, req)
	if w.Code != http.StatusForbidden {
		t.Errorf("non-loopback POST without tokens = %d, want 403", w.Code)
	}
}

func TestWithoutTokensLoopbackPostsStillNeedTheCSRFToken(t *testing.T) {
	s := start(t, setupOpts{})
	c := s.client(t)
	if r := c.post("/ui/send", url.Values{"to": {"owner"}, "text": {"hi"}}); r.status != http.StatusForbidden {
		t.Fatalf("POST without a session = %d, want 403", r.status)
	}
	tok := c.csrf("/ui/send")
	if r := c.post("/ui/send", url.Values{"csrf": {tok + "x"}, "to": {"owner"}, "text": {"hi"}}); r.status != http.StatusForbidden {
		t.Fatalf("POST with a wrong token = %d, want 403", r.status)
	}
	if r := c.post("/ui/send", url.Values{"csrf": {tok}, "to": {"owner"}, "text": {"hi"}}); r.status != http.StatusSeeOther {
		t.Fatalf("POST with the token = %d, want 303\n%s", r.status, r.body)
	}
}

func TestWithTokensPagesNeedALogin(t *testing.T) {
	s := start(t, setupOpts{tokens: true})
	c := s.client(t)
	for _, path := range []string{"/ui/", "/ui/send", "/ui/messages/01ABC", "/ui/conversations", "/ui/channels/hook/link"} {
		r := c.get(path)
		if r.status != http.StatusSeeOther || !strings.HasPrefix(r.location, "/ui/login?next=") {
			t.Errorf("GET %s without a session = %d %q, want 303 to the login", path, r.status, r.location)
		}
	}
	if r := c.post("/ui/send", url.Values{"to": {"owner"}, "text": {"hi"}}); r.status != http.StatusUnauthorized {
		t.Errorf("POST /ui/send without a session = %d, want 401", r.status)
	}
	// A bearer header is not a console session.
	if r := c.get("/ui/", "Authorization", "Bearer "+adminSecret); r.status != http.StatusSeeOther {
		t.Errorf("GET /ui/ with a bearer header = %d, want 303 to the login", r.status)
	}
	// Tokens make the console reachable beyond loopback, behind the login.
	req := httptest.NewRequest(http.MethodGet, "/ui/", nil)
	req.RemoteAddr = "192.0.2.7:51234"
	w := httptest.NewRecorder()
	s.c.ServeHTTP(w, req)
	if w.Code != http.StatusSeeOther {
		t.Errorf("non-loopback GET /ui/ with tokens = %d, want 303 to the login", w.Code)
	}
}

func TestLoginRefusesWrongAndNonAdminTokens(t *testing.T) {
	s := start(t, setupOpts{tokens: true})
	c := s.client(t)
	r := c.login("not-a-token")
	if r.status != http.StatusUnauthorized || !strings.Contains(r.body, "not valid") {
		t.Fatalf("wrong token: %d, want 401 'not valid'\n%s", r.status, r.body)
	}
	r = c.login(sendSecret)
	if r.status != http.StatusUnauthorized || !strings.Contains(r.body, "lacks the admin scope") {
		t.Fatalf("send-only token: %d, want 401 'lacks the admin scope'", r.status)
	}
	if strings.Contains(r.body, sendSecret) {
		t.Fatal("the login page echoes the token")
	}
	if g := c.get("/ui/"); g.status != http.StatusSeeOther {
		t.Fatalf("after refused logins GET /ui/ = %d, want 303", g.status)
	}
	// A login POST without the login form's CSRF token is refused.
	if p := c.post("/ui/login", url.Values{"token": {adminSecret}}); p.status != http.StatusForbidden {
		t.Fatalf("login without csrf = %d, want 403", p.status)
	}
}

func TestLoginSetsAStrictSessionCookieAndLogoutEndsIt(t *testing.T) {
	s := start(t, setupOpts{tokens: true})
	c := s.client(t)
	before := c.get("/ui/login")
	r := c.login(adminSecret)
	if r.status != http.StatusSeeOther || r.location != "/ui/" {
		t.Fatalf("login = %d %q, want 303 to /ui/\n%s", r.status, r.location, r.body)
	}
	var ck *http.Cookie
	for _, k := range (&http.Response{Header: r.header}).Cookies() {
		if k.Name == sessionCookie && k.Value != "" {
			ck = k
		}
	}
	if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Secure {
		t.Fatalf("session cookie = %+v, want HttpOnly, SameSite=Strict, not Secure over plain HTTP", ck)
	}
	for _, k := range (&http.Response{Header: before.header}).Cookies() {
		if k.Name == sessionCookie && k.Value == ck.Value {
			t.Fatal("the session id did not change at login")
		}
	}
	page := c.get("/ui/")
	if page.status != http.StatusOK || !strings.Contains(page.body, "ops") {
		t.Fatalf("GET /ui/ after login = %d, want 200 naming the token", page.status)
	}
	for _, secret := range []string{adminSecret, sendSecret} {
		if strings.Contains(page.body, secret) {
			t.Fatal("a page shows a token secret")
		}
	}
	tok := csrfRE.FindStringSubmatch(page.body)[1]
	if r := c.post("/ui/logout", url.Values{"csrf": {"wrong"}}); r.status != http.StatusForbidden {
		t.Fatalf("logout with a bad csrf = %d, want 403", r.status)
	}
	if r := c.post("/ui/logout", url.Values{"csrf": {tok}}); r.status != http.StatusSeeOther {
		t.Fatalf("logout = %d, want 303", r.status)
	}
	// The old cookie is dead on the server, not only in this jar.
	req, _ := http.NewRequest(http.MethodGet, s.base+"/ui/", nil)
	req.AddCookie(ck)
	if r := (&client{t: t, base: s.base, hc: &http.Client{CheckRedirect: c.hc.CheckRedirect}}).do(req); r.status != http.StatusSeeOther {
		t.Fatalf("GET /ui/ with the logged-out cookie = %d, want 303", r.status)
	}
}

func TestPostsAreCheckedForForgery(t *testing.T) {
	s := start(t, setupOpts{tokens: true})
	c := s.client(t)
	c.login(adminSecret)
	tok := c.csrf("/ui/send")
	form := func(csrf string) url.Values { return url.Values{"csrf": {csrf}, "to": {"owner"}, "text": {"hi"}} }
	cases := []struct {
		name   string
		form   url.Values
		header []string
	}{
		{"no token", url.Values{"to": {"owner"}, "text": {"hi"}}, nil},
		{"wrong token", form(strings.Repeat("A", len(tok))), nil},
		{"other origin", form(tok), []string{"Origin", "https://evil.example"}},
		{"null origin", form(tok), []string{"Origin", "null"}},
		{"cross-site fetch", form(tok), []string{"Origin", "", "Sec-Fetch-Site", "cross-site"}},
	}
	for _, tc := range cases {
		if r := c.post("/ui/send", tc.form, tc.header...); r.status != http.StatusForbidden {
			t.Errorf("%s: POST /ui/send = %d, want 403", tc.name, r.status)
		}
	}
	if r := c.post("/ui/send", form(tok)); r.status != http.StatusSeeOther {
		t.Fatalf("a good POST = %d, want 303", r.status)
	}
}

func TestSecurityHeaders(t *testing.T) {
	s := start(t, setupOpts{})
	r := s.client(t).get("/ui/")
	for k, want := range map[string]string{"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"} {
		if got := r.header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP = %q", csp)
	}
}

func TestLanguageSwitchStaysInsideTheConsole(t *testing.T) {
	s := start(t, setupOpts{})
	c := s.client(t)
	if r := c.get("/ui/lang?l=ko&next=//evil.example/x"); r.location != "/ui/" {
		t.Fatalf("open redirect: Location %q", r.location)
	}
	if r := c.get("/ui/lang?l=ko&next=/ui/send"); r.location != "/ui/send" {
		t.Fatalf("Location %q, want /ui/send", r.location)
	}
}
