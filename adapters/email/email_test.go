package email

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/relay-project/relay/adapters/adaptertest"
	"github.com/relay-project/relay/relay"
)

const (
	testFrom = "Relay 알림 <relay@example.com>"
	testTo   = "owner@example.com"
)

func newAdapter(t *testing.T, cfg Config) *Adapter {
	t.Helper()
	if cfg.From == "" {
		cfg.From = testFrom
	}
	a, err := New(&cfg, relay.Env{Name: "email"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { a.Close() })
	return a.(*Adapter)
}

func outgoing(text, subject string) *relay.Outgoing {
	return &relay.Outgoing{
		MessageID: "01MSG", DeliveryID: "01DLV", Contact: "owner", Address: testTo,
		Subject: subject, Text: text, Part: 1, Parts: 1,
		CreatedAt: time.Date(2026, 11, 25, 1, 2, 3, 0, time.UTC), Key: "01DLV/email/1",
	}
}

// decoded is a received message as a mail reader shows it.
type decoded struct {
	Header  mail.Header
	Subject string
	Body    string
}

// decode parses a received message with net/mail and mime, as a mail
// client would, and checks its MIME framing.
func decode(t *testing.T, data []byte) decoded {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("received message does not parse: %v\n%s", err, data)
	}
	subj, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil {
		t.Fatalf("Subject %q: %v", m.Header.Get("Subject"), err)
	}
	if v := m.Header.Get("MIME-Version"); v != "1.0" {
		t.Errorf("MIME-Version = %q", v)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "text/plain" || !strings.EqualFold(params["charset"], "utf-8") {
		t.Errorf("Content-Type = %q, want text/plain; charset=utf-8", m.Header.Get("Content-Type"))
	}
	var r io.Reader
	switch cte := m.Header.Get("Content-Transfer-Encoding"); cte {
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, m.Body)
	case "quoted-printable":
		r = quotedprintable.NewReader(m.Body)
	default:
		t.Fatalf("Content-Transfer-Encoding = %q", cte)
	}
	body, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("body: %v", err)
	}
	for _, line := range bytes.Split(data, []byte("\r\n")) {
		if len(line) > 78 {
			t.Errorf("line longer than 78 characters: %q", line)
		}
		if bytes.ContainsRune(line, '\n') {
			t.Errorf("bare LF in %q", line)
		}
	}
	return decoded{Header: m.Header, Subject: subj, Body: strings.ReplaceAll(string(body), "\r\n", "\n")}
}

func TestSendPlainLoopbackKorean(t *testing.T) {
	f := startFake(t, fakeOptions{TLS: "none", User: "relay", Pass: "s3cret"})
	a := newAdapter(t, Config{SMTP: f.Addr, TLS: "none", Username: "relay", Password: "s3cret", SubjectPrefix: "[relay]"})

	text := "안녕하세요, 사장님!\n4번 테이블에서 새 문의가 왔습니다.\n\n" + strings.Repeat("긴 줄 ", 40) + "\n끝."
	sent, err := a.Send(context.Background(), outgoing(text, "주문 알림: 4번 테이블 ☕"))
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	msgs := f.messages()
	if len(msgs) != 1 {
		t.Fatalf("server got %d messages, want 1", len(msgs))
	}
	if msgs[0].From != "relay@example.com" || len(msgs[0].To) != 1 || msgs[0].To[0] != testTo {
		t.Errorf("envelope = %q → %q", msgs[0].From, msgs[0].To)
	}
	d := decode(t, msgs[0].Data)
	if want := "[relay] 주문 알림: 4번 테이블 ☕"; d.Subject != want {
		t.Errorf("subject = %q, want %q", d.Subject, want)
	}
	if d.Body != text {
		t.Errorf("body = %q, want %q", d.Body, text)
	}
	if got := d.Header.Get("Message-ID"); got != sent.UpstreamID || !strings.HasSuffix(got, "@example.com>") {
		t.Errorf("Message-ID = %q, Sent.UpstreamID = %q", got, sent.UpstreamID)
	}
	from, err := d.Header.AddressList("From")
	if err != nil || len(from) != 1 || from[0].Name != "Relay 알림" || from[0].Address != "relay@example.com" {
		t.Errorf("From = %v (%v)", from, err)
	}
	if date, err := d.Header.Date(); err != nil || !date.Equal(time.Date(2026, 11, 25, 1, 2, 3, 0, time.UTC)) {
		t.Errorf("Date = %v (%v), want the message's creation time", date, err)
	}

	// The Message-ID is stable for the same Outgoing.Key, and only for it.
	again, err := a.Send(context.Background(), outgoing(text, "x"))
	if err != nil {
		t.Fatal(err)
	}
	other := outgoing(text, "x")
	other.Key = "01DLV/email/2"
	third, err := a.Send(context.Background(), other)
	if err != nil {
		t.Fatal(err)
	}
	if again.UpstreamID != sent.UpstreamID || third.UpstreamID == sent.UpstreamID {
		t.Errorf("Message-IDs %q, %q (same key), %q (other key)", sent.UpstreamID, again.UpstreamID, third.UpstreamID)
	}
}

