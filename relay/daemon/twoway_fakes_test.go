package daemon_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// sent is one message a fake upstream took: the address and the text.
type sent struct {
	To, Text string
	ID       string // the upstream's id for it
}

// upstream is the part every fake shares: an up/down switch and a record
// of what it took.
type upstream struct {
	srv  *httptest.Server
	mu   sync.Mutex
	down bool
	// refuse makes LINE refuse every push as to an invalid recipient.
	refuse bool
	got    []sent
	n      int
}

func (u *upstream) setDown(down bool) { u.mu.Lock(); u.down = down; u.mu.Unlock() }

func (u *upstream) isDown() bool { u.mu.Lock(); defer u.mu.Unlock(); return u.down }

func (u *upstream) take(to, text string) sent {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.n++
	s := sent{To: to, Text: text, ID: fmt.Sprint(u.n)}
	u.got = append(u.got, s)
	return s
}

func (u *upstream) sent() []sent {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]sent(nil), u.got...)
}

// waitSent waits until the fake took n messages and returns them.
func (u *upstream) waitSent(t *testing.T, name string, n int) []sent {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := u.sent()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s took %d messages in 10s, want %d: %+v", name, len(got), n, got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func writeJSONBody(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// newFakeKakao follows the Kakao REST API: kauth POST /oauth/token
// (form, grant_type=refresh_token; developers.kakao.com/docs/latest/ko/kakaologin/rest-api#refresh-token),
// kapi GET /v1/user/access_token_info and POST /v2/api/talk/memo/default/send
// (form field template_object; developers.kakao.com/docs/latest/ko/message/rest-api#default-template-msg-me),
// errors as {"msg","code"}. Down, kapi answers 503 with code -9798
// (service under maintenance); kauth keeps working.
func newFakeKakao(t *testing.T) *upstream {
	u := &upstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/oauth/token" {
			writeJSONBody(w, 200, `{"access_token":"kakao-access","token_type":"bearer","expires_in":21599}`)
			return
		}
		if u.isDown() {
			writeJSONBody(w, 503, `{"msg":"service under maintenance","code":-9798}`)
			return
		}
		if r.Header.Get("Authorization") != "Bearer kakao-access" {
			writeJSONBody(w, 401, `{"msg":"this access token does not exist","code":-401}`)
			return
		}
		switch r.URL.Path {
		case "/v1/user/access_token_info":
			writeJSONBody(w, 200, `{"id":1234567890,"expires_in":21000,"app_id":123456}`)
		case "/v2/api/talk/memo/default/send":
			var tpl struct{ Text string }
			if err := r.ParseForm(); err != nil || json.Unmarshal([]byte(r.PostForm.Get("template_object")), &tpl) != nil {
				writeJSONBody(w, 400, `{"msg":"template_object is not JSON","code":-2}`)
				return
			}
			u.take("me", tpl.Text)
			writeJSONBody(w, 200, `{"result_code":0}`)
		default:
			writeJSONBody(w, 404, `{"msg":"not found","code":-2}`)
		}
	}))
	t.Cleanup(u.srv.Close)
	return u
}

// newFakeTelegram follows the Bot API (core.telegram.org/bots/api, "Making
// requests"): POST /bot<token>/<method> with form or JSON parameters,
// answers {"ok":true,"result":...} or {"ok":false,"error_code","description"}.
// Down, it answers 502 with an HTML page, as the Bot API's proxy does.
func newFakeTelegram(t *testing.T) *upstream {
	u := &upstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u.isDown() {
			w.WriteHeader(http.StatusBadGateway)
			_, _ = w.Write([]byte("<html><head><title>502 Bad Gateway</title></head></html>"))
			return
		}
		method := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
		params := map[string]string{}
		if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
			var m map[string]any
			_ = json.NewDecoder(r.Body).Decode(&m)
			for k, v := range m {
				params[k] = fmt.Sprint(v)
			}
		} else {
			_ = r.ParseForm()
			for k := range r.Form {
				params[k] = r.Form.Get(k)
			}
		}
		switch strings.ToLower(method) {
		case "getme":
			writeJSONBody(w, 200, `{"ok":true,"result":{"id":42,"is_bot":true,"first_name":"Shop","username":"shop_bot"}}`)
		case "sendmessage":
			s := u.take(params["chat_id"], params["text"])
			writeJSONBody(w, 200, fmt.Sprintf(`{"ok":true,"result":{"message_id":%s,"chat":{"id":%s,"type":"private"},"date":%d,"text":%q}}`,
				s.ID, params["chat_id"], time.Now().Unix(), params["text"]))
		default:
			writeJSONBody(w, 404, `{"ok":false,"error_code":404,"description":"Not Found: method not found"}`)
		}
	}))
	t.Cleanup(u.srv.Close)
	return u
}

