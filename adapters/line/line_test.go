package line

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/relay-project/relay/adapters/adaptertest"
	"github.com/relay-project/relay/adapters/internal/httpx"
	"github.com/relay-project/relay/relay"
)

func TestConformance(t *testing.T) {
	var latest *fakeLINE
	adaptertest.Run(t, adaptertest.Harness{
		New: func(t *testing.T, mode adaptertest.Mode) relay.Adapter {
			latest = newFakeLINE(t, mode)
			a, _ := newTestAdapter(t, latest, nil)
			return a
		},
		Address:   testUser,
		Delivered: func() int { return latest.Delivered() },
	})
}

func outgoing(key, text string) *relay.Outgoing {
	return &relay.Outgoing{MessageID: "01MSG", DeliveryID: "01DEL", Contact: "owner", Address: testUser,
		Text: text, Part: 1, Parts: 1, Key: key}
}

func TestSendPushesTextWithBearerAndRetryKey(t *testing.T) {
	f := newFakeLINE(t, adaptertest.Up)
	a, _ := newTestAdapter(t, f, nil)
	sent, err := a.Send(context.Background(), outgoing("01DEL/line/1", "new inquiry from table 4"))
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if sent.UpstreamID != "461230966842064898" {
		t.Fatalf("UpstreamID = %q, want sentMessages[0].id", sent.UpstreamID)
	}
	p := f.Pushes()
	if len(p) != 1 || p[0].To != testUser || p[0].Text != "new inquiry from table 4" {
		t.Fatalf("fake got %+v", p)
	}
	k, err := uuid.Parse(p[0].RetryKey)
	if err != nil || k.String() != p[0].RetryKey {
		t.Fatalf("X-Line-Retry-Key %q is not a hex UUID: %v", p[0].RetryKey, err)
	}
}

func TestRetryKeyIsStablePerKeyAndDistinctAcrossKeys(t *testing.T) {
	f := newFakeLINE(t, adaptertest.Up)
	a, _ := newTestAdapter(t, f, nil)
	ctx := context.Background()
	first, err := a.Send(ctx, outgoing("01DEL/line/1", "part one"))
	if err != nil {
		t.Fatalf("first Send: %v", err)
	}
	// The same attempt part again (a retry after a restart): LINE answers
	// 409 and the adapter reports the original push as sent.
	again, err := a.Send(ctx, outgoing("01DEL/line/1", "part one"))
	if err != nil {
		t.Fatalf("repeated Send: %v (409 already accepted must be success)", err)
	}
	if again.UpstreamID != first.UpstreamID {
		t.Fatalf("repeat UpstreamID = %q, want the first push's %q", again.UpstreamID, first.UpstreamID)
	}
	if _, err := a.Send(ctx, outgoing("01DEL/line/2", "part two")); err != nil {
		t.Fatalf("other part: %v", err)
	}
	p := f.Pushes()
	if len(p) != 3 {
		t.Fatalf("fake saw %d pushes, want 3", len(p))
	}
	if p[0].RetryKey != p[1].RetryKey {
		t.Fatalf("same Outgoing.Key gave keys %q and %q", p[0].RetryKey, p[1].RetryKey)
	}
	if p[2].RetryKey == p[0].RetryKey {
		t.Fatalf("different Outgoing.Key gave the same retry key %q", p[2].RetryKey)
	}
	if f.Delivered() != 2 {
		t.Fatalf("fake accepted %d pushes, want 2 (the repeat must not send again)", f.Delivered())
	}
	// A fresh adapter (the daemon restarted) derives the same key.
	b, _ := newTestAdapter(t, f, nil)
	if _, err := b.Send(ctx, outgoing("01DEL/line/1", "part one")); err != nil {
		t.Fatalf("Send after restart: %v", err)
	}
	if got := f.Pushes()[3].RetryKey; got != p[0].RetryKey {
		t.Fatalf("after restart key = %q, want %q", got, p[0].RetryKey)
	}
}

