package telegram

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/relay-project/relay/adapters/adaptertest"
	"github.com/relay-project/relay/relay"
)

// Updates as the Bot API sends them (core.telegram.org/bots/api#update).
const (
	updText  = `{"update_id":1000,"message":{"message_id":7,"from":{"id":555,"is_bot":false,"first_name":"Min","last_name":"Kim","username":"minkim"},"chat":{"id":555,"type":"private","first_name":"Min"},"date":1700000000,"text":"Is table 4 free tonight?"}}`
	updPhoto = `{"update_id":1001,"message":{"message_id":8,"from":{"id":555,"is_bot":false,"first_name":"Min"},"chat":{"id":555,"type":"private"},"date":1700000060,"photo":[{"file_id":"AgAD","file_unique_id":"u1","width":90,"height":90}],"caption":"this one","reply_to_message":{"message_id":42,"chat":{"id":555,"type":"private"},"date":1699999000,"text":"our menu"}}}`
	updJoin  = `{"update_id":1002,"message":{"message_id":9,"chat":{"id":-100,"type":"group","title":"G"},"date":1700000100,"new_chat_members":[{"id":1,"is_bot":false,"first_name":"X"}]}}`
	updEdit  = `{"update_id":1003,"edited_message":{"message_id":7,"chat":{"id":555,"type":"private"},"date":1700000000,"edit_date":1700000200,"text":"edited"}}`
	updVoice = `{"update_id":1004,"message":{"message_id":10,"from":{"id":556,"is_bot":false,"first_name":"","username":"anon"},"chat":{"id":556,"type":"private"},"date":1700000300,"voice":{"file_id":"v","file_unique_id":"v1","duration":3}}}`
)

func TestPollAcceptsThenPersistsOffset(t *testing.T) {
	f := newFakeBot(t, adaptertest.Up)
	te := newTestEnv(t)
	failOnce := true
	te.sink.fail = func(m relay.InboundMessage) error {
		if m.UpstreamID == "555:8" && failOnce {
			failOnce = false
			return errors.New("store busy")
		}
		return nil
	}
	f.addUpdate(updText)
	f.addUpdate(updPhoto)
	a := newAdapter(t, Config{APIURL: f.url(), Receive: ReceivePoll, PollTimeout: 1}, te.env)
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := te.events.waitLen(t, 5)
	want := []string{"accept 555:7", "put offset=1001", "reject 555:8", "accept 555:8", "put offset=1002"}
	if !slices.Equal(got[:5], want) {
		t.Fatalf("events = %q, want %q", got, want)
	}
	// The poll after the refusal asked again from the refused update.
	f.waitFor("a poll from 1002", func() bool {
		c := f.calls["getupdates"]
		return len(c) > 0 && c[len(c)-1]["offset"] == "1002"
	})
	calls := f.callsOf("getupdates")
	var offsets []string
	for _, c := range calls {
		offsets = append(offsets, c["offset"])
		if c["timeout"] != "1" || c["allowed_updates"] != `["message"]` {
			t.Errorf("getUpdates params = %v", c)
		}
	}
	if !slices.Contains(offsets, "1001") {
		t.Errorf("offsets polled = %v: the refused update 1001 was not asked for again", offsets)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}

	msgs := te.sink.messages()
	if len(msgs) != 2 {
		t.Fatalf("accepted %d messages, want 2", len(msgs))
	}
	m := msgs[0]
	if m.Channel != "tg" || m.SenderID != "555" || m.SenderName != "Min Kim" ||
		m.Text != "Is table 4 free tonight?" || m.ReplyTo != "" || !m.At.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("text message = %+v", m)
	}
	if m := msgs[1]; m.Text != "[photo] this one" || m.ReplyTo != "555:42" {
		t.Errorf("photo message = %+v", m)
	}
	if logs := te.logs.String(); strings.Contains(logs, "table 4") {
		t.Errorf("a message body was logged:\n%s", logs)
	}
}

func TestPollResumesFromPersistedOffset(t *testing.T) {
	f := newFakeBot(t, adaptertest.Up)
	te := newTestEnv(t)
	te.state.vals = map[string][]byte{offsetKey: []byte("1002")}
	// A server that answers an update below the offset (it should not)
	// does not get it accepted twice.
	f.setAlways("getupdates", reply{status: 200, body: `{"ok":true,"result":[` + updPhoto + `,` + updJoin + `,` + updEdit + `,` + updVoice + `]}`})
	a := newAdapter(t, Config{APIURL: f.url(), Receive: ReceivePoll, PollTimeout: 1}, te.env)
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	te.events.waitLen(t, 4)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if first := f.callsOf("getupdates")[0]["offset"]; first != "1002" {
		t.Errorf("first poll from offset %s, want 1002", first)
	}
	ev := te.events.snapshot()
	// 1002 (service message) and 1003 (an edit) have nothing to forward
	// but are confirmed; 1004 is accepted once, although served again and
	// again.
	want := []string{"put offset=1003", "put offset=1004", "accept 556:10", "put offset=1005"}
	if !slices.Equal(ev[:4], want) {
		t.Fatalf("events = %q, want prefix %q", ev, want)
	}
	if n := len(te.sink.messages()); n != 1 {
		t.Errorf("accepted %d messages, want 1", n)
	}
	if m := te.sink.messages()[0]; m.Text != "[voice]" || m.SenderName != "anon" {
		t.Errorf("voice message = %+v", m)
	}
}

