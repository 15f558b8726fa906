package ntfy

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relay-project/relay/adapters/adaptertest"
	"github.com/relay-project/relay/relay"
)

func newAdapter(t *testing.T, cfg Config) *Adapter {
	t.Helper()
	a, err := New(&cfg, relay.Env{Name: "ntfy", Now: time.Now, Signal: func(relay.HealthSignal) {}})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { a.Close() })
	return a.(*Adapter)
}

func TestConformance(t *testing.T) {
	var last *fakeNtfy
	adaptertest.Run(t, adaptertest.Harness{
		New: func(t *testing.T, mode adaptertest.Mode) relay.Adapter {
			f, srv := startFake(t, mode, "tk_secret")
			last = f
			return newAdapter(t, Config{APIURL: srv.URL, Token: "tk_secret"})
		},
		Address:   "relay-owner_1",
		Delivered: func() int { return last.count() },
	})
}

func TestKoreanHighPriorityArrivesIntact(t *testing.T) {
	f, srv := startFake(t, adaptertest.Up, "tk_secret")
	a := newAdapter(t, Config{APIURL: srv.URL, Token: "tk_secret", DefaultTags: []string{"warning", "relay"}})
	out := &relay.Outgoing{
		Address: "family", Subject: "긴급: 주문 알림", Text: "4번 테이블에서 새 문의가 왔습니다 🙂",
		Priority: relay.PriorityHigh, Part: 1, Parts: 1,
	}
	sent, err := a.Send(context.Background(), out)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if sent.UpstreamID != "msg0001" {
		t.Errorf("UpstreamID = %q, want the response id msg0001", sent.UpstreamID)
	}
	if len(f.published) != 1 {
		t.Fatalf("fake got %d messages", len(f.published))
	}
	got := f.published[0]
	if got.Topic != "family" || got.Message != out.Text || got.Title != out.Subject {
		t.Errorf("published %+v, want topic family, text and title unchanged", got)
	}
	if got.Priority != 4 {
		t.Errorf("priority = %d, want 4 (high)", got.Priority)
	}
	if strings.Join(got.Tags, ",") != "warning,relay" {
		t.Errorf("tags = %v", got.Tags)
	}
	if f.auths[0] != "Bearer tk_secret" {
		t.Errorf("Authorization = %q", f.auths[0])
	}
}

func TestNormalPriorityIsDefault(t *testing.T) {
	f, srv := startFake(t, adaptertest.Up, "")
	a := newAdapter(t, Config{APIURL: srv.URL})
	if _, err := a.Send(context.Background(), &relay.Outgoing{Address: "t", Text: "hi"}); err != nil {
		t.Fatal(err)
	}
	if p := f.published[0].Priority; p != 3 {
		t.Errorf("priority = %d, want 3", p)
	}
	if f.auths[0] != "" {
		t.Errorf("sent Authorization %q without credentials", f.auths[0])
	}
}

func TestBasicAuth(t *testing.T) {
	var gotUser, gotPass string
	srv := startRaw(t, func(w http.ResponseWriter, r *http.Request) {
		gotUser, gotPass, _ = r.BasicAuth()
		w.Write([]byte(`{"id":"x1"}`))
	})
	a := newAdapter(t, Config{APIURL: srv, Username: "phil", Password: "pw"})
	if _, err := a.Send(context.Background(), &relay.Outgoing{Address: "t", Text: "hi"}); err != nil {
		t.Fatal(err)
	}
	if gotUser != "phil" || gotPass != "pw" {
		t.Errorf("basic auth = %q/%q", gotUser, gotPass)
	}
}

func TestProbeChecksCredentials(t *testing.T) {
	_, srv := startFake(t, adaptertest.Up, "tk_good")
	good := newAdapter(t, Config{APIURL: srv.URL, Token: "tk_good"})
	if err := good.Probe(context.Background()); err != nil {
		t.Fatalf("Probe with a good token: %v", err)
	}
	bad := newAdapter(t, Config{APIURL: srv.URL, Token: "tk_bad"})
	err := bad.Probe(context.Background())
	if relay.KindOf(err) != relay.KindAuth {
		t.Fatalf("Probe with a bad token = %v (kind %v), want auth", err, relay.KindOf(err))
	}
	if strings.Contains(err.Error(), "tk_bad") {
		t.Errorf("error leaks the token: %v", err)
	}
	// Sends with the bad token are refused as auth failures too.
	_, err = bad.Send(context.Background(), &relay.Outgoing{Address: "t", Text: "hi"})
	if relay.KindOf(err) != relay.KindAuth {
		t.Fatalf("Send with a bad token: kind %v (%v), want auth", relay.KindOf(err), err)
	}
}

