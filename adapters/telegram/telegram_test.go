package telegram

import (
	"context"
	"errors"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/relay-project/relay/adapters/adaptertest"
	"github.com/relay-project/relay/relay"
)

func TestConformance(t *testing.T) {
	var last *fakeBot
	adaptertest.Run(t, adaptertest.Harness{
		New: func(t *testing.T, mode adaptertest.Mode) relay.Adapter {
			last = newFakeBot(t, mode)
			return newAdapter(t, Config{APIURL: last.url()}, newTestEnv(t).env)
		},
		Address:   "555",
		Delivered: func() int { return last.delivered() },
	})
}

func outgoing(addr, text string) *relay.Outgoing {
	return &relay.Outgoing{MessageID: "m1", DeliveryID: "d1", Address: addr, Text: text, Part: 1, Parts: 1, Key: "d1/tg/1"}
}

func TestSendReturnsChatAndMessageID(t *testing.T) {
	f := newFakeBot(t, adaptertest.Up)
	a := newAdapter(t, Config{APIURL: f.url()}, newTestEnv(t).env)
	sent, err := a.Send(context.Background(), outgoing("555", "hello"))
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if sent.UpstreamID != "555:42" {
		t.Errorf("UpstreamID = %q, want 555:42", sent.UpstreamID)
	}
	// A channel by @username: the id is the numeric chat id Telegram
	// reports, so replies (which carry the numeric id) can be matched.
	sent, err = a.Send(context.Background(), outgoing("@shop_news", "hello"))
	if err != nil {
		t.Fatalf("Send to @username: %v", err)
	}
	if sent.UpstreamID != "-1001000000001:43" {
		t.Errorf("UpstreamID = %q, want -1001000000001:43", sent.UpstreamID)
	}
	calls := f.callsOf("sendmessage")
	if calls[0]["chat_id"] != "555" || calls[0]["text"] != "hello" || calls[1]["chat_id"] != "@shop_news" {
		t.Errorf("sendMessage params = %v", calls)
	}
	if a.TextLimit() != 4096 {
		t.Errorf("TextLimit = %d", a.TextLimit())
	}
}

// TestClassifyCannedResponses feeds the Bot API's answers, as the server
// sends them, through a real Send. File names start with the HTTP status.
func TestClassifyCannedResponses(t *testing.T) {
	cases := []struct {
		file       string
		kind       relay.Kind
		retryAfter time.Duration
	}{
		{"429_too_many_requests.json", relay.KindRateLimited, 7 * time.Second},
		{"403_bot_blocked.json", relay.KindPermanent, 0},
		{"403_user_deactivated.json", relay.KindPermanent, 0},
		{"403_bot_kicked.json", relay.KindPermanent, 0},
		{"403_cant_initiate.json", relay.KindPermanent, 0},
		{"400_chat_not_found.json", relay.KindPermanent, 0},
		{"400_message_text_empty.json", relay.KindInvalid, 0},
		{"400_message_too_long.json", relay.KindInvalid, 0},
		// The fake keeps migrating: after the one retry it is permanent.
		{"400_group_upgraded.json", relay.KindPermanent, 0},
		{"401_unauthorized.json", relay.KindAuth, 0},
		{"404_not_found.json", relay.KindAuth, 0},
		{"500_internal_server_error.json", relay.KindTemporary, 0},
		{"502_bad_gateway.html", relay.KindTemporary, 0},
		{"504_empty_body.txt", relay.KindTemporary, 0},
	}
	files, _ := filepath.Glob("testdata/*")
	if len(files) != len(cases) {
		t.Errorf("testdata has %d files, the table %d cases", len(files), len(cases))
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join("testdata", c.file))
			if err != nil {
				t.Fatal(err)
			}
			status, _ := strconv.Atoi(c.file[:3])
			ctype := "application/json"
			if !strings.HasSuffix(c.file, ".json") {
				ctype = "text/html"
			}
			f := newFakeBot(t, adaptertest.Up)
			f.setAlways("sendmessage", reply{status: status, body: string(body), ctype: ctype})
			a := newAdapter(t, Config{APIURL: f.url()}, newTestEnv(t).env)
			_, err = a.Send(context.Background(), outgoing("555", "hi"))
			if got := relay.KindOf(err); got != c.kind {
				t.Fatalf("kind = %v (%v), want %v", got, err, c.kind)
			}
			if got := relay.RetryAfterOf(err); got != c.retryAfter {
				t.Errorf("retry after = %v, want %v", got, c.retryAfter)
			}
			if !strings.HasPrefix(err.Error(), "telegram: sendMessage: ") {
				t.Errorf("error %q does not name the channel type and call", err)
			}
			if strings.Contains(err.Error(), testToken) {
				t.Errorf("error contains the token: %q", err)
			}
		})
	}
}

