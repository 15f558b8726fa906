package kakao

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relay-project/relay/adapters/adaptertest"
	"github.com/relay-project/relay/relay"
)

func msg(addr, text string) *relay.Outgoing {
	return &relay.Outgoing{MessageID: "m1", DeliveryID: "d1", Contact: "owner", Address: addr,
		Text: text, Part: 1, Parts: 1, Key: "d1/kakao/1"}
}

func TestConformance(t *testing.T) {
	var last *fakeKakao
	adaptertest.Run(t, adaptertest.Harness{
		New: func(t *testing.T, mode adaptertest.Mode) relay.Adapter {
			r := newRig(t, mode, withSeededTokens(6*time.Hour))
			last = r.fake
			return r.a
		},
		Address:   AddressMe,
		Delivered: func() int { return last.delivered() },
	})
}

func TestSendToMeUsesFormEncodedTextTemplate(t *testing.T) {
	r := newRig(t, adaptertest.Up, withSeededTokens(6*time.Hour))
	if _, err := r.a.Send(context.Background(), msg("me", "새 문의: 4번 테이블")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if len(r.fake.sends) != 1 {
		t.Fatalf("fake accepted %d sends, want 1", len(r.fake.sends))
	}
	got := r.fake.sends[0]
	if got.path != pathSendToMe {
		t.Errorf("path %q, want %q", got.path, pathSendToMe)
	}
	if got.contentType != "application/x-www-form-urlencoded;charset=utf-8" {
		t.Errorf("content type %q", got.contentType)
	}
	if got.template["text"] != "새 문의: 4번 테이블" {
		t.Errorf("template text %q", got.template["text"])
	}
	link, _ := got.template["link"].(map[string]any)
	if link["web_url"] != testLinkURL || link["mobile_web_url"] != testLinkURL {
		t.Errorf("template link %v, want both URLs %q", link, testLinkURL)
	}
	if got.receiverUUIDs != nil {
		t.Errorf("send to me carried receiver_uuids %v", got.receiverUUIDs)
	}
}

func TestSendToFriendUsesReceiverUUIDs(t *testing.T) {
	r := newRig(t, adaptertest.Up, withSeededTokens(6*time.Hour))
	if _, err := r.a.Send(context.Background(), msg("abcdefg0001", "hello")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if len(r.fake.sends) != 1 {
		t.Fatalf("fake accepted %d sends, want 1", len(r.fake.sends))
	}
	got := r.fake.sends[0]
	if got.path != pathSendFriends {
		t.Errorf("path %q, want %q", got.path, pathSendFriends)
	}
	if len(got.receiverUUIDs) != 1 || got.receiverUUIDs[0] != "abcdefg0001" {
		t.Errorf("receiver_uuids %v", got.receiverUUIDs)
	}
	if got.template["text"] != "hello" {
		t.Errorf("template text %q", got.template["text"])
	}
}

func TestFriendsPartialFailureIsPermanentForThatRecipient(t *testing.T) {
	for _, field := range []string{"failure_info", "failure_infos"} {
		t.Run(field, func(t *testing.T) {
			r := newRig(t, adaptertest.Up, withSeededTokens(6*time.Hour))
			// Kakao's multi-receiver answer: HTTP 200 with the failed
			// receivers listed (MessageSendResult in the Kakao SDK refs).
			r.fake.partial["refuser01"] = canned{200, `{"successful_receiver_uuids":[],"` + field + `":[{"code":-530,"msg":"can't send to the receiver who rejected messages","receiver_uuids":["refuser01"]}]}`}
			_, err := r.a.Send(context.Background(), msg("refuser01", "hi"))
			if k := relay.KindOf(err); k != relay.KindPermanent {
				t.Fatalf("kind %v (%v), want permanent", k, err)
			}
			if s := r.sig.all(); len(s) != 0 {
				t.Errorf("a recipient's refusal signalled the channel: %+v", s)
			}
			// Other recipients still work.
			if _, err := r.a.Send(context.Background(), msg("friend02", "hi")); err != nil {
				t.Fatalf("Send to another friend: %v", err)
			}
		})
	}
}

func TestStartBootstrapsFromConfiguredRefreshToken(t *testing.T) {
	r := newRig(t, adaptertest.Up, func(c *Config, f *fakeKakao, _ *memState, _ *clock) {
		c.RefreshToken = "SECRET-rt-boot"
		f.refresh["SECRET-rt-boot"] = true
	})
	if err := r.a.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	// The send waits for the start-up refresh (one exchange in flight)
	// or does it itself; either way Kakao issues one token.
	if _, err := r.a.Send(context.Background(), msg("me", "hi")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if n := r.fake.count(&r.fake.tokenCalls); n != 1 {
		t.Fatalf("token calls %d, want 1", n)
	}
	form := r.fake.tokenForms[0]
	want := map[string]string{"grant_type": "refresh_token", "client_id": testKey, "client_secret": testSecret, "refresh_token": "SECRET-rt-boot"}
	for k, v := range want {
		if form[k] != v {
			t.Errorf("refresh form %s=%q, want %q", k, form[k], v)
		}
	}
	rec, puts := r.state.record(t)
	if rec.AccessToken != "SECRET-at-1" || rec.RefreshToken != "SECRET-rt-boot" || puts != 1 {
		t.Errorf("stored %+v after %d puts, want the new access token and the bootstrap refresh token in one put", rec, puts)
	}
	if !rec.AccessExpiresAt.Equal(r.clock.Now().Add(21599 * time.Second)) {
		t.Errorf("access expiry %v", rec.AccessExpiresAt)
	}
}

func TestStartWithStoredTokensDoesNotRefresh(t *testing.T) {
	r := newRig(t, adaptertest.Up, withSeededTokens(6*time.Hour), func(c *Config, f *fakeKakao, _ *memState, _ *clock) {
		c.RefreshToken = "SECRET-rt-boot"
	})
	r.a.Start(context.Background())
	r.a.Close() // waits for the start-up work
	if n := r.fake.count(&r.fake.tokenCalls); n != 0 {
		t.Fatalf("token calls %d, want 0: stored tokens win over the bootstrap token", n)
	}
}

func TestRefusedAccessTokenIsRefreshedAndSendRetriedOnce(t *testing.T) {
	r := newRig(t, adaptertest.Up, withSeededTokens(6*time.Hour))
	r.fake.mu.Lock()
	delete(r.fake.access, "SECRET-at-seed") // revoked early: kapi answers -401
	r.fake.mu.Unlock()
	if _, err := r.a.Send(context.Background(), msg("me", "hi")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if n := r.fake.count(&r.fake.tokenCalls); n != 1 {
		t.Errorf("token calls %d, want 1", n)
	}
	if n := r.fake.count(&r.fake.sendCalls); n != 2 {
		t.Errorf("send calls %d, want 2 (refused, then retried)", n)
	}
	if r.fake.delivered() != 1 {
		t.Errorf("delivered %d, want 1", r.fake.delivered())
	}
	if rec, _ := r.state.record(t); rec.AccessToken != "SECRET-at-1" || rec.RefreshToken != "SECRET-rt-seed" {
		t.Errorf("stored %+v", rec)
	}
}

func TestAccessTokenIsRefreshedBeforeItExpires(t *testing.T) {
	r := newRig(t, adaptertest.Up, withSeededTokens(4*time.Minute))
	if _, err := r.a.Send(context.Background(), msg("me", "hi")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if n := r.fake.count(&r.fake.tokenCalls); n != 1 {
		t.Errorf("token calls %d, want 1", n)
	}
	if n := r.fake.count(&r.fake.sendCalls); n != 1 {
		t.Errorf("send calls %d, want 1: no -401 round trip", n)
	}
}

func TestConcurrentSendsShareOneRefresh(t *testing.T) {
	r := newRig(t, adaptertest.Up, withSeededTokens(time.Minute))
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for range 10 {
		wg.Go(func() {
			_, err := r.a.Send(context.Background(), msg("me", "hi"))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Send: %v", err)
		}
	}
	if n := r.fake.count(&r.fake.tokenCalls); n != 1 {
		t.Errorf("token calls %d, want 1", n)
	}
}

func TestRotatedRefreshTokenIsPersistedWhole(t *testing.T) {
	r := newRig(t, adaptertest.Up, withSeededTokens(time.Minute))
	r.fake.rotate = true
	if _, err := r.a.Send(context.Background(), msg("me", "hi")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	rec, puts := r.state.record(t)
	if puts != 1 {
		t.Errorf("%d puts, want 1", puts)
	}
	if rec.AccessToken != "SECRET-at-1" || rec.RefreshToken != "SECRET-rt-1" {
		t.Fatalf("stored %+v, want the new access and refresh tokens", rec)
	}
	if !rec.RefreshExpiresAt.Equal(r.clock.Now().Add(5183999 * time.Second)) {
		t.Errorf("refresh expiry %v", rec.RefreshExpiresAt)
	}
	// The old refresh token is dead at Kakao; the next refresh must use
	// the rotated one and succeed.
	r.clock.Add(6 * time.Hour)
	if _, err := r.a.Send(context.Background(), msg("me", "again")); err != nil {
		t.Fatalf("Send after expiry: %v", err)
	}
	if got := r.fake.tokenForms[1]["refresh_token"]; got != "SECRET-rt-1" {
		t.Errorf("second refresh used %q, want the rotated token", got)
	}
}

func TestRefusedRefreshSignalsDownOnceWithoutRefreshLoop(t *testing.T) {
	r := newRig(t, adaptertest.Up, withSeededTokens(time.Minute))
	r.fake.mu.Lock()
	delete(r.fake.refresh, "SECRET-rt-seed") // user unlinked the app: KOE322
	r.fake.mu.Unlock()
	r.clock.Add(2 * time.Minute) // the access token is now expired
	for i := range 5 {
		_, err := r.a.Send(context.Background(), msg("me", "hi"))
		if k := relay.KindOf(err); k != relay.KindAuth {
			t.Fatalf("send %d: kind %v (%v), want auth", i, k, err)
		}
	}
	if err := r.a.Probe(context.Background()); relay.KindOf(err) != relay.KindAuth {
		t.Errorf("Probe = %v, want an auth error", err)
	}
	if n := r.fake.count(&r.fake.tokenCalls); n != 1 {
		t.Errorf("token calls %d, want 1: no refresh loop", n)
	}
	s := r.sig.all()
	if len(s) != 1 || !s[0].Down || !s[0].Notify || s[0].Reason != ReasonLoginExpired {
		t.Fatalf("signals %+v, want one Down with notify and %q", s, ReasonLoginExpired)
	}
	// After the back-off, one more try; still one signal.
	r.clock.Add(loginRetry + time.Second)
	if _, err := r.a.Send(context.Background(), msg("me", "hi")); relay.KindOf(err) != relay.KindAuth {
		t.Errorf("send after back-off: %v", err)
	}
	if n := r.fake.count(&r.fake.tokenCalls); n != 2 {
		t.Errorf("token calls %d after the back-off, want 2", n)
	}
	if n := len(r.sig.all()); n != 1 {
		t.Errorf("%d signals, want still 1", n)
	}
}

func TestTokenRefusedRightAfterRefreshMeansLoginLost(t *testing.T) {
	r := newRig(t, adaptertest.Up, withSeededTokens(6*time.Hour))
	// appKey deactivated: every token is refused, refreshes still succeed.
	for range 4 {
		r.fake.script = append(r.fake.script, canned{401, `{"msg":"appKey(xxxxxxxx) is already deactivated","code":-401}`})
	}
	r.fake.mu.Lock()
	delete(r.fake.access, "SECRET-at-seed")
	r.fake.mu.Unlock()
	r.fake.access["SECRET-at-1"] = true
	for range 3 {
		if _, err := r.a.Send(context.Background(), msg("me", "hi")); relay.KindOf(err) != relay.KindAuth {
			t.Fatalf("Send = %v, want auth", err)
		}
	}
	if n := r.fake.count(&r.fake.tokenCalls); n != 1 {
		t.Errorf("token calls %d, want 1", n)
	}
	if s := r.sig.all(); len(s) != 1 || !s[0].Down {
		t.Errorf("signals %+v, want one Down", s)
	}
}

func TestAuthorizeStoresTokensAndClearsDown(t *testing.T) {
	r := newRig(t, adaptertest.Up) // no tokens, no bootstrap: not logged in
	if _, err := r.a.Send(context.Background(), msg("me", "hi")); relay.KindOf(err) != relay.KindAuth {
		t.Fatalf("Send without a login = %v, want auth", err)
	}
	redirect := "http://localhost:8781" + LoginRedirectPath()
	u, err := url.Parse(r.a.AuthURL(redirect, "st4te"))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if u.Path != "/oauth/authorize" || q.Get("response_type") != "code" || q.Get("client_id") != testKey ||
		q.Get("redirect_uri") != redirect || q.Get("state") != "st4te" || q.Get("scope") != "talk_message" {
		t.Fatalf("AuthURL %s", u)
	}
	r.fake.redirectURI = redirect
	r.fake.codes["code-1"] = true
	if err := r.a.Authorize(context.Background(), "code-1", redirect); err != nil {
		t.Fatalf("Authorize: %v", err)
	}
	form := r.fake.tokenForms[0]
	if form["grant_type"] != "authorization_code" || form["code"] != "code-1" || form["client_secret"] != testSecret {
		t.Errorf("token form %v", form)
	}
	rec, _ := r.state.record(t)
	if rec.AccessToken != "SECRET-at-1" || rec.RefreshToken != "SECRET-rt-1" || rec.Scope != "talk_message" {
		t.Errorf("stored %+v", rec)
	}
	s := r.sig.all()
	if len(s) != 2 || !s[0].Down || s[1].Down {
		t.Fatalf("signals %+v, want Down then up", s)
	}
	if _, err := r.a.Send(context.Background(), msg("me", "hi")); err != nil {
		t.Fatalf("Send after login: %v", err)
	}
	if n := r.fake.count(&r.fake.tokenCalls); n != 1 {
		t.Errorf("token calls %d, want 1", n)
	}
}

func TestAuthorizeWithBadCodeFails(t *testing.T) {
	r := newRig(t, adaptertest.Up)
	err := r.a.Authorize(context.Background(), "used-code", "http://localhost:8781/kakao/callback")
	if relay.KindOf(err) != relay.KindAuth || !strings.Contains(err.Error(), "KOE320") {
		t.Fatalf("Authorize = %v, want an auth error naming KOE320", err)
	}
	if _, puts := r.state.record(t); puts != 0 {
		t.Errorf("%d puts after a failed login", puts)
	}
}

func TestConsentMissingSignalsDown(t *testing.T) {
	r := newRig(t, adaptertest.Up, withSeededTokens(6*time.Hour))
	r.fake.script = []canned{{403, `{"msg":"insufficient scopes.","code":-402,"api_type":"TALK_MEMO_DEFAULT_SEND","required_scopes":["talk_message"],"allowed_scopes":["profile"]}`}}
	_, err := r.a.Send(context.Background(), msg("me", "hi"))
	if relay.KindOf(err) != relay.KindAuth || !strings.Contains(err.Error(), "consent missing: talk_message") {
		t.Fatalf("Send = %v, want auth with consent missing: talk_message", err)
	}
	s := r.sig.all()
	if len(s) != 1 || !s[0].Down || !strings.Contains(s[0].Reason, "talk_message") {
		t.Fatalf("signals %+v", s)
	}
	// A send that works again (consent given on Kakao's side) clears it.
	if _, err := r.a.Send(context.Background(), msg("me", "hi")); err != nil {
		t.Fatal(err)
	}
	if s := r.sig.all(); len(s) != 2 || s[1].Down {
		t.Fatalf("signals %+v, want up after a working send", s)
	}
}

func TestDailyQuotaTakesChannelDownUntilMidnightKST(t *testing.T) {
	r := newRig(t, adaptertest.Up, withSeededTokens(48*time.Hour))
	// 2026-11-25 10:00 UTC is 19:00 KST; the reset is 2026-11-26 00:00 KST = 15:00 UTC.
	reset := time.Date(2026, 11, 25, 15, 0, 0, 0, time.UTC)
	r.fake.script = []canned{{400, `{"code":-10,"msg":"API limit has been exceeded."}`}}
	_, err := r.a.Send(context.Background(), msg("me", "hi"))
	if relay.KindOf(err) != relay.KindAuth || relay.RetryAfterOf(err) != 5*time.Hour {
		t.Fatalf("Send = %v (retry after %v), want auth for 5h", err, relay.RetryAfterOf(err))
	}
	s := r.sig.all()
	if len(s) != 1 || !s[0].Down || !s[0].Until.Equal(reset) || !s[0].Notify {
		t.Fatalf("signals %+v, want Down until %v", s, reset)
	}
	r.clock.Add(time.Hour)
	_, err = r.a.Send(context.Background(), msg("abcdefg0001", "hi"))
	if relay.KindOf(err) != relay.KindAuth || relay.RetryAfterOf(err) != 4*time.Hour {
		t.Fatalf("Send during the quota = %v, want auth for 4h", err)
	}
	if err := r.a.Probe(context.Background()); err == nil {
		t.Fatal("Probe succeeded while the quota is spent")
	}
	if n := r.fake.count(&r.fake.sendCalls); n != 1 {
		t.Errorf("%d send calls, want 1: none while the quota is spent", n)
	}
	r.clock.Add(4 * time.Hour)
	if _, err := r.a.Send(context.Background(), msg("me", "hi")); err != nil {
		t.Fatalf("Send after the reset: %v", err)
	}
	if s := r.sig.all(); len(s) != 2 || s[1].Down {
		t.Fatalf("signals %+v, want up after the reset", s)
	}
}

func TestRecipientQuotaIsPermanentForThatRecipientOnly(t *testing.T) {
	r := newRig(t, adaptertest.Up, withSeededTokens(48*time.Hour))
	r.fake.script = []canned{{400, `{"code":-533,"msg":"daily receiver quota exceeded"}`}}
	_, err := r.a.Send(context.Background(), msg("busyfriend", "hi"))
	if relay.KindOf(err) != relay.KindPermanent {
		t.Fatalf("Send = %v, want permanent", err)
	}
	if _, err := r.a.Send(context.Background(), msg("busyfriend", "hi")); relay.KindOf(err) != relay.KindPermanent {
		t.Fatalf("second Send = %v, want permanent", err)
	}
	if n := r.fake.count(&r.fake.sendCalls); n != 1 {
		t.Errorf("%d send calls, want 1", n)
	}
	if _, err := r.a.Send(context.Background(), msg("me", "hi")); err != nil {
		t.Fatalf("Send to another recipient: %v", err)
	}
	if s := r.sig.all(); len(s) != 0 {
		t.Errorf("signals %+v, want none", s)
	}
}

func TestTransportFailures(t *testing.T) {
	t.Run("refused connection is temporary", func(t *testing.T) {
		r := newRig(t, adaptertest.Refusing, withSeededTokens(6*time.Hour))
		_, err := r.a.Send(context.Background(), msg("me", "hi"))
		if k := relay.KindOf(err); k != relay.KindTemporary {
			t.Fatalf("kind %v (%v), want temporary", k, err)
		}
	})
	t.Run("deadline after the request was written is ambiguous", func(t *testing.T) {
		r := newRig(t, adaptertest.Hanging, withSeededTokens(6*time.Hour))
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_, err := r.a.Send(ctx, msg("me", "hi"))
		if k := relay.KindOf(err); k != relay.KindAmbiguous || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("kind %v (%v), want ambiguous wrapping the deadline", k, err)
		}
	})
	t.Run("refresh against a failing kauth is temporary and not a lost login", func(t *testing.T) {
		r := newRig(t, adaptertest.Failing, withSeededTokens(time.Minute))
		r.clock.Add(2 * time.Minute)
		_, err := r.a.Send(context.Background(), msg("me", "hi"))
		if k := relay.KindOf(err); k != relay.KindTemporary {
			t.Fatalf("kind %v (%v), want temporary", k, err)
		}
		if s := r.sig.all(); len(s) != 0 {
			t.Errorf("signals %+v, want none", s)
		}
	})
}

func TestNoTokenInErrorsOrLogs(t *testing.T) {
	r := newRig(t, adaptertest.Up, withSeededTokens(time.Minute))
	r.fake.rotate = true
	var errs []error
	_, err := r.a.Send(context.Background(), msg("me", "hi")) // refresh + rotation
	errs = append(errs, err)
	r.fake.mu.Lock()
	clear(r.fake.refresh)
	clear(r.fake.access)
	r.fake.mu.Unlock()
	_, err = r.a.Send(context.Background(), msg("me", "hi")) // -401, refused refresh
	errs = append(errs, err)
	errs = append(errs, r.a.Probe(context.Background()))
	errs = append(errs, r.a.Authorize(context.Background(), "SECRET-code", "http://localhost/cb"))
	r.a.Close()
	for _, err := range errs {
		if err != nil && strings.Contains(err.Error(), "SECRET") {
			t.Errorf("error leaks a secret: %v", err)
		}
	}
	if logs := r.logs.String(); strings.Contains(logs, "SECRET") || strings.Contains(logs, testSecret) {
		t.Errorf("logs leak a secret:\n%s", logs)
	}
}

func TestNewDoesNotTouchNetwork(t *testing.T) {
	r := newRig(t, adaptertest.Up, func(c *Config, f *fakeKakao, _ *memState, _ *clock) {
		c.RefreshToken = "SECRET-rt-boot"
	})
	r.a.Close()
	if n := r.fake.count(&r.fake.tokenCalls); n != 0 {
		t.Errorf("token calls %d before Start", n)
	}
}

func TestTextLimit(t *testing.T) {
	r := newRig(t, adaptertest.Up)
	if r.a.TextLimit() != 200 {
		t.Errorf("TextLimit %d", r.a.TextLimit())
	}
}

func TestAppRefusalSignalsDownWithoutBlamingTheLogin(t *testing.T) {
	r := newRig(t, adaptertest.Up, withSeededTokens(6*time.Hour))
	r.fake.script = []canned{{403, string(readTestdata(t, "kapi_3_scope_disabled.json"))}}
	if _, err := r.a.Send(context.Background(), msg("me", "hi")); relay.KindOf(err) != relay.KindAuth {
		t.Fatalf("Send = %v, want auth", err)
	}
	s := r.sig.all()
	if len(s) != 1 || !s[0].Down || !strings.Contains(s[0].Reason, "developers.kakao.com") {
		t.Fatalf("signals %+v, want one Down pointing at the app settings", s)
	}
	// Once the app is fixed, sends work at once: no refresh back-off.
	if _, err := r.a.Send(context.Background(), msg("me", "hi")); err != nil {
		t.Fatalf("Send after the fix: %v", err)
	}
	if n := r.fake.count(&r.fake.tokenCalls); n != 0 {
		t.Errorf("token calls %d, want 0", n)
	}
}

func TestProbeChecksTheAccessTokenAndRefreshesFirst(t *testing.T) {
	r := newRig(t, adaptertest.Up, withSeededTokens(time.Minute))
	if err := r.a.Probe(context.Background()); err != nil {
		t.Fatalf("Probe: %v", err)
	}
	if n := r.fake.count(&r.fake.tokenCalls); n != 1 {
		t.Errorf("token calls %d, want 1 (refresh before the probe)", n)
	}
	if n := r.fake.count(&r.fake.probes); n != 1 {
		t.Errorf("access_token_info calls %d, want 1", n)
	}
}

func TestProbeAgreesWithALostLogin(t *testing.T) {
	// The access token has 4 minutes left, the refresh is refused: sends may
	// still use the token, but the channel is down and probes say so.
	r := newRig(t, adaptertest.Up, withSeededTokens(4*time.Minute))
	r.fake.mu.Lock()
	delete(r.fake.refresh, "SECRET-rt-seed")
	r.fake.mu.Unlock()
	if _, err := r.a.Send(context.Background(), msg("me", "hi")); err != nil {
		t.Fatalf("Send with a still valid token: %v", err)
	}
	if s := r.sig.all(); len(s) != 1 || !s[0].Down {
		t.Fatalf("signals %+v, want one Down", s)
	}
	if err := r.a.Probe(context.Background()); relay.KindOf(err) != relay.KindAuth {
		t.Fatalf("Probe = %v, want auth", err)
	}
	if n := r.fake.count(&r.fake.tokenCalls); n != 1 {
		t.Errorf("token calls %d, want 1", n)
	}
}