// newFakeLINE follows the Messaging API: POST /v2/bot/message/push (JSON
// {"to","messages":[{"type":"text","text"}]}, answering {"sentMessages":
// [{"id","quoteToken"}]}) and GET /v2/bot/info
// (developers.line.biz/en/reference/messaging-api/#send-push-message).
func newFakeLINE(t *testing.T) *upstream {
	u := &upstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u.isDown() {
			writeJSONBody(w, 500, `{"message":"An error occurred in the server"}`)
			return
		}
		if r.Header.Get("Authorization") != "Bearer line-token" {
			writeJSONBody(w, 401, `{"message":"Authentication failed due to the following reason: invalid token."}`)
			return
		}
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/v2/bot/info":
			writeJSONBody(w, 200, `{"userId":"Ub9952f8e5b4d6f7a8c9d0e1f2a3b4c5d","basicId":"@216ru","displayName":"Shop","chatMode":"chat","markAsReadMode":"manual"}`)
		case r.Method == http.MethodPost && r.URL.Path == "/v2/bot/message/push":
			u.mu.Lock()
			refuse := u.refuse
			u.mu.Unlock()
			if refuse {
				writeJSONBody(w, 400, `{"message":"The request body has 1 error(s)","details":[{"message":"The value must be a valid user, group or room ID","property":"to"}]}`)
				return
			}
			var req struct {
				To       string `json:"to"`
				Messages []struct{ Type, Text string }
			}
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Messages) != 1 {
				writeJSONBody(w, 400, `{"message":"The request body has 1 error(s)"}`)
				return
			}
			s := u.take(req.To, req.Messages[0].Text)
			writeJSONBody(w, 200, fmt.Sprintf(`{"sentMessages":[{"id":"46104%s","quoteToken":"q%s"}]}`, s.ID, s.ID))
		default:
			writeJSONBody(w, 404, `{"message":"Not found"}`)
		}
	}))
	t.Cleanup(u.srv.Close)
	return u
}

const (
	lineSecret     = "line-channel-secret"
	telegramSecret = "tg-webhook-secret"
	lineCustomer   = "U4af4980629e3c1f9e2b7a1d0c5e8f6a2b"
)

// lineWebhook POSTs a LINE webhook with one text message event, signed
// as LINE signs it: X-Line-Signature = base64 HMAC-SHA256 of the body with
// the channel secret (developers.line.biz/en/reference/messaging-api/#signature-validation).
func (n *node) lineWebhook(eventID, text string) response {
	n.t.Helper()
	body, _ := json.Marshal(map[string]any{
		"destination": "Ub9952f8e5b4d6f7a8c9d0e1f2a3b4c5d",
		"events": []map[string]any{{
			"type": "message", "mode": "active", "timestamp": time.Now().UnixMilli(), "webhookEventId": eventID,
			"deliveryContext": map[string]any{"isRedelivery": false},
			"source":          map[string]any{"type": "user", "userId": lineCustomer},
			"replyToken":      "rt-" + eventID,
			"message":         map[string]any{"id": "msg-" + eventID, "type": "text", "text": text, "quoteToken": "qt"},
		}},
	})
	mac := hmac.New(sha256.New, []byte(lineSecret))
	mac.Write(body)
	return n.do("POST", "/v1/inbound/line/line", "application/json", body,
		"X-Line-Signature", base64.StdEncoding.EncodeToString(mac.Sum(nil)))
}

// telegramReply POSTs a Telegram webhook update: the owner (chat 100)
// answering with Telegram's reply function to message replyTo
// (core.telegram.org/bots/api#update, #message reply_to_message; the
// secret_token comes in X-Telegram-Bot-Api-Secret-Token).
func (n *node) telegramReply(updateID int, replyTo, text string) response {
	n.t.Helper()
	now := time.Now().Unix()
	update := fmt.Sprintf(`{"update_id":%d,"message":{"message_id":%d,"from":{"id":100,"is_bot":false,"first_name":"Owner"},
		"chat":{"id":100,"type":"private","first_name":"Owner"},"date":%d,"text":%q,
		"reply_to_message":{"message_id":%s,"from":{"id":42,"is_bot":true,"first_name":"Shop"},
		"chat":{"id":100,"type":"private"},"date":%d,"text":"forwarded"}}}`, updateID, 900+updateID, now, text, replyTo, now)
	return n.do("POST", "/v1/inbound/telegram/telegram", "application/json", bytes.NewBufferString(update).Bytes(),
		"X-Telegram-Bot-Api-Secret-Token", telegramSecret)
}