func TestMigratedGroupIsRetriedOnceWithNewChatID(t *testing.T) {
	f := newFakeBot(t, adaptertest.Up)
	f.migrate("-4242", -1001234567890)
	te := newTestEnv(t)
	a := newAdapter(t, Config{APIURL: f.url()}, te.env)
	a.pace = newPacer(rate.Inf, 1, rate.Inf, 1)

	sent, err := a.Send(context.Background(), outgoing("-4242", "private words"))
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if sent.UpstreamID != "-1001234567890:42" {
		t.Errorf("UpstreamID = %q", sent.UpstreamID)
	}
	calls := f.callsOf("sendmessage")
	if len(calls) != 2 || calls[0]["chat_id"] != "-4242" || calls[1]["chat_id"] != "-1001234567890" {
		t.Fatalf("sendMessage calls = %v, want the old id then the new one", calls)
	}
	logs := te.logs.String()
	if !strings.Contains(logs, "level=INFO") || !strings.Contains(logs, "new_chat_id=-1001234567890") {
		t.Errorf("migration not logged at info with the new id:\n%s", logs)
	}
	if strings.Contains(logs, "private words") {
		t.Errorf("the message body was logged:\n%s", logs)
	}

	// The adapter remembers: the next send goes to the supergroup directly.
	if _, err := a.Send(context.Background(), outgoing("-4242", "again")); err != nil {
		t.Fatalf("second Send: %v", err)
	}
	if calls := f.callsOf("sendmessage"); len(calls) != 3 || calls[2]["chat_id"] != "-1001234567890" {
		t.Fatalf("second send went to %v", calls[len(calls)-1])
	}
}

