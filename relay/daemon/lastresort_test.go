package daemon_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	_ "github.com/relay-project/relay/adapters/email"
	_ "github.com/relay-project/relay/adapters/sms"
	_ "github.com/relay-project/relay/adapters/telegram"
	"github.com/relay-project/relay/relay/api"
)

// smtpSink is a real SMTP server (emersion/go-smtp) in the test process.
type smtpSink struct {
	addr string
	mu   sync.Mutex
	mail []string // raw messages
	err  *smtp.SMTPError
}

func newSMTPSink(t *testing.T) *smtpSink {
	s := &smtpSink{}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &smtpSession{s: s}, nil }))
	srv.Domain = "mx.test"
	srv.AllowInsecureAuth = true
	srv.ErrorLog = log.New(io.Discard, "", 0)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = l.Addr().String()
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return s
}

func (s *smtpSink) refuse(e *smtp.SMTPError) { s.mu.Lock(); s.err = e; s.mu.Unlock() }

func (s *smtpSink) count() int { s.mu.Lock(); defer s.mu.Unlock(); return len(s.mail) }

type smtpSession struct{ s *smtpSink }

func (x *smtpSession) Mail(string, *smtp.MailOptions) error {
	x.s.mu.Lock()
	defer x.s.mu.Unlock()
	if x.s.err != nil {
		return x.s.err
	}
	return nil
}
func (x *smtpSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (x *smtpSession) Data(r io.Reader) error {
	b, _ := io.ReadAll(r)
	x.s.mu.Lock()
	x.s.mail = append(x.s.mail, string(b))
	x.s.mu.Unlock()
	return nil
}
func (x *smtpSession) Reset()        {}
func (x *smtpSession) Logout() error { return nil }

// twilioFake follows Twilio's Messages API: form-encoded POST to
// /2010-04-01/Accounts/{sid}/Messages.json with basic auth, 201 and a
// message resource; GET /2010-04-01/Accounts/{sid}.json for the probe.
type twilioFake struct {
	srv  *httptest.Server
	mu   sync.Mutex
	sent []string
}

func newTwilioFake(t *testing.T, sid string) *twilioFake {
	f := &twilioFake{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != sid || p != "twilio-token" {
			w.WriteHeader(401)
			fmt.Fprint(w, `{"code":20003,"message":"Authenticate","status":401}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == "GET" && r.URL.Path == "/2010-04-01/Accounts/"+sid+".json":
			fmt.Fprintf(w, `{"sid":%q,"status":"active"}`, sid)
		case r.Method == "POST" && r.URL.Path == "/2010-04-01/Accounts/"+sid+"/Messages.json":
			r.ParseForm()
			f.mu.Lock()
			f.sent = append(f.sent, r.PostForm.Get("To")+" "+r.PostForm.Get("Body"))
			n := len(f.sent)
			f.mu.Unlock()
			w.WriteHeader(201)
			fmt.Fprintf(w, `{"sid":"SM%032d","status":"queued","num_segments":"1"}`, n)
		default:
			w.WriteHeader(404)
			fmt.Fprint(w, `{"code":20404,"message":"not found","status":404}`)
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *twilioFake) count() int { f.mu.Lock(); defer f.mu.Unlock(); return len(f.sent) }

// TestLastResortChannels: a contact routed telegram → email → sms. With
// Telegram failing the message arrives by email on a real SMTP server;
// with SMTP refusing too, by SMS; the SMS budget stops sends at its limit
// and /v1/channels (what `relay status` shows) says why.
func TestLastResortChannels(t *testing.T) {
	tg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A proxy's 502 page in front of the Bot API.
		w.WriteHeader(502)
		fmt.Fprint(w, "<html><body><h1>502 Bad Gateway</h1></body></html>")
	}))
	defer tg.Close()
	mx := newSMTPSink(t)
	sid := "AC0123456789abcdef0123456789abcdef"
	twilio := newTwilioFake(t, sid)

	n := startDaemon(t, "", fmt.Sprintf(`
[server]
listen = "127.0.0.1:0"
[store]
path = "%%DIR%%/relay.db"
[delivery]
attempt_timeout = "2s"
retry_min = "50ms"
retry_max = "100ms"
[channels.telegram]
type = "telegram"
token = "123456:TESTTOKENtesttokenTESTTOKEN"
api_url = %q
health = { interval = "1h" }
[channels.email]
type = "email"
smtp = %q
tls = "none"
from = "relay@shop.test"
health = { interval = "1h" }
[channels.sms]
type = "sms"
provider = "twilio"
api_url = %q
account_sid = %q
auth_token = "twilio-token"
from = "+15005550006"
max_per_day = 2
health = { interval = "1h" }
[contacts.owner]
route = ["telegram", "email", "sms"]
telegram = "123456789"
email = "owner@shop.test"
sms = "+82 10-1234-5678"
`, tg.URL, mx.addr, twilio.srv.URL, sid))

	id := n.accept(`{"to": "owner", "subject": "문의", "text": "내일 2시에 예약 가능한가요?"}`)
	m := n.waitStatus(id, "delivered", 15*time.Second)
	// Telegram is skipped (its first probe, getMe, already failed) or
	// tried and failed; either way email takes it.
	if d := m.Deliveries[0]; d.Channel != "email" || !strings.HasSuffix(routeOf(d), "email:delivered") || strings.Contains(routeOf(d), "telegram:delivered") {
		t.Fatalf("route %s on %s", routeOf(d), d.Channel)
	}
	if s := n.channelState("telegram"); s != "down" {
		t.Fatalf("telegram behind a 502 proxy is %s", s)
	}
	if mx.count() != 1 || !strings.Contains(mx.mail[0], "Subject: =?") {
		t.Fatalf("mail server got %d messages: %q", mx.count(), mx.mail)
	}

	mx.refuse(&smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"})
	for i := 0; i < 2; i++ {
		id := n.accept(fmt.Sprintf(`{"to": "owner", "text": "by sms %d"}`, i))
		m := n.waitStatus(id, "delivered", 15*time.Second)
		if d := m.Deliveries[0]; d.Channel != "sms" {
			t.Fatalf("message %d delivered on %s (%s)", i, d.Channel, routeOf(d))
		}
	}
	if twilio.count() != 2 || !strings.HasPrefix(twilio.sent[0], "+821012345678 ") {
		t.Fatalf("twilio got %v", twilio.sent)
	}

	// The budget (2 a day) is spent: the third message is not sent by SMS,
	// it waits, and the channel says why.
	id = n.accept(`{"to": "owner", "text": "over budget"}`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var v struct {
			Channels []api.ChannelView `json:"channels"`
		}
		json.Unmarshal(n.do("GET", "/v1/channels", "", nil).body, &v)
		var sms api.ChannelView
		for _, c := range v.Channels {
			if c.Name == "sms" {
				sms = c
			}
		}
		if sms.State == "down" && strings.Contains(sms.Reason+sms.LastError, "budget") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sms channel after its budget: %+v", sms)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if s := n.message(id).Status; s != "queued" && s != "sending" {
		t.Fatalf("over-budget message: %s, want it waiting", s)
	}
	if twilio.count() != 2 {
		t.Fatalf("the budget let %d SMS through, want 2", twilio.count())
	}
}
