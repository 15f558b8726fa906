package daemon_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	_ "github.com/relay-project/relay/adapters/kakao"
	_ "github.com/relay-project/relay/adapters/line"
	_ "github.com/relay-project/relay/adapters/telegram"
	"github.com/relay-project/relay/relay/api"
)

// shop is the shop set-up: customers write to the LINE official account;
// the owner is reached on Kakao ("send to me"), else on Telegram, where
// the shop's bot receives by webhook.
type shop struct {
	kakao, telegram, line *upstream
}

func newShop(t *testing.T) *shop {
	return &shop{kakao: newFakeKakao(t), telegram: newFakeTelegram(t), line: newFakeLINE(t)}
}

func (s *shop) config() string {
	return fmt.Sprintf(`
[server]
listen = "127.0.0.1:0"
[store]
path = "%%DIR%%/relay.db"
[delivery]
attempt_timeout = "2s"
retry_min = "50ms"
retry_max = "200ms"
shutdown_timeout = "2s"
[channels.kakao]
type = "kakao"
rest_api_key = "kakao-rest-key"
refresh_token = "kakao-refresh"
link_url = "https://shop.example.com"
api_url = "%s"
auth_url = "%s"
health = { interval = "100ms", fall = 1, rise = 1 }
[channels.telegram]
type = "telegram"
token = "123456:shop-bot-token"
api_url = "%s"
receive = "webhook"
webhook_secret = "%s"
health = { interval = "100ms", fall = 1, rise = 1 }
[channels.line]
type = "line"
channel_access_token = "line-token"
channel_secret = "%s"
api_url = "%s"
health = { interval = "1h" }
[contacts.owner]
route = ["kakao", "telegram"]
kakao = "me"
telegram = "100"
[inbound]
forward_to = ["owner"]
auto_reply = "감사합니다. 곧 답변드리겠습니다."
auto_reply_every = "24h"
`, s.kakao.srv.URL, s.kakao.srv.URL, s.telegram.srv.URL, telegramSecret, lineSecret, s.line.srv.URL)
}

func (n *node) conversation(idOrTag string) api.ConversationView {
	n.t.Helper()
	r := n.do("GET", "/v1/conversations/"+idOrTag, "", nil)
	if r.status != 200 {
		n.t.Fatalf("conversation %s: %d %s", idOrTag, r.status, r.body)
	}
	var v api.ConversationView
	r.json(n.t, &v)
	return v
}

func (n *node) onlyConversation() api.ConversationView {
	n.t.Helper()
	var v struct{ Conversations []api.ConversationView }
	n.do("GET", "/v1/conversations", "", nil).json(n.t, &v)
	if len(v.Conversations) != 1 {
		n.t.Fatalf("%d conversations, want 1: %+v", len(v.Conversations), v.Conversations)
	}
	return n.conversation(v.Conversations[0].ID)
}

func mustOK(t *testing.T, what string, r response) {
	t.Helper()
	if r.status != 200 {
		t.Fatalf("%s: %d %s", what, r.status, r.body)
	}
}