func TestTimeoutAfterAcceptIsAmbiguousAndRetrySendsOnce(t *testing.T) {
	f := newFakeLINE(t, adaptertest.Up)
	f.stallAccepted = 1 // LINE takes the push, the answer is lost
	a, _ := newTestAdapter(t, f, nil)

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := a.Send(ctx, outgoing("01DEL/line/1", "hello"))
	if k := relay.KindOf(err); k != relay.KindAmbiguous {
		t.Fatalf("timeout after the push was written: kind %v (%v), want ambiguous", k, err)
	}
	if !a.Idempotent() {
		t.Fatal("Idempotent() = false; the dispatcher would not retry on LINE")
	}
	sent, err := a.Send(context.Background(), outgoing("01DEL/line/1", "hello"))
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if sent.UpstreamID == "" {
		t.Fatal("retry answered 409 but UpstreamID is empty")
	}
	if f.Delivered() != 1 {
		t.Fatalf("LINE accepted %d pushes, want 1", f.Delivered())
	}
}

func TestMonthlyQuotaSignalsDownUntilNextMonth(t *testing.T) {
	f := newFakeLINE(t, adaptertest.Up)
	f.monthlyLimit = true
	f.quotaUsed = 200
	clock := &testClock{t: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)}
	a, rec := newTestAdapter(t, f, clock)

	_, err := a.Send(context.Background(), outgoing("k1", "hi"))
	if k := relay.KindOf(err); k != relay.KindAuth {
		t.Fatalf("monthly limit: kind %v (%v), want auth", k, err)
	}
	if !strings.Contains(err.Error(), "LINE monthly message quota reached") {
		t.Fatalf("error %q does not say the quota is spent", err)
	}
	wantUntil := time.Date(2026, 12, 1, 0, 0, 0, 0, jst)
	if got := relay.RetryAfterOf(err); got != wantUntil.Sub(clock.Now()) {
		t.Fatalf("RetryAfter = %v, want %v", got, wantUntil.Sub(clock.Now()))
	}
	sig := rec.Signals()
	if len(sig) != 1 || !sig[0].Down || !sig[0].Notify || !sig[0].Until.Equal(wantUntil) || !strings.Contains(sig[0].Reason, "LINE monthly message quota reached") {
		t.Fatalf("signals = %+v, want one Down/Notify until %v", sig, wantUntil)
	}
	// A second refusal does not notify again.
	_, _ = a.Send(context.Background(), outgoing("k2", "hi"))
	if n := len(rec.Signals()); n != 1 {
		t.Fatalf("%d signals after a second refusal, want 1", n)
	}

	// The token still works, but the probe keeps the channel down while
	// LINE reports the quota spent.
	if err := a.Probe(context.Background()); relay.KindOf(err) != relay.KindAuth {
		t.Fatalf("Probe with the quota spent: %v, want auth", err)
	}
	// A plan upgrade lifts the limit: the probe passes and signals up.
	f.mu.Lock()
	f.quotaValue, f.monthlyLimit = 5000, false
	f.mu.Unlock()
	if err := a.Probe(context.Background()); err != nil {
		t.Fatalf("Probe after the plan change: %v", err)
	}
	sig = rec.Signals()
	if len(sig) != 2 || sig[1].Down {
		t.Fatalf("signals = %+v, want a recovery signal", sig)
	}
}

func TestMonthlyQuotaClearsWhenTheMonthTurns(t *testing.T) {
	f := newFakeLINE(t, adaptertest.Up)
	f.monthlyLimit = true
	f.quotaUsed = 200
	clock := &testClock{t: time.Date(2026, 11, 30, 14, 0, 0, 0, time.UTC)} // 23:00 JST
	a, rec := newTestAdapter(t, f, clock)
	_, _ = a.Send(context.Background(), outgoing("k1", "hi"))
	clock.Set(time.Date(2026, 11, 30, 15, 0, 0, 0, time.UTC)) // 2026-12-01 00:00 JST
	if err := a.Probe(context.Background()); err != nil {
		t.Fatalf("Probe in the new month: %v", err)
	}
	if sig := rec.Signals(); len(sig) != 2 || sig[1].Down {
		t.Fatalf("signals = %+v, want down then up", sig)
	}
}