func TestPacingHoldsSecondSendToSameChat(t *testing.T) {
	f := newFakeBot(t, adaptertest.Up)
	a := newAdapter(t, Config{APIURL: f.url()}, newTestEnv(t).env)
	a.pace = newPacer(rate.Every(time.Hour), 1, rate.Inf, 1)

	if _, err := a.Send(context.Background(), outgoing("555", "one")); err != nil {
		t.Fatalf("first Send: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := a.Send(ctx, outgoing("555", "two"))
	if relay.KindOf(err) != relay.KindRateLimited || relay.RetryAfterOf(err) <= 2*time.Second {
		t.Fatalf("second Send to the same chat = %v (kind %v), want rate-limited for about an hour", err, relay.KindOf(err))
	}
	if f.delivered() != 1 {
		t.Fatalf("the held send reached the API: %d sends", f.delivered())
	}
	// Another chat is not held.
	if _, err := a.Send(ctx, outgoing("777", "three")); err != nil {
		t.Fatalf("Send to another chat: %v", err)
	}
}

func TestPacingWaitsOutShortHolds(t *testing.T) {
	f := newFakeBot(t, adaptertest.Up)
	a := newAdapter(t, Config{APIURL: f.url()}, newTestEnv(t).env)
	const gap = 100 * time.Millisecond
	a.pace = newPacer(rate.Every(gap), 1, rate.Inf, 1)

	if _, err := a.Send(context.Background(), outgoing("555", "one")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := a.Send(context.Background(), outgoing("555", "two")); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < gap*8/10 {
		t.Errorf("second send to the same chat went after %v, want about %v", took, gap)
	}
}

func TestPacingGlobalLimit(t *testing.T) {
	f := newFakeBot(t, adaptertest.Up)
	a := newAdapter(t, Config{APIURL: f.url()}, newTestEnv(t).env)
	a.pace = newPacer(rate.Inf, 1, rate.Every(time.Hour), 1)
	if _, err := a.Send(context.Background(), outgoing("555", "one")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := a.Send(ctx, outgoing("777", "two")); relay.KindOf(err) != relay.KindRateLimited {
		t.Fatalf("send over the global pace = %v, want rate-limited", err)
	}
	// A hold cut short by cancellation is released: the reservation is
	// returned, and the error is not a failure of the upstream.
	cctx, ccancel := context.WithCancel(context.Background())
	ccancel()
	if _, err := a.Send(cctx, outgoing("777", "three")); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait = %v, want context.Canceled in the chain", err)
	}
}

func TestTokenIsScrubbedFromTransportErrors(t *testing.T) {
	f := newFakeBot(t, adaptertest.Refusing)
	te := newTestEnv(t)
	a := newAdapter(t, Config{APIURL: f.url()}, te.env)
	_, err := a.Send(context.Background(), outgoing("555", "hi"))
	if err == nil {
		t.Fatal("Send to a refusing upstream succeeded")
	}
	for e := error(err); e != nil; e = errors.Unwrap(e) {
		if strings.Contains(e.Error(), testToken) {
			t.Errorf("error chain link %T contains the token: %q", e, e)
		}
	}
	var ue *url.Error
	if !errors.As(err, &ue) || !strings.Contains(ue.URL, "/bot<token>/getMe") {
		t.Errorf("want a *url.Error with the token replaced, got %#v", ue)
	}
	if err := a.Probe(context.Background()); err == nil || strings.Contains(err.Error(), testToken) {
		t.Errorf("Probe = %v", err)
	}
}

func TestHangingSendAfterWriteIsAmbiguous(t *testing.T) {
	f := newFakeBot(t, adaptertest.Up)
	a := newAdapter(t, Config{APIURL: f.url()}, newTestEnv(t).env)
	if err := a.Probe(context.Background()); err != nil { // builds the bot
		t.Fatal(err)
	}
	f.setMode(adaptertest.Hanging)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := a.Send(ctx, outgoing("555", "hi"))
	if relay.KindOf(err) != relay.KindAmbiguous || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send = %v (kind %v), want ambiguous deadline", err, relay.KindOf(err))
	}
}

// TestStartWhileTelegramIsDown: construction and start do not reach out,
// the probe fails while the API is unreachable, and sending works once it
// is back, without a restart.
func TestStartWhileTelegramIsDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	te := newTestEnv(t)
	start := time.Now()
	a := newAdapter(t, Config{APIURL: "http://" + addr, Receive: ReceivePoll, PollTimeout: 1}, te.env)
	if err := a.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("New+Start took %v", took)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := a.Probe(ctx); relay.KindOf(err) != relay.KindTemporary {
		t.Fatalf("Probe while down = %v (kind %v), want temporary", err, relay.KindOf(err))
	}

	f := newFakeBotOn(t, addr)
	if err := a.Probe(context.Background()); err != nil {
		t.Fatalf("Probe once up: %v", err)
	}
	if _, err := a.Send(context.Background(), outgoing("555", "hi")); err != nil {
		t.Fatalf("Send once up: %v", err)
	}
	// The poll loop, backing off meanwhile, reaches the API too.
	f.waitFor("getUpdates", func() bool { return len(f.calls["getupdates"]) > 0 })
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestConfigValidate(t *testing.T) {
	good := Config{Token: testToken}
	if errs := good.Validate(); len(errs) != 0 {
		t.Fatalf("valid config: %v", errs)
	}
	cases := []struct {
		cfg  Config
		want string
	}{
		{Config{}, "token: required"},
		{Config{Token: "123/abc"}, "token: "},
		{Config{Token: testToken, APIURL: "ftp://x"}, "api_url: "},
		{Config{Token: testToken, Receive: "push"}, "receive: "},
		{Config{Token: testToken, Receive: "webhook"}, "webhook_secret: required"},
		{Config{Token: testToken, Receive: "webhook", WebhookSecret: "has space"}, "webhook_secret: "},
		{Config{Token: testToken, Receive: "webhook", WebhookSecret: "s", WebhookURL: "http://x/y"}, "webhook_url: "},
		{Config{Token: testToken, WebhookURL: "https://x/y"}, "webhook_url: only"},
		{Config{Token: testToken, PollTimeout: 51}, "poll_timeout: "},
	}
	for _, c := range cases {
		errs := c.cfg.Validate()
		found := false
		for _, e := range errs {
			if strings.HasPrefix(e.Error(), c.want) {
				found = true
			}
			if strings.Contains(e.Error(), "has space") {
				t.Errorf("error repeats the secret: %v", e)
			}
		}
		if !found {
			t.Errorf("Validate(%+v) = %v, want an error starting %q", c.cfg, errs, c.want)
		}
	}
	for addr, ok := range map[string]bool{
		"123456789": true, "-1001234567890": true, "@shop_news": true,
		"": false, "0": false, "@ab": false, "me": false, "12ab": false,
	} {
		if err := good.ValidateAddress(addr); (err == nil) != ok {
			t.Errorf("ValidateAddress(%q) = %v", addr, err)
		}
	}
	if _, err := New(&Config{}, relay.Env{}); err == nil {
		t.Error("New accepted a config without token")
	}
	if f, ok := relay.Lookup("telegram"); !ok || f.NewConfig() == nil {
		t.Error("telegram is not registered")
	}
}