// TestShopTwoWay follows one customer through the shop: the inquiry on
// LINE reaches the owner on Kakao with its origin and tag; the customer
// gets the auto-reply once; a redelivered webhook forwards nothing again;
// with Kakao down the next inquiry reaches the owner on Telegram, and the
// owner's Telegram reply to it reaches the customer on LINE, as does a
// reply through the API.
func TestShopTwoWay(t *testing.T) {
	s := newShop(t)
	n := startDaemon(t, "", s.config())

	mustOK(t, "LINE webhook", n.lineWebhook("ev-1", "내일 2시에 예약 가능한가요?"))
	fw := s.kakao.waitSent(t, "kakao", 1)
	conv := n.onlyConversation()
	want := fmt.Sprintf("[LINE · %s… · #%s] 내일 2시에 예약 가능한가요?", lineCustomer[:10], conv.Tag)
	if fw[0].Text != want {
		t.Fatalf("owner got %q on Kakao, want %q", fw[0].Text, want)
	}
	auto := s.line.waitSent(t, "line", 1)
	if auto[0].To != lineCustomer || auto[0].Text != "감사합니다. 곧 답변드리겠습니다." {
		t.Fatalf("auto-reply %+v", auto[0])
	}

	// LINE redelivers the same event (our 200 was lost): nothing new.
	mustOK(t, "redelivered webhook", n.lineWebhook("ev-1", "내일 2시에 예약 가능한가요?"))
	if c := n.conversation(conv.Tag); len(c.Messages) != 2 { // the inquiry and the auto-reply
		t.Fatalf("after a redelivery the conversation has %d messages: %+v", len(c.Messages), c.Messages)
	}

	// Kakao goes down: the next inquiry fails over to Telegram.
	s.kakao.setDown(true)
	mustOK(t, "LINE webhook", n.lineWebhook("ev-2", "4명입니다"))
	tg := s.telegram.waitSent(t, "telegram", 1)
	if tg[0].To != "100" || !strings.HasSuffix(tg[0].Text, "#"+conv.Tag+"] 4명입니다") {
		t.Fatalf("owner got %+v on Telegram", tg[0])
	}
	if got := s.kakao.sent(); len(got) != 1 {
		t.Fatalf("Kakao took %d messages while down", len(got))
	}

	// The owner answers with Telegram's reply function (once the attempt
	// with Telegram's message id is on record, as it is long before a
	// person can answer).
	n.waitStatus(n.conversation(conv.ID).Messages[2].MessageID, "delivered", 10*time.Second)
	mustOK(t, "Telegram webhook", n.telegramReply(1, tg[0].ID, "네, 가능합니다"))
	got := s.line.waitSent(t, "line", 2)
	if got[1].To != lineCustomer || got[1].Text != "네, 가능합니다" {
		t.Fatalf("customer got %+v on LINE", got[1])
	}
	// ... and through the API, by tag in any case.
	r := n.do("POST", "/v1/conversations/"+strings.ToLower(conv.Tag)+"/reply", "application/json", []byte(`{"text":"주차도 됩니다"}`))
	if r.status != 202 {
		t.Fatalf("API reply: %d %s", r.status, r.body)
	}
	var accepted struct{ ID string }
	r.json(t, &accepted)
	n.waitStatus(accepted.ID, "delivered", 10*time.Second)
	if got := s.line.waitSent(t, "line", 3); got[2].Text != "주차도 됩니다" {
		t.Fatalf("customer got %+v", got[2])
	}
	if pushes := s.line.sent(); len(pushes) != 3 {
		t.Fatalf("LINE pushes %+v: the auto-reply must go once", pushes)
	}

	c := n.conversation(conv.ID)
	var dirs []string
	for _, m := range c.Messages {
		dirs = append(dirs, m.Direction+":"+m.Status)
	}
	if got, want := strings.Join(dirs, " "), "in:forwarded out:delivered in:forwarded out:delivered out:delivered"; got != want {
		t.Fatalf("conversation %s, want %s", got, want)
	}
	if c.State != "answered" || c.Messages[3].Via != "telegram" {
		t.Fatalf("conversation %+v", c)
	}
}

// TestShopInquirySurvivesRestart stops the daemon right after LINE got its
// 200 while every owner channel is down; after a restart with the
// channels back, the forward arrives, once.
func TestShopInquirySurvivesRestart(t *testing.T) {
	s := newShop(t)
	s.kakao.setDown(true)
	s.telegram.setDown(true)
	dir := t.TempDir()
	n := startDaemon(t, dir, s.config())
	mustOK(t, "LINE webhook", n.lineWebhook("ev-crash", "영업시간이 어떻게 되나요?"))
	if err := n.stop(); err != nil {
		t.Fatal(err)
	}
	if got := append(s.kakao.sent(), s.telegram.sent()...); len(got) != 0 {
		t.Fatalf("owner channels were down, yet took %+v", got)
	}

	s.kakao.setDown(false)
	s.telegram.setDown(false)
	n = startDaemon(t, dir, s.config())
	fw := s.kakao.waitSent(t, "kakao", 1)
	if !strings.HasSuffix(fw[0].Text, "] 영업시간이 어떻게 되나요?") {
		t.Fatalf("forward after restart: %q", fw[0].Text)
	}
	mustOK(t, "redelivered webhook", n.lineWebhook("ev-crash", "영업시간이 어떻게 되나요?"))
	if c := n.onlyConversation(); len(c.Messages) != 2 || c.Messages[0].ForwardStatus != "delivered" {
		t.Fatalf("conversation after restart: %+v", c.Messages)
	}
	if got := s.kakao.sent(); len(got) != 1 {
		t.Fatalf("Kakao took %d forwards, want 1", len(got))
	}
}