func TestProbeRejectsABadToken(t *testing.T) {
	f := newFakeLINE(t, adaptertest.Up)
	a, err := New(&Config{ChannelAccessToken: "wrong-token-secret", APIURL: f.srv.URL}, relay.Env{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	err = a.Probe(context.Background())
	if relay.KindOf(err) != relay.KindAuth {
		t.Fatalf("Probe with a bad token: %v, want auth", err)
	}
	_, err = a.Send(context.Background(), outgoing("k", "hi"))
	if relay.KindOf(err) != relay.KindAuth {
		t.Fatalf("Send with a bad token: %v, want auth", err)
	}
	if strings.Contains(err.Error(), "wrong-token-secret") {
		t.Fatalf("error leaks the token: %v", err)
	}
}

func TestSendChecksTextBeforeTheNetwork(t *testing.T) {
	f := newFakeLINE(t, adaptertest.Up)
	a, _ := newTestAdapter(t, f, nil)
	for _, text := range []string{"", strings.Repeat("가", TextLimit+1)} {
		if _, err := a.Send(context.Background(), outgoing("k", text)); relay.KindOf(err) != relay.KindInvalid {
			t.Fatalf("text of %d runes: %v, want invalid", len([]rune(text)), err)
		}
	}
	if _, err := a.Send(context.Background(), outgoing("k", strings.Repeat("가", TextLimit))); err != nil {
		t.Fatalf("text at the limit: %v", err)
	}
	if n := len(f.Pushes()); n != 1 {
		t.Fatalf("fake saw %d pushes, want 1", n)
	}
}

// TestClassification feeds LINE's documented error bodies (testdata/,
// developers.line.biz/en/reference/messaging-api/#error-responses) through
// a real push and checks the kind each becomes.
func TestClassification(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	cases := []struct {
		file       string
		status     int
		header     map[string]string
		kind       relay.Kind // 0: sent
		retryAfter time.Duration
		upstreamID string
		msg        string
	}{
		{"400_failed_to_send.json", 400, nil, relay.KindPermanent, 0, "", "Failed to send messages"},
		{"400_invalid_to.json", 400, nil, relay.KindPermanent, 0, "", "to: "},
		{"400_property_to_invalid.json", 400, nil, relay.KindPermanent, 0, "", "'to'"},
		{"400_body_errors.json", 400, nil, relay.KindInvalid, 0, "", "messages[0].text: May not be empty"},
		{"400_not_json.json", 400, nil, relay.KindInvalid, 0, "", "could not be parsed"},
		{"401_invalid_token.json", 401, nil, relay.KindAuth, 0, "", "Authentication failed"},
		{"403_not_available.json", 403, nil, relay.KindPermanent, 0, "", "not available"},
		{"409_retry_key_accepted.json", 409, map[string]string{"X-Line-Accepted-Request-Id": "123e4567-e89b-12d3-a456-426655440001"}, 0, 0, "461230966842064897", ""},
		{"409_retry_key_accepted_no_ids.json", 409, map[string]string{"X-Line-Accepted-Request-Id": "123e4567-e89b-12d3-a456-426655440001"}, 0, 0, "123e4567-e89b-12d3-a456-426655440001", ""},
		{"429_monthly_limit.json", 429, nil, relay.KindAuth, time.Date(2026, 12, 1, 0, 0, 0, 0, jst).Sub(now), "", "LINE monthly message quota reached"},
		{"429_rate_limit.json", 429, map[string]string{"Retry-After": "7"}, relay.KindRateLimited, 7 * time.Second, "", "rate limit"},
		{"429_rate_limit.json", 429, nil, relay.KindRateLimited, 0, "", "rate limit"},
		{"500_internal.json", 500, nil, relay.KindTemporary, 0, "", "500 Internal server error"},
		{"502_proxy.html", 502, nil, relay.KindTemporary, 0, "", "502 Bad Gateway"},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join("testdata", c.file))
			if err != nil {
				t.Fatal(err)
			}
			f := newFakeLINE(t, adaptertest.Up)
			f.script = func(w http.ResponseWriter) {
				for k, v := range c.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(c.status)
				_, _ = w.Write(body)
			}
			a, _ := newTestAdapter(t, f, &testClock{t: now})
			sent, err := a.Send(context.Background(), outgoing("k", "hi"))
			if k := relay.KindOf(err); k != c.kind {
				t.Fatalf("kind %v (%v), want %v", k, err, c.kind)
			}
			if got := relay.RetryAfterOf(err); got != c.retryAfter {
				t.Fatalf("RetryAfter = %v, want %v", got, c.retryAfter)
			}
			if sent.UpstreamID != c.upstreamID {
				t.Fatalf("UpstreamID = %q, want %q", sent.UpstreamID, c.upstreamID)
			}
			if err != nil && !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("error %q does not contain %q", err, c.msg)
			}
			if err != nil && strings.Contains(err.Error(), testToken) {
				t.Fatalf("error leaks the token: %v", err)
			}
		})
	}
}

