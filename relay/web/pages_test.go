package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relay-project/relay/relay"
)

// send submits a test message through the form and returns its id.
func send(t *testing.T, c *client, to, text string) string {
	t.Helper()
	tok := c.csrf("/ui/send")
	r := c.post("/ui/send", url.Values{"csrf": {tok}, "to": {to}, "text": {text}})
	id, ok := strings.CutPrefix(r.location, "/ui/messages/")
	if r.status != http.StatusSeeOther || !ok {
		t.Fatalf("POST /ui/send = %d %q\n%s", r.status, r.location, r.body)
	}
	return id
}

func TestTestSendFailsOverAndTheMessagePageShowsTheRoute(t *testing.T) {
	s := start(t, setupOpts{tokens: true})
	c := s.client(t)
	c.login(adminSecret)
	s.up.set(false, true) // health answers, sends fail: one failover attempt
	id := send(t, c, "owner", "printer on fire")
	waitFor(t, "delivery on backup", 10*time.Second, func() bool {
		m, err := s.d.Store().Message(context.Background(), id)
		return err == nil && m.Status() == "delivered"
	})
	page := c.get("/ui/messages/" + id)
	if page.status != http.StatusOK {
		t.Fatalf("message page = %d", page.status)
	}
	for _, want := range []string{id, "printer on fire", "owner", "hook", "temporary failure", "backup", "503"} {
		if !strings.Contains(page.body, want) {
			t.Errorf("message page lacks %q", want)
		}
	}
	over := c.get("/ui/")
	if !strings.Contains(over.body, `data-message="`+id+`"`) || !strings.Contains(over.body, "hook ✗") || !strings.Contains(over.body, "backup ✓") {
		t.Fatalf("overview does not show the failover of %s\n%s", id, over.body)
	}
	if !strings.Contains(over.body, `class="delivery failover"`) {
		t.Error("the failover row is not marked")
	}
}

func TestSendRefusesUnknownRecipientsAndEmptyText(t *testing.T) {
	s := start(t, setupOpts{})
	c := s.client(t)
	tok := c.csrf("/ui/send")
	if r := c.post("/ui/send", url.Values{"csrf": {tok}, "to": {"stranger"}, "text": {"hi"}}); r.status != http.StatusBadRequest || !strings.Contains(r.body, "Choose a contact") {
		t.Errorf("unknown recipient = %d", r.status)
	}
	if r := c.post("/ui/send", url.Values{"csrf": {tok}, "to": {"owner"}, "text": {"  "}}); r.status != http.StatusBadRequest {
		t.Errorf("empty text = %d", r.status)
	}
	page := c.get("/ui/send")
	for _, want := range []string{`value="owner"`, `value="mom"`, `value="group:family"`} {
		if !strings.Contains(page.body, want) {
			t.Errorf("send form lacks %s", want)
		}
	}
	id := send(t, c, "group:family", "dinner at 7")
	m, err := s.d.Store().Message(context.Background(), id)
	if err != nil || len(m.Deliveries) != 2 {
		t.Fatalf("group send: %v, %d deliveries", err, len(m.Deliveries))
	}
}

func TestMessagePageOfAnUnknownID(t *testing.T) {
	s := start(t, setupOpts{})
	if r := s.client(t).get("/ui/messages/01NOPE"); r.status != http.StatusNotFound || !strings.Contains(r.body, "no message") {
		t.Fatalf("unknown message = %d", r.status)
	}
}

func TestOverviewShowsHealthHistoryAndQueue(t *testing.T) {
	s := start(t, setupOpts{})
	c := s.client(t)
	waitFor(t, "hook up", 5*time.Second, func() bool { st, _ := s.d.Health().Get("hook"); return st.State == "up" })
	s.up.set(true, false)
	waitFor(t, "hook down", 5*time.Second, func() bool { st, _ := s.d.Health().Get("hook"); return st.State == "down" })
	r := c.get("/ui/")
	if !strings.Contains(r.body, `id="ch-hook" data-state="down"`) {
		t.Fatalf("overview does not show hook down\n%s", r.body)
	}
	if !strings.Contains(r.body, "The service has a problem on its side.") || !strings.Contains(r.body, "503") {
		t.Error("the last error is not shown in plain words with its detail")
	}
	if n := strings.Count(r.body, `class="cell `); n != 2*stripCells+0 {
		t.Errorf("%d strip cells, want %d (two channels)", n, 2*stripCells)
	}
	if !strings.Contains(r.body, `class="cell down"`) {
		t.Error("the strip's last cell does not show the outage")
	}
	if !strings.Contains(r.body, `data-refresh="10"`) {
		t.Error("the overview does not refresh itself")
	}
	if !strings.Contains(r.body, `class="q-queued"`) {
		t.Error("no queue counts")
	}
}