func TestSendRejectsBadTopic(t *testing.T) {
	f, srv := startFake(t, adaptertest.Up, "")
	a := newAdapter(t, Config{APIURL: srv.URL})
	_, err := a.Send(context.Background(), &relay.Outgoing{Address: "no/slashes", Text: "hi"})
	if relay.KindOf(err) != relay.KindPermanent {
		t.Fatalf("kind %v, want permanent", relay.KindOf(err))
	}
	if f.count() != 0 {
		t.Fatal("a bad topic reached the server")
	}
}

func TestClassify(t *testing.T) {
	cases := []struct {
		file       string
		status     int
		retryAfter string
		want       relay.Kind
		wantWait   time.Duration
	}{
		{"401_unauthorized.json", 401, "", relay.KindAuth, 0},
		{"403_forbidden.json", 403, "", relay.KindPermanent, 0}, // a denied topic: this contact only
		{"400_topic_invalid.json", 400, "", relay.KindInvalid, 0},
		{"413_json_too_large.json", 413, "", relay.KindInvalid, 0},
		{"429_too_many_requests.json", 429, "", relay.KindRateLimited, defaultRetryAfter},
		{"429_too_many_requests.json", 429, "3", relay.KindRateLimited, 3 * time.Second},
		{"500_internal.json", 500, "", relay.KindTemporary, 0},
		{"502_proxy.html", 502, "", relay.KindTemporary, 0},
	}
	for _, c := range cases {
		t.Run(c.file+"/"+c.retryAfter, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join("testdata", c.file))
			if err != nil {
				t.Fatal(err)
			}
			h := http.Header{}
			if c.retryAfter != "" {
				h.Set("Retry-After", c.retryAfter)
			}
			e := classifyResponse(c.status, h, body)
			if e.Kind != c.want {
				t.Errorf("kind = %v, want %v (%v)", e.Kind, c.want, e)
			}
			if e.RetryAfter != c.wantWait {
				t.Errorf("retry after = %v, want %v", e.RetryAfter, c.wantWait)
			}
			if !strings.HasPrefix(e.Error(), "ntfy: ") {
				t.Errorf("message %q lacks the ntfy prefix", e.Error())
			}
		})
	}
}

// Real round trip: a 429 from the server reaches the caller as rate-limited.
func TestSendRateLimited(t *testing.T) {
	f, srv := startFake(t, adaptertest.Up, "")
	f.nextCode, f.nextBody = 429, `{"code":42901,"http":429,"error":"limit reached: too many requests, please be nice"}`
	a := newAdapter(t, Config{APIURL: srv.URL})
	_, err := a.Send(context.Background(), &relay.Outgoing{Address: "t", Text: "hi"})
	if relay.KindOf(err) != relay.KindRateLimited || relay.RetryAfterOf(err) != defaultRetryAfter {
		t.Fatalf("err = %v kind %v wait %v", err, relay.KindOf(err), relay.RetryAfterOf(err))
	}
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		cfg  Config
		want string // "" = valid; else prefix of the first error
	}{
		{Config{}, ""},
		{Config{Token: "tk"}, ""},
		{Config{TokenFile: "/run/tk"}, ""},
		{Config{Username: "u", PasswordFile: "/run/pw"}, ""},
		{Config{APIURL: "ftp://x"}, "api_url:"},
		{Config{Token: "tk", Username: "u", Password: "p"}, "token:"},
		{Config{Username: "u"}, "password:"},
		{Config{Password: "p"}, "username:"},
		{Config{DefaultTags: []string{"a,b"}}, "default_tags:"},
	}
	for _, c := range cases {
		errs := c.cfg.Validate()
		if c.want == "" {
			if len(errs) != 0 {
				t.Errorf("%+v: unexpected %v", c.cfg, errs)
			}
			continue
		}
		if len(errs) == 0 || !strings.HasPrefix(errs[0].Error(), c.want) {
			t.Errorf("%+v: errors %v, want one starting %q", c.cfg, errs, c.want)
		}
	}
	var cfg Config
	for _, ok := range []string{"a", "my-topic_2", strings.Repeat("x", 64)} {
		if err := cfg.ValidateAddress(ok); err != nil {
			t.Errorf("ValidateAddress(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a b", "a/b", "주문", strings.Repeat("x", 65)} {
		if err := cfg.ValidateAddress(bad); err == nil {
			t.Errorf("ValidateAddress(%q) accepted", bad)
		}
	}
}

func TestRegistered(t *testing.T) {
	f, ok := relay.Lookup("ntfy")
	if !ok {
		t.Fatal("type ntfy not registered")
	}
	if _, ok := f.NewConfig().(*Config); !ok {
		t.Fatal("NewConfig does not return *Config")
	}
	if _, err := f.New(struct{}{}, relay.Env{}); err == nil {
		t.Fatal("New accepted a foreign config type")
	}
}

func startRaw(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := newServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}