// TestShopFormAndOwnerHelp covers the web form (its token, a forward to
// the owner) and the owner's messages that name no conversation (a short
// help answer on the channel the owner wrote from, nothing to customers).
func TestShopFormAndOwnerHelp(t *testing.T) {
	s := newShop(t)
	cfg := strings.Replace(s.config(), "[inbound]\n", "[inbound]\nform_token = \"form-secret\"\n", 1) + `
[[server.tokens]]
name = "admin"
secret = "admin-secret"
scopes = ["admin"]
[[server.tokens]]
name = "website"
secret = "web-secret"
send_to = ["owner"]
`
	n := startDaemon(t, "", cfg)
	n.token = "admin-secret"
	form := func(token, body string) response {
		return n.do("POST", "/v1/inbound/form", "application/x-www-form-urlencoded", []byte(body), "Authorization", "Bearer "+token)
	}
	if r := form("wrong", "name=Kim&contact=kim%40example.com&text=hi"); r.status != 401 {
		t.Fatalf("form with a wrong token: %d %s", r.status, r.body)
	}
	if r := form("form-secret", "name=Kim&contact=nobody&text=hi"); r.status != 400 {
		t.Fatalf("form without a usable contact: %d %s", r.status, r.body)
	}
	if r := form("form-secret", "name=Kim&contact=kim%40example.com&text=do+you+deliver%3F"); r.status != 202 {
		t.Fatalf("form: %d %s", r.status, r.body)
	}
	fw := s.kakao.waitSent(t, "kakao", 1)
	if !strings.HasPrefix(fw[0].Text, "[web form · Kim <kim@example.com> · #") || !strings.HasSuffix(fw[0].Text, "] do you deliver?") {
		t.Fatalf("form forward %q", fw[0].Text)
	}
	conv := n.onlyConversation()
	// No e-mail channel: the reply cannot go anywhere, and says so.
	if r := n.do("POST", "/v1/conversations/"+conv.Tag+"/reply", "application/json", []byte(`{"text":"yes"}`)); r.status != 409 || r.code() != "cannot_reply" {
		t.Fatalf("reply to a form contact without e-mail channel: %d %s", r.status, r.body)
	}
	if r := n.do("POST", "/v1/conversations/"+conv.Tag+"/reply", "application/json", []byte(`{"text":"yes"}`),
		"Authorization", "Bearer web-secret"); r.status != 403 {
		t.Fatalf("a send_to-limited token replied to a customer: %d %s", r.status, r.body)
	}
	if r := n.do("GET", "/v1/conversations/Z9999", "", nil); r.status != 404 {
		t.Fatalf("unknown conversation: %d", r.status)
	}

	// The owner writes to the bot without replying to a forward.
	mustOK(t, "Telegram webhook", n.do("POST", "/v1/inbound/telegram/telegram", "application/json",
		[]byte(fmt.Sprintf(`{"update_id":7,"message":{"message_id":70,"from":{"id":100,"is_bot":false,"first_name":"Owner"},"chat":{"id":100,"type":"private"},"date":%d,"text":"hello?"}}`, time.Now().Unix())),
		"X-Telegram-Bot-Api-Secret-Token", telegramSecret))
	help := s.telegram.waitSent(t, "telegram", 1)
	if help[0].To != "100" || !strings.Contains(help[0].Text, "#"+conv.Tag) {
		t.Fatalf("help answer %+v", help[0])
	}
	if c := n.conversation(conv.ID); len(c.Messages) != 1 {
		t.Fatalf("the owner's help request became part of a conversation: %+v", c.Messages)
	}
}

// TestShopFailedReplyTellsOwner: LINE refuses the owner's reply for good;
// it is not tried on any other channel, and the owner hears of it on
// their own route, with the conversation's tag.
func TestShopFailedReplyTellsOwner(t *testing.T) {
	s := newShop(t)
	n := startDaemon(t, "", strings.Replace(s.config(), `auto_reply = "감사합니다. 곧 답변드리겠습니다."`, `auto_reply = ""`, 1))
	mustOK(t, "LINE webhook", n.lineWebhook("ev-1", "문의드립니다"))
	s.kakao.waitSent(t, "kakao", 1)
	conv := n.onlyConversation()
	s.line.mu.Lock()
	s.line.refuse = true
	s.line.mu.Unlock()
	r := n.do("POST", "/v1/conversations/"+conv.ID+"/reply", "application/json", []byte(`{"text":"네"}`))
	if r.status != 202 {
		t.Fatalf("reply: %d %s", r.status, r.body)
	}
	var accepted struct{ ID string }
	r.json(t, &accepted)
	m := n.waitStatus(accepted.ID, "failed", 10*time.Second)
	if got := routeOf(m.Deliveries[0]); got != "line:permanent" {
		t.Fatalf("reply route %q, want only LINE", got)
	}
	notice := s.kakao.waitSent(t, "kakao", 2)[1]
	if !strings.Contains(notice.Text, "not delivered") || !strings.Contains(notice.Text, "#"+conv.Tag) {
		t.Fatalf("owner's notice %q", notice.Text)
	}
}