func TestLanguageFollowsAcceptLanguageAndTheCookie(t *testing.T) {
	s := start(t, setupOpts{})
	c := s.client(t)
	if r := c.get("/ui/", "Accept-Language", "ko-KR,ko;q=0.9,en;q=0.5"); !strings.Contains(r.body, "최근 전달") || !strings.Contains(r.body, `lang="ko"`) {
		t.Fatal("Accept-Language ko does not give Korean")
	}
	if r := c.get("/ui/", "Accept-Language", "fr-FR"); !strings.Contains(r.body, "Recent deliveries") {
		t.Fatal("an unsupported language does not fall back to English")
	}
	c.get("/ui/lang?l=en&next=/ui/")
	if r := c.get("/ui/", "Accept-Language", "ko"); !strings.Contains(r.body, "Recent deliveries") {
		t.Fatal("the lang cookie does not override Accept-Language")
	}
}

// fakeConversations is an in-memory Conversations.
type fakeConversations struct {
	mu      sync.Mutex
	replies []string
}

func (f *fakeConversations) List(context.Context, int) ([]ConversationSummary, error) {
	return []ConversationSummary{{ID: "c1", Tag: "K7", Channel: "telegram", Customer: "Min-ji", LastText: "Is the shop open <today>?",
		LastAt: time.Now().Add(-5 * time.Minute), State: "open", Unanswered: 1}}, nil
}

func (f *fakeConversations) Get(_ context.Context, id string) (*ConversationDetail, error) {
	if id != "c1" {
		return nil, fmt.Errorf("conversation %s: %w", id, relay.ErrNotFound)
	}
	s, _ := f.List(context.Background(), 1)
	return &ConversationDetail{ConversationSummary: s[0], Messages: []ConversationMessage{
		{Direction: DirectionIn, Text: "Is the shop open <today>?", At: time.Now().Add(-5 * time.Minute), Status: "received"},
		{Direction: DirectionOut, Text: "Yes, until 9.", At: time.Now(), Status: "delivered", MessageID: "01REPLY"},
	}}, nil
}