func TestPollConflictAlertsOnce(t *testing.T) {
	f := newFakeBot(t, adaptertest.Up)
	f.setAlways("getupdates", apiError(409, "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running", ""))
	te := newTestEnv(t)
	a := newAdapter(t, Config{APIURL: f.url(), Receive: ReceivePoll}, te.env)
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.waitFor("three polls", func() bool { return len(f.calls["getupdates"]) >= 3 })
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	sigs := te.signalList()
	if len(sigs) != 1 {
		t.Fatalf("signals = %+v, want one alert", sigs)
	}
	if s := sigs[0]; s.Down || !s.Notify || !strings.Contains(s.Reason, "another program is polling") {
		t.Errorf("signal = %+v", s)
	}
}

func TestPollConflictWithWebhookNamesTheFix(t *testing.T) {
	f := newFakeBot(t, adaptertest.Up)
	f.push("getupdates", apiError(409, "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first", ""))
	te := newTestEnv(t)
	a := newAdapter(t, Config{APIURL: f.url(), Receive: ReceivePoll, PollTimeout: 1}, te.env)
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	te.events.waitLen(t, 1)
	f.waitFor("a poll after the conflict", func() bool { return len(f.calls["getupdates"]) >= 2 })
	a.Close()
	if s := te.signalList()[0]; !strings.Contains(s.Reason, "deleteWebhook") || !s.Notify {
		t.Errorf("signal = %+v", s)
	}
}

func webhookAdapter(t *testing.T, te *testEnv, apiURL string) *Adapter {
	return newAdapter(t, Config{APIURL: apiURL, Receive: ReceiveWebhook, WebhookSecret: "s3cret-Token_1"}, te.env)
}

func post(h http.Handler, secret, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/v1/inbound/telegram/tg", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	if secret != "" {
		r.Header.Set(secretHeader, secret)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestWebhookRejectsWrongSecret(t *testing.T) {
	te := newTestEnv(t)
	h := webhookAdapter(t, te, "http://127.0.0.1:1").Webhook()
	for _, secret := range []string{"", "wrong", "s3cret-Token_", "s3cret-Token_1x"} {
		if w := post(h, secret, updText); w.Code != http.StatusUnauthorized {
			t.Errorf("secret %q: status %d, want 401", secret, w.Code)
		}
	}
	if n := len(te.sink.messages()); n != 0 {
		t.Fatalf("%d messages forwarded without the secret", n)
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set(secretHeader, "s3cret-Token_1")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: status %d", w.Code)
	}
}

func TestWebhookAcceptsOnceAndAnswers500OnSinkError(t *testing.T) {
	te := newTestEnv(t)
	h := webhookAdapter(t, te, "http://127.0.0.1:1").Webhook()

	te.sink.fail = func(relay.InboundMessage) error { return errors.New("disk full") }
	if w := post(h, "s3cret-Token_1", updText); w.Code != http.StatusInternalServerError {
		t.Fatalf("sink error: status %d, want 500 so Telegram redelivers", w.Code)
	}
	te.sink.mu.Lock()
	te.sink.fail = nil
	te.sink.mu.Unlock()
	for i := range 2 { // Telegram's redelivery, then a duplicate
		if w := post(h, "s3cret-Token_1", updText); w.Code != http.StatusOK {
			t.Fatalf("delivery %d: status %d", i, w.Code)
		}
	}
	msgs := te.sink.messages()
	if len(msgs) != 1 || msgs[0].UpstreamID != "555:7" || msgs[0].SenderID != "555" {
		t.Fatalf("accepted = %+v, want the one message once", msgs)
	}
	if w := post(h, "s3cret-Token_1", `{"update_id":`); w.Code != http.StatusBadRequest {
		t.Errorf("malformed update: status %d", w.Code)
	}
}

func TestWebhookIsOffWhenPolling(t *testing.T) {
	te := newTestEnv(t)
	a := newAdapter(t, Config{APIURL: "http://127.0.0.1:1"}, te.env)
	if w := post(a.Webhook(), "", updText); w.Code != http.StatusNotFound {
		t.Errorf("status %d, want 404", w.Code)
	}
}

func TestStartRegistersWebhook(t *testing.T) {
	f := newFakeBot(t, adaptertest.Up)
	f.push("setwebhook", apiError(502, "Bad Gateway", "")) // retried
	te := newTestEnv(t)
	a := newAdapter(t, Config{
		APIURL: f.url(), Receive: ReceiveWebhook, WebhookSecret: "s3cret-Token_1",
		WebhookURL: "https://relay.example.com/v1/inbound/telegram/tg",
	}, te.env)
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.waitFor("setWebhook twice", func() bool { return len(f.calls["setwebhook"]) >= 2 })
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	c := f.callsOf("setwebhook")[1]
	if c["url"] != "https://relay.example.com/v1/inbound/telegram/tg" || c["secret_token"] != "s3cret-Token_1" ||
		c["allowed_updates"] != `["message"]` {
		t.Errorf("setWebhook params = %v", c)
	}
	if len(f.callsOf("setwebhook")) != 2 {
		t.Errorf("setWebhook called %d times, want 2", len(f.callsOf("setwebhook")))
	}
	if strings.Contains(te.logs.String(), "s3cret-Token_1") {
		t.Errorf("the webhook secret was logged")
	}
}

func TestStartTwiceAndAfterClose(t *testing.T) {
	te := newTestEnv(t)
	a := newAdapter(t, Config{APIURL: "http://127.0.0.1:1"}, te.env)
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err == nil {
		t.Error("second Start succeeded")
	}
	a.Close()
	if _, err := a.Send(context.Background(), outgoing("555", "x")); !errors.Is(err, relay.ErrClosed) {
		t.Errorf("Send after Close = %v", err)
	}
}
