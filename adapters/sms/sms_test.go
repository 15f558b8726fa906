package sms

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relay-project/relay/adapters/adaptertest"
	"github.com/relay-project/relay/relay"
)

// memState is an in-memory relay.StateStore.
type memState struct {
	mu   sync.Mutex
	m    map[string][]byte
	fail bool
}

func (s *memState) Get(_ context.Context, k string) ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[k]
	return v, ok, nil
}

func (s *memState) Put(_ context.Context, k string, v []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return errors.New("disk full")
	}
	if s.m == nil {
		s.m = map[string][]byte{}
	}
	s.m[k] = append([]byte(nil), v...)
	return nil
}

// testEnv records signals and has a settable clock.
type testEnv struct {
	state *memState
	mu    sync.Mutex
	now   time.Time
	sigs  []relay.HealthSignal
}

func newTestEnv(now time.Time) *testEnv { return &testEnv{state: &memState{}, now: now} }

func (e *testEnv) env() relay.Env {
	return relay.Env{
		Name: "sms", State: e.state,
		Now: func() time.Time { e.mu.Lock(); defer e.mu.Unlock(); return e.now },
		Signal: func(s relay.HealthSignal) {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.sigs = append(e.sigs, s)
		},
	}
}

func (e *testEnv) set(t time.Time) { e.mu.Lock(); e.now = t; e.mu.Unlock() }

func (e *testEnv) signals() []relay.HealthSignal {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]relay.HealthSignal(nil), e.sigs...)
}

func twilioConfig(f *fakeSMS, url string) Config {
	return Config{Provider: ProviderTwilio, APIURL: url, AccountSID: f.sid, AuthToken: f.token, From: "+15005550006"}
}

func solapiConfig(f *fakeSMS, url string) Config {
	return Config{Provider: ProviderSolapi, APIURL: url, APIKey: f.apiKey, APISecret: f.apiSecret, From: "02-930-2266"}
}

func build(t *testing.T, cfg Config, env relay.Env) *Adapter {
	t.Helper()
	a, err := New(&cfg, env)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { a.Close() })
	return a.(*Adapter)
}

func TestConformance(t *testing.T) {
	for name, cfgFor := range map[string]func(*fakeSMS, string) Config{
		"twilio": twilioConfig, "solapi": solapiConfig,
	} {
		t.Run(name, func(t *testing.T) {
			var last *fakeSMS
			adaptertest.Run(t, adaptertest.Harness{
				New: func(t *testing.T, mode adaptertest.Mode) relay.Adapter {
					f, srv := startFake(t, mode)
					last = f
					cfg := cfgFor(f, srv.URL)
					cfg.MaxPerDay = 100 // the budget is on the path, with room
					return build(t, cfg, newTestEnv(time.Now()).env())
				},
				Address:   "010-1234-5678",
				Delivered: func() int { return last.delivered() },
			})
		})
	}
}