func (f *fakeConversations) Reply(_ context.Context, id, text string) (string, error) {
	if id == "closed" {
		return "", fmt.Errorf("%w: the customer blocked the bot", ErrCannotReply)
	}
	if id != "c1" {
		return "", relay.ErrNotFound
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.replies = append(f.replies, text)
	return "01NEWREPLY", nil
}

func TestConversationsNotConfigured(t *testing.T) {
	s := start(t, setupOpts{})
	c := s.client(t)
	for _, path := range []string{"/ui/conversations", "/ui/conversations/c1"} {
		if r := c.get(path); r.status != http.StatusOK || !strings.Contains(r.body, "not configured") {
			t.Errorf("GET %s = %d, want the not-configured notice", path, r.status)
		}
	}
	tok := c.csrf("/ui/send")
	if r := c.post("/ui/conversations/c1/reply", url.Values{"csrf": {tok}, "text": {"hi"}}); r.status != http.StatusNotFound {
		t.Errorf("reply without the feature = %d, want 404", r.status)
	}
}

func TestConversationsListDetailAndReply(t *testing.T) {
	fc := &fakeConversations{}
	s := start(t, setupOpts{tokens: true, modify: func(o *Options) { o.Conversations = fc }})
	c := s.client(t)
	c.login(adminSecret)
	list := c.get("/ui/conversations")
	for _, want := range []string{"K7", "Min-ji", "telegram", "&lt;today&gt;", `href="/ui/conversations/c1"`} {
		if !strings.Contains(list.body, want) {
			t.Errorf("list lacks %q", want)
		}
	}
	detail := c.get("/ui/conversations/c1")
	if !strings.Contains(detail.body, "Yes, until 9.") || !strings.Contains(detail.body, `class="msg out"`) || !strings.Contains(detail.body, `/ui/messages/01REPLY`) {
		t.Errorf("detail page lacks the messages\n%s", detail.body)
	}
	if r := c.get("/ui/conversations/nope"); r.status != http.StatusNotFound {
		t.Errorf("unknown conversation = %d", r.status)
	}
	tok := csrfRE.FindStringSubmatch(detail.body)[1]
	if r := c.post("/ui/conversations/c1/reply", url.Values{"csrf": {"bad"}, "text": {"hi"}}); r.status != http.StatusForbidden {
		t.Errorf("reply with a bad csrf = %d, want 403", r.status)
	}
	r := c.post("/ui/conversations/c1/reply", url.Values{"csrf": {tok}, "text": {"See you soon"}})
	if r.status != http.StatusSeeOther || r.location != "/ui/conversations/c1?sent=01NEWREPLY" {
		t.Fatalf("reply = %d %q", r.status, r.location)
	}
	if fc.replies[0] != "See you soon" {
		t.Errorf("replies = %q", fc.replies)
	}
	if r := c.get(r.location); !strings.Contains(r.body, "Reply queued") {
		t.Error("no confirmation after the reply")
	}
	if r := c.post("/ui/conversations/closed/reply", url.Values{"csrf": {tok}, "text": {"hi"}}); r.status != http.StatusConflict || !strings.Contains(r.body, "blocked the bot") {
		t.Errorf("reply refused by the conversation = %d", r.status)
	}
	if r := c.post("/ui/conversations/c1/reply", url.Values{"csrf": {tok}, "text": {""}}); r.status != http.StatusBadRequest {
		t.Errorf("empty reply = %d", r.status)
	}
}

func TestWhatsAppLinkByQRCodeThenUnlink(t *testing.T) {
	s := start(t, setupOpts{tokens: true, extra: "[channels.wa]\ntype = \"fakewa\"\n"})
	c := s.client(t)
	c.login(adminSecret)
	if r := c.get("/ui/channels/hook/link"); r.status != http.StatusNotFound {
		t.Errorf("link page of a webhook = %d, want 404", r.status)
	}
	if r := c.get("/ui/"); !strings.Contains(r.body, `href="/ui/channels/wa/link"`) {
		t.Error("the overview has no link button for the pairing channel")
	}
	page := c.get("/ui/channels/wa/link")
	tok := csrfRE.FindStringSubmatch(page.body)[1]
	if r := c.post("/ui/channels/wa/link", url.Values{"csrf": {"bad"}}); r.status != http.StatusForbidden {
		t.Fatalf("start linking with a bad csrf = %d, want 403", r.status)
	}
	if r := c.post("/ui/channels/wa/link", url.Values{"csrf": {tok}}); r.status != http.StatusSeeOther {
		t.Fatalf("start linking = %d", r.status)
	}
	status := func() linkState {
		var st linkState
		r := c.get("/ui/channels/wa/link/status")
		if err := json.Unmarshal([]byte(r.body), &st); err != nil {
			t.Fatalf("status: %v: %s", err, r.body)
		}
		if strings.Contains(r.body, "fake-qr-payload") {
			t.Fatal("the status JSON carries the QR payload")
		}
		return st
	}
	waitFor(t, "a QR code", 5*time.Second, func() bool { return status().Kind == "qr" })
	img := c.get("/ui/channels/wa/link/qr.png")
	if img.status != http.StatusOK || img.header.Get("Content-Type") != "image/png" {
		t.Fatalf("qr.png = %d %s", img.status, img.header.Get("Content-Type"))
	}
	pic, err := png.Decode(bytes.NewReader([]byte(img.body)))
	if err != nil || pic.Bounds().Dx() != 320 {
		t.Fatalf("qr.png is not a 320px PNG: %v", err)
	}
	if r := c.get("/ui/channels/wa/link"); !strings.Contains(r.body, `id="qr" class="qr"`) || !strings.Contains(r.body, "qr.png?seq=1") {
		t.Error("the link page does not show the QR image")
	}
	fakeFor("wa").succeed("+82 10-1234-5678")
	waitFor(t, "linked", 5*time.Second, func() bool { return status().Linked == "+82 10-1234-5678" })
	page = c.get("/ui/channels/wa/link")
	if !strings.Contains(page.body, "10-1234-5678") || !strings.Contains(page.body, `id="unlink"`) {
		t.Fatalf("the link page does not show the linked account and the unlink button\n%s", page.body)
	}
	if r := c.post("/ui/channels/wa/unlink", url.Values{"csrf": {"bad"}}); r.status != http.StatusForbidden {
		t.Fatalf("unlink with a bad csrf = %d", r.status)
	}
	if fakeFor("wa").LinkedAccount() == "" {
		t.Fatal("a refused unlink unlinked")
	}
	if r := c.post("/ui/channels/wa/unlink", url.Values{"csrf": {tok}}); r.status != http.StatusSeeOther {
		t.Fatalf("unlink = %d", r.status)
	}
	if fakeFor("wa").LinkedAccount() != "" {
		t.Fatal("unlink did not unlink")
	}
}

func TestWhatsAppPairingCodeForAPhoneNumber(t *testing.T) {
	s := start(t, setupOpts{extra: "[channels.wa]\ntype = \"fakewa\"\n"})
	c := s.client(t)
	tok := c.csrf("/ui/channels/wa/link")
	if r := c.post("/ui/channels/wa/link", url.Values{"csrf": {tok}, "phone": {"+82 10 1234 5678"}}); r.status != http.StatusSeeOther {
		t.Fatalf("start = %d", r.status)
	}
	waitFor(t, "a pairing code", 5*time.Second, func() bool {
		return strings.Contains(c.get("/ui/channels/wa/link/status").body, `"code":"ABCD-EFGH"`)
	})
	if r := c.get("/ui/channels/wa/link"); !strings.Contains(r.body, "ABCD-EFGH") {
		t.Error("the page does not show the pairing code")
	}
	if r := c.get("/ui/channels/wa/link/qr.png"); r.status != http.StatusNotFound {
		t.Errorf("qr.png during a code pairing = %d, want 404", r.status)
	}
}

func TestKakaoLoginChecksTheStateOfThisSession(t *testing.T) {
	s := start(t, setupOpts{tokens: true, extra: "[channels.kk]\ntype = \"fakekakao\"\n"})
	c := s.client(t)
	c.login(adminSecret)
	if r := c.get("/ui/"); !strings.Contains(r.body, `href="/ui/channels/kk/kakao-login"`) {
		t.Fatal("no Kakao login button")
	}
	r := c.get("/ui/channels/kk/kakao-login")
	u, err := url.Parse(r.location)
	if r.status != http.StatusSeeOther || err != nil || u.Host != "kauth.example" {
		t.Fatalf("kakao-login = %d %q", r.status, r.location)
	}
	redirect, state := u.Query().Get("redirect_uri"), u.Query().Get("state")
	if redirect != s.base+"/ui/kakao/callback" || len(state) < 32 {
		t.Fatalf("redirect %q state %q", redirect, state)
	}
	// Another logged-in browser cannot use this state.
	other := s.client(t)
	other.login(adminSecret)
	if r := other.get("/ui/kakao/callback?" + url.Values{"code": {"c0"}, "state": {state}}.Encode()); r.status != http.StatusBadRequest {
		t.Fatalf("state of another session = %d, want 400", r.status)
	}
	// A browser without the cookie (Kakao's cross-site redirect) reloads
	// once from our origin; still without a session it is refused.
	anon := s.client(t)
	r = anon.get("/ui/kakao/callback?" + url.Values{"code": {"c0"}, "state": {state}}.Encode())
	if r.status != http.StatusOK || !strings.Contains(r.body, `http-equiv="refresh"`) || !strings.Contains(r.body, "bounce=1") {
		t.Fatalf("cookie-less callback = %d\n%s", r.status, r.body)
	}
	if r := anon.get("/ui/kakao/callback?" + url.Values{"code": {"c0"}, "state": {state}, "bounce": {"1"}}.Encode()); r.status != http.StatusUnauthorized {
		t.Fatalf("callback without a session after the bounce = %d, want 401", r.status)
	}
	if r := c.get("/ui/kakao/callback?" + url.Values{"code": {"c1"}, "state": {"forged"}}.Encode()); r.status != http.StatusBadRequest {
		t.Fatalf("forged state = %d, want 400", r.status)
	}
	r = c.get("/ui/kakao/callback?" + url.Values{"code": {"c1"}, "state": {state}}.Encode())
	if r.status != http.StatusOK || !strings.Contains(r.body, "Kakao login stored") {
		t.Fatalf("callback = %d\n%s", r.status, r.body)
	}
	v, _ := kakaos.Load("kk")
	k := v.(*fakeKakao)
	if len(k.codes) != 1 || k.codes[0] != "c1" || k.redir[0] != redirect {
		t.Fatalf("Authorize got %q %q", k.codes, k.redir)
	}
	if r := c.get("/ui/kakao/callback?" + url.Values{"code": {"c2"}, "state": {state}}.Encode()); r.status != http.StatusBadRequest {
		t.Fatalf("a state used twice = %d, want 400", r.status)
	}
	// A code Kakao refuses shows the error.
	u, _ = url.Parse(c.get("/ui/channels/kk/kakao-login").location)
	r = c.get("/ui/kakao/callback?" + url.Values{"code": {"bad"}, "state": {u.Query().Get("state")}}.Encode())
	if r.status != http.StatusBadGateway || !strings.Contains(r.body, "KOE320") {
		t.Fatalf("refused code = %d", r.status)
	}
	// The user declined at Kakao.
	u, _ = url.Parse(c.get("/ui/channels/kk/kakao-login").location)
	r = c.get("/ui/kakao/callback?" + url.Values{"error": {"access_denied"}, "state": {u.Query().Get("state")}}.Encode())
	if !strings.Contains(r.body, "did not grant") {
		t.Fatalf("declined login: %d", r.status)
	}
}