func TestSendSubjectFromTextASCII(t *testing.T) {
	f := startFake(t, fakeOptions{TLS: "none"})
	a := newAdapter(t, Config{SMTP: f.Addr, TLS: "none", From: "relay@example.com"})
	first := "New inquiry from table 4: could someone bring the menu again, and also water please"
	text := first + "\nSecond line.\n"
	if _, err := a.Send(context.Background(), outgoing(text, "")); err != nil {
		t.Fatal(err)
	}
	d := decode(t, f.messages()[0].Data)
	if want := first[:59] + "…"; d.Subject != want {
		t.Errorf("subject = %q, want %q", d.Subject, want)
	}
	if d.Header.Get("Content-Transfer-Encoding") != "quoted-printable" {
		t.Errorf("ASCII text went as %s", d.Header.Get("Content-Transfer-Encoding"))
	}
	if d.Body != text {
		t.Errorf("body = %q, want %q", d.Body, text)
	}
}

func TestSendStartTLS(t *testing.T) {
	cert, caFile := testCert(t)
	f := startFake(t, fakeOptions{TLS: "starttls", Cert: cert, User: "relay", Pass: "pw"})
	a := newAdapter(t, Config{SMTP: f.Addr, Username: "relay", Password: "pw", CAFile: caFile})
	if err := a.Probe(context.Background()); err != nil {
		t.Fatalf("Probe: %v", err)
	}
	if _, err := a.Send(context.Background(), outgoing("over STARTTLS", "")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.tlsSeen) != 1 || !f.tlsSeen[0] {
		t.Fatalf("message not sent under TLS: %v", f.tlsSeen)
	}
}

func TestStartTLSUntrustedCertificateIsAuth(t *testing.T) {
	cert, _ := testCert(t)
	f := startFake(t, fakeOptions{TLS: "starttls", Cert: cert})
	a := newAdapter(t, Config{SMTP: f.Addr}) // no ca_file: the self-signed cert is not trusted
	_, err := a.Send(context.Background(), outgoing("x", ""))
	if k := relay.KindOf(err); k != relay.KindAuth {
		t.Fatalf("Send = %v (%v), want auth", k, err)
	}
	if f.delivered() != 0 {
		t.Fatal("message sent over an untrusted connection")
	}
	// insecure_skip_verify is the explicit way out.
	a = newAdapter(t, Config{SMTP: f.Addr, InsecureSkipVerify: true})
	if _, err := a.Send(context.Background(), outgoing("x", "")); err != nil {
		t.Fatalf("Send with insecure_skip_verify: %v", err)
	}
}

func TestStartTLSRequired(t *testing.T) {
	f := startFake(t, fakeOptions{TLS: "none"}) // offers no STARTTLS
	a := newAdapter(t, Config{SMTP: f.Addr, TLS: "starttls"})
	_, err := a.Send(context.Background(), outgoing("secret plans", ""))
	if k := relay.KindOf(err); k != relay.KindAuth || !errors.Is(err, errNoStartTLS) {
		t.Fatalf("Send = %v (%v), want auth: no STARTTLS", k, err)
	}
	if f.delivered() != 0 {
		t.Fatal("message sent in clear although STARTTLS is required")
	}
}