func TestTwilioWireFormat(t *testing.T) {
	f, srv := startFake(t, adaptertest.Up)
	a := build(t, twilioConfig(f, srv.URL), newTestEnv(time.Now()).env())
	sent, err := a.Send(context.Background(), &relay.Outgoing{Address: "+82 10-1234-5678", Subject: "주문", Text: "새 문의가 왔습니다"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(sent.UpstreamID, "SM") {
		t.Errorf("UpstreamID = %q, want the message sid", sent.UpstreamID)
	}
	got := f.twilio[0]
	if got["To"] != "+821012345678" || got["From"] != "+15005550006" || got["Body"] != "주문\n새 문의가 왔습니다" {
		t.Errorf("form = %v", got)
	}
}

func TestTwilioMessagingService(t *testing.T) {
	f, srv := startFake(t, adaptertest.Up)
	cfg := twilioConfig(f, srv.URL)
	cfg.From = "MG00000000000000000000000000000001"
	a := build(t, cfg, newTestEnv(time.Now()).env())
	if _, err := a.Send(context.Background(), &relay.Outgoing{Address: "010-1234-5678", Text: "hi"}); err != nil {
		t.Fatal(err)
	}
	if got := f.twilio[0]; got["MessagingServiceSid"] != cfg.From || got["From"] != "" {
		t.Errorf("form = %v, want MessagingServiceSid and no From", got)
	}
}

func TestSolapiWireFormat(t *testing.T) {
	f, srv := startFake(t, adaptertest.Up)
	a := build(t, solapiConfig(f, srv.URL), newTestEnv(time.Now()).env())
	long := strings.Repeat("가나다라마바사", 20) // 280 bytes: an LMS
	cases := []struct {
		subject, text string
		typ, wantText string
		wantSubject   string
	}{
		{"", "안녕하세요", "SMS", "안녕하세요", ""},
		{"알림", "안녕하세요", "SMS", "알림\n안녕하세요", ""},
		{"아주 긴 제목입니다 정말로 아주 긴 제목입니다", long, "LMS", long, "아주 긴 제목입니다 정말로 아주 긴 제목입"}, // 40 EUC-KR bytes,
		{"", long, "LMS", long, ""},
	}
	for i, c := range cases {
		sent, err := a.Send(context.Background(), &relay.Outgoing{Address: "+821012345678", Subject: c.subject, Text: c.text})
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if !strings.HasPrefix(sent.UpstreamID, "M4V") {
			t.Errorf("case %d: UpstreamID = %q", i, sent.UpstreamID)
		}
		got := f.solapi[i]
		if got.To != "01012345678" || got.From != "029302266" || got.Type != c.typ || got.Text != c.wantText || got.Subject != c.wantSubject {
			t.Errorf("case %d: sent %+v, want type %s text %q subject %q", i, got, c.typ, c.wantText, c.wantSubject)
		}
	}
}

func TestSolapiWrongSecretIsAuth(t *testing.T) {
	f, srv := startFake(t, adaptertest.Up)
	cfg := solapiConfig(f, srv.URL)
	cfg.APISecret = "wrong-secret"
	a := build(t, cfg, newTestEnv(time.Now()).env())
	_, err := a.Send(context.Background(), &relay.Outgoing{Address: "01012345678", Text: "hi"})
	if relay.KindOf(err) != relay.KindAuth || !strings.Contains(err.Error(), "SignatureDoesNotMatch") {
		t.Fatalf("err = %v (kind %v), want auth SignatureDoesNotMatch", err, relay.KindOf(err))
	}
	if strings.Contains(err.Error(), "wrong-secret") {
		t.Error("error leaks the secret")
	}
	if relay.KindOf(a.Probe(context.Background())) != relay.KindAuth {
		t.Error("Probe with a wrong secret is not an auth failure")
	}
}

func TestSolapiStatusInOKResponse(t *testing.T) {
	f, srv := startFake(t, adaptertest.Up)
	a := build(t, solapiConfig(f, srv.URL), newTestEnv(time.Now()).env())
	f.setNext(200, `{"groupId":"G","messageId":"M","statusCode":"1062","statusMessage":"발신번호 미등록","to":"01012345678","type":"SMS"}`)
	_, err := a.Send(context.Background(), &relay.Outgoing{Address: "01012345678", Text: "hi"})
	if relay.KindOf(err) != relay.KindAuth {
		t.Fatalf("kind %v (%v), want auth for an unregistered sender", relay.KindOf(err), err)
	}
}

func TestSolapiProbeEmptyBalance(t *testing.T) {
	f, srv := startFake(t, adaptertest.Up)
	f.balance = 0
	a := build(t, solapiConfig(f, srv.URL), newTestEnv(time.Now()).env())
	if err := a.Probe(context.Background()); relay.KindOf(err) != relay.KindAuth {
		t.Fatalf("Probe with no balance = %v", err)
	}
}

func TestTwilioProbe(t *testing.T) {
	f, srv := startFake(t, adaptertest.Up)
	a := build(t, twilioConfig(f, srv.URL), newTestEnv(time.Now()).env())
	if err := a.Probe(context.Background()); err != nil {
		t.Fatalf("Probe: %v", err)
	}
	f.accounts = "suspended"
	if err := a.Probe(context.Background()); relay.KindOf(err) != relay.KindAuth || !strings.Contains(err.Error(), "suspended") {
		t.Fatalf("Probe of a suspended account = %v", err)
	}
	cfg := twilioConfig(f, srv.URL)
	cfg.AuthToken = "wrong"
	bad := build(t, cfg, newTestEnv(time.Now()).env())
	if err := bad.Probe(context.Background()); relay.KindOf(err) != relay.KindAuth {
		t.Fatalf("Probe with a wrong token = %v", err)
	}
}

func TestInvalidAddressIsPermanentAndNotSent(t *testing.T) {
	f, srv := startFake(t, adaptertest.Up)
	a := build(t, solapiConfig(f, srv.URL), newTestEnv(time.Now()).env())
	for _, addr := range []string{"not a number", "+14155552671"} { // solapi: Korean numbers only
		_, err := a.Send(context.Background(), &relay.Outgoing{Address: addr, Text: "hi"})
		if relay.KindOf(err) != relay.KindPermanent {
			t.Errorf("Send to %q: kind %v (%v), want permanent", addr, relay.KindOf(err), err)
		}
	}
	if f.delivered() != 0 {
		t.Fatal("an invalid address reached the provider")
	}
}

func TestClassifyTwilio(t *testing.T) {
	cases := []struct {
		file   string
		status int
		want   relay.Kind
	}{
		{"twilio_400_21211.json", 400, relay.KindPermanent},
		{"twilio_400_21614.json", 400, relay.KindPermanent},
		{"twilio_400_21610.json", 400, relay.KindPermanent},
		{"twilio_400_21602.json", 400, relay.KindInvalid},
		{"twilio_400_21606.json", 400, relay.KindAuth},
		{"twilio_401_20003.json", 401, relay.KindAuth},
		{"twilio_404_20404.json", 404, relay.KindAuth},
		{"twilio_429_20429.json", 429, relay.KindRateLimited},
		{"twilio_500.json", 500, relay.KindTemporary},
		{"twilio_503_proxy.html", 503, relay.KindTemporary},
	}
	for _, c := range cases {
		body := readTestdata(t, c.file)
		e := classifyTwilio(c.status, http.Header{"Retry-After": {"7"}}, body)
		if e.Kind != c.want {
			t.Errorf("%s: kind %v, want %v (%v)", c.file, e.Kind, c.want, e)
		}
		if c.want == relay.KindRateLimited && e.RetryAfter != 7*time.Second {
			t.Errorf("%s: retry after %v, want 7s", c.file, e.RetryAfter)
		}
		if !strings.HasPrefix(e.Error(), "twilio: ") {
			t.Errorf("%s: message %q", c.file, e.Error())
		}
	}
}

func TestClassifySolapi(t *testing.T) {
	cases := []struct {
		file   string
		status int
		want   relay.Kind
	}{
		{"solapi_403_InvalidAPIKey.json", 403, relay.KindAuth},
		{"solapi_403_SignatureDoesNotMatch.json", 403, relay.KindAuth},
		{"solapi_403_RequestTimeTooSkewed.json", 403, relay.KindAuth},
		{"solapi_403_DuplicatedSignature.json", 403, relay.KindTemporary},
		{"solapi_402_NotEnoughBalance.json", 402, relay.KindAuth},
		{"solapi_400_ValidationError_to.json", 400, relay.KindPermanent},
		{"solapi_400_ValidationError_text.json", 400, relay.KindInvalid},
		{"solapi_400_InvalidStatusCode_1061.json", 400, relay.KindPermanent},
		{"solapi_400_InvalidStatusCode_1062.json", 400, relay.KindAuth},
		{"solapi_500_InternalError.json", 500, relay.KindTemporary},
		{"twilio_503_proxy.html", 503, relay.KindTemporary},
	}
	for _, c := range cases {
		e := classifySolapi(c.status, readTestdata(t, c.file))
		if e.Kind != c.want {
			t.Errorf("%s: kind %v, want %v (%v)", c.file, e.Kind, c.want, e)
		}
		if !strings.HasPrefix(e.Error(), "solapi: ") {
			t.Errorf("%s: message %q", c.file, e.Error())
		}
	}
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRegistered(t *testing.T) {
	f, ok := relay.Lookup("sms")
	if !ok {
		t.Fatal("type sms not registered")
	}
	if _, ok := f.NewConfig().(*Config); !ok {
		t.Fatal("NewConfig does not return *Config")
	}
}

func TestTextLimit(t *testing.T) {
	f, srv := startFake(t, adaptertest.Up)
	if n := build(t, twilioConfig(f, srv.URL), relay.Env{}).TextLimit(); n != TwilioTextLimit {
		t.Errorf("twilio TextLimit = %d", n)
	}
	s := build(t, solapiConfig(f, srv.URL), relay.Env{})
	if n := s.TextLimit(); n != SolapiTextLimit {
		t.Errorf("solapi TextLimit = %d", n)
	}
	// A text of the limit in Hangul fits one LMS.
	if _, err := s.Send(context.Background(), &relay.Outgoing{Address: "01012345678", Text: strings.Repeat("가", SolapiTextLimit)}); err != nil {
		t.Fatalf("Send of %d Hangul: %v", SolapiTextLimit, err)
	}
}