func TestRetryAfterHTTPDate(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	h := http.Header{"Retry-After": {now.Add(90 * time.Second).Format(http.TimeFormat)}}
	if got := httpx.RetryAfterOr(h, now, 0); got != 90*time.Second {
		t.Fatalf("retryAfter = %v, want 90s", got)
	}
}

func TestConfig(t *testing.T) {
	if errs := (&Config{}).Validate(); len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), "channel_access_token:") {
		t.Fatalf("empty config: %v", errs)
	}
	if errs := (&Config{ChannelAccessTokenFile: "/run/credentials/line"}).Validate(); len(errs) != 0 {
		t.Fatalf("token from a file: %v", errs)
	}
	errs := (&Config{ChannelAccessToken: "x", APIURL: "api.line.me"}).Validate()
	if len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), "api_url:") {
		t.Fatalf("relative api_url: %v", errs)
	}
	c := Config{ChannelAccessToken: "tok-123", ChannelSecret: "sec-456"}
	for _, s := range []string{c.String(), c.GoString()} {
		if strings.Contains(s, "tok-123") || strings.Contains(s, "sec-456") {
			t.Fatalf("config prints a secret: %s", s)
		}
	}
	if _, err := New(&Config{}, relay.Env{}); err == nil {
		t.Fatal("New without a token succeeded")
	}
	f, ok := relay.Lookup("line")
	if !ok {
		t.Fatal(`type "line" is not registered`)
	}
	if _, ok := f.NewConfig().(*Config); !ok {
		t.Fatal("NewConfig does not return *Config")
	}
}

func TestValidateAddress(t *testing.T) {
	c := &Config{}
	for _, ok := range []string{testUser, "Ca56f94637cc4347f90a25382909b24b9", "Rb5f7a1c2d3e4f5a6b7c8d9e0f1a2b3c4"} {
		if err := c.ValidateAddress(ok); err != nil {
			t.Errorf("ValidateAddress(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "@shop", "U123", "u4af4980629a1b2c3d4e5f60718293a4b", "U4AF4980629A1B2C3D4E5F60718293A4B", testUser + "0", "X4af4980629a1b2c3d4e5f60718293a4b"} {
		if err := c.ValidateAddress(bad); err == nil {
			t.Errorf("ValidateAddress(%q) accepted it", bad)
		}
	}
}

func TestSendAfterCloseFails(t *testing.T) {
	f := newFakeLINE(t, adaptertest.Up)
	a, _ := newTestAdapter(t, f, nil)
	a.Close()
	_, err := a.Send(context.Background(), outgoing("k", "hi"))
	if !errors.Is(err, relay.ErrClosed) {
		t.Fatalf("Send after Close: %v", err)
	}
}