func TestImplicitTLS(t *testing.T) {
	cert, caFile := testCert(t)
	f := startFake(t, fakeOptions{TLS: "implicit", Cert: cert, User: "relay", Pass: "pw"})
	a := newAdapter(t, Config{SMTP: f.Addr, TLS: "implicit", Username: "relay", Password: "pw", CAFile: caFile})
	if err := a.Probe(context.Background()); err != nil {
		t.Fatalf("Probe: %v", err)
	}
	if _, err := a.Send(context.Background(), outgoing("over implicit TLS", "")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.tlsSeen) != 1 || !f.tlsSeen[0] {
		t.Fatalf("message not sent under TLS: %v", f.tlsSeen)
	}
}

func TestImplicitTLSAgainstPlainServerIsAuth(t *testing.T) {
	f := startFake(t, fakeOptions{TLS: "none"})
	a := newAdapter(t, Config{SMTP: f.Addr, TLS: "implicit"})
	err := a.Probe(context.Background())
	if k := relay.KindOf(err); k != relay.KindAuth {
		t.Fatalf("Probe = %v (%v), want auth (wrong tls mode)", k, err)
	}
}

func TestWrongPasswordIsAuth(t *testing.T) {
	f := startFake(t, fakeOptions{TLS: "none", User: "relay", Pass: "right"})
	a := newAdapter(t, Config{SMTP: f.Addr, TLS: "none", Username: "relay", Password: "wrong-pw"})
	for name, err := range map[string]error{
		"probe": a.Probe(context.Background()),
		"send":  func() error { _, err := a.Send(context.Background(), outgoing("x", "")); return err }(),
	} {
		if k := relay.KindOf(err); k != relay.KindAuth {
			t.Errorf("%s = %v (%v), want auth", name, k, err)
		}
		if strings.Contains(err.Error(), "wrong-pw") {
			t.Errorf("%s error shows the password: %v", name, err)
		}
	}
}

func TestDeadlineAfterDataIsAmbiguous(t *testing.T) {
	f := startFake(t, fakeOptions{TLS: "none"})
	f.setBlock(stageDataEnd) // reads the whole message, then never answers
	a := newAdapter(t, Config{SMTP: f.Addr, TLS: "none"})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := a.Send(ctx, outgoing("x", ""))
	if k := relay.KindOf(err); k != relay.KindAmbiguous {
		t.Fatalf("Send = %v (%v), want ambiguous", k, err)
	}
}

func TestDeadlineBeforeDataIsTemporary(t *testing.T) {
	f := startFake(t, fakeOptions{TLS: "none"})
	f.setBlock(stageRcpt) // never answers RCPT
	a := newAdapter(t, Config{SMTP: f.Addr, TLS: "none"})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := a.Send(ctx, outgoing("x", ""))
	if k := relay.KindOf(err); k != relay.KindTemporary {
		t.Fatalf("Send = %v (%v), want temporary", k, err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("Send returned after %v, ignoring its context", took)
	}
}

func TestBadAddressIsInvalid(t *testing.T) {
	a := newAdapter(t, Config{SMTP: refusedAddr(t), TLS: "none"})
	out := outgoing("x", "")
	out.Address = "not an address"
	_, err := a.Send(context.Background(), out)
	if k := relay.KindOf(err); k != relay.KindInvalid {
		t.Fatalf("Send = %v (%v), want invalid", k, err)
	}
}

func TestConformance(t *testing.T) {
	var last *fakeServer
	adaptertest.Run(t, adaptertest.Harness{
		Address: testTo,
		New: func(t *testing.T, mode adaptertest.Mode) relay.Adapter {
			var addr string
			switch mode {
			case adaptertest.Up:
				last = startFake(t, fakeOptions{TLS: "none"})
				addr = last.Addr
			case adaptertest.Failing:
				// A server that is going down answers everything with
				// 421 4.3.2 (RFC 5321 §3.8, RFC 3463 X.3.2 "system not
				// accepting network messages").
				last = startFake(t, fakeOptions{TLS: "none"})
				last.setReply(stageHello, "421 4.3.2 Service not available, closing transmission channel")
				addr = last.Addr
			case adaptertest.Refusing:
				addr = refusedAddr(t)
			case adaptertest.Hanging:
				addr = hangingServer(t)
			}
			a, err := New(&Config{SMTP: addr, TLS: "none", From: "relay@example.com"}, relay.Env{Name: "email"})
			if err != nil {
				t.Fatal(err)
			}
			return a
		},
		Delivered: func() int {
			if last == nil {
				return 0
			}
			return last.delivered()
		},
	})
}
