package line

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relay-project/relay/adapters/adaptertest"
	"github.com/relay-project/relay/relay"
)

func sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// postWebhook posts body to the adapter's handler over loopback HTTP, as
// LINE does (developers.line.biz/en/reference/messaging-api/#webhooks).
func postWebhook(t *testing.T, a *Adapter, body []byte, signature string) int {
	t.Helper()
	srv := httptest.NewServer(a.Webhook())
	defer srv.Close()
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/inbound/line/line", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	if signature != "" {
		// LINE sends the lower-case x-line-signature; the handler must not care.
		req.Header["x-line-signature"] = []string{signature}
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

func TestSignatureMatchesLINEReferenceVector(t *testing.T) {
	// Checked against the SDK's webhook.ValidateSignature (upstream-apis.md §2.8).
	body := []byte(`{"destination":"U0123456789abcdef0123456789abcdef","events":[]}`)
	if !validSignature("testsecret", "68T4hrXlCXQMCJqA3fGlBzTyBPmhsLT3g4xth3uGq7Y=", body) {
		t.Fatal("reference signature rejected")
	}
	for _, bad := range []string{"", "AAAA", "not base64!", sign("othersecret", body)} {
		if validSignature("testsecret", bad, body) {
			t.Fatalf("signature %q accepted", bad)
		}
	}
}

func TestWebhookTextMessageAccepted(t *testing.T) {
	a, rec := newTestAdapter(t, newFakeLINE(t, adaptertest.Up), nil)
	body := readTestdata(t, "webhook_text.json")
	if code := postWebhook(t, a, body, sign(testSecret, body)); code != http.StatusOK {
		t.Fatalf("status %d, want 200", code)
	}
	got := rec.Inbound()
	want := relay.InboundMessage{Channel: "line", UpstreamID: "01FZ74A0TDDPYRVKNK77XKC3ZR", SenderID: testUser,
		Text: "Is table 4 free tonight?", At: time.UnixMilli(1462629479859).UTC()}
	if len(got) != 1 || got[0] != want {
		t.Fatalf("accepted %+v, want exactly %+v", got, want)
	}
}

func TestWebhookBadOrMissingSignatureRefused(t *testing.T) {
	a, rec := newTestAdapter(t, newFakeLINE(t, adaptertest.Up), nil)
	body := readTestdata(t, "webhook_text.json")
	tampered := bytes.Replace(body, []byte("table 4"), []byte("table 5"), 1)
	for name, c := range map[string]struct {
		body []byte
		sig  string
	}{
		"missing":       {body, ""},
		"garbage":       {body, "AAAA"},
		"other secret":  {body, sign("not-the-secret", body)},
		"tampered body": {tampered, sign(testSecret, body)},
		"not base64":    {body, "%%%"},
	} {
		if code := postWebhook(t, a, c.body, c.sig); code != http.StatusUnauthorized {
			t.Errorf("%s: status %d, want 401", name, code)
		}
	}
	if n := len(rec.Inbound()); n != 0 {
		t.Fatalf("%d messages accepted from unsigned requests", n)
	}
}

func TestWebhookWithoutSecretRefusesEverything(t *testing.T) {
	f := newFakeLINE(t, adaptertest.Up)
	rec := &recorder{}
	a, err := New(&Config{ChannelAccessToken: testToken, APIURL: f.srv.URL}, relay.Env{Name: "line", Inbound: rec, Receipts: rec, Signal: rec.Signal})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	body := readTestdata(t, "webhook_text.json")
	// Signed with the empty key: must not pass for want of a secret.
	if code := postWebhook(t, a.(*Adapter), body, sign("", body)); code != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401", code)
	}
	if len(rec.Inbound()) != 0 {
		t.Fatal("message accepted without a channel secret")
	}
}

func TestWebhookSinkFailureIs500(t *testing.T) {
	a, rec := newTestAdapter(t, newFakeLINE(t, adaptertest.Up), nil)
	rec.acceptErr = errors.New("disk full")
	body := readTestdata(t, "webhook_text.json")
	if code := postWebhook(t, a, body, sign(testSecret, body)); code != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500 so LINE redelivers", code)
	}
	// LINE redelivers once the store works; the same event keeps its id.
	rec.mu.Lock()
	rec.acceptErr = nil
	rec.mu.Unlock()
	if code := postWebhook(t, a, body, sign(testSecret, body)); code != http.StatusOK {
		t.Fatalf("redelivery: status %d, want 200", code)
	}
	if got := rec.Inbound(); len(got) != 1 || got[0].UpstreamID != "01FZ74A0TDDPYRVKNK77XKC3ZR" {
		t.Fatalf("after redelivery: %+v", got)
	}
}

func TestWebhookPlaceholdersAndGroups(t *testing.T) {
	a, rec := newTestAdapter(t, newFakeLINE(t, adaptertest.Up), nil)
	body := readTestdata(t, "webhook_mixed.json")
	if code := postWebhook(t, a, body, sign(testSecret, body)); code != http.StatusOK {
		t.Fatalf("status %d, want 200", code)
	}
	got := rec.Inbound()
	if len(got) != 3 {
		t.Fatalf("accepted %d messages, want 3 (the follow event is not a message): %+v", len(got), got)
	}
	if got[0].Text != "[image]" || got[1].Text != "[sticker]" {
		t.Fatalf("placeholders = %q, %q", got[0].Text, got[1].Text)
	}
	g := got[2]
	if g.SenderID != "Ca56f94637cc4347f90a25382909b24b9" || g.Text != "hello from the group" || g.ReplyTo != "444573844083572737" || g.UpstreamID != "01FZ74A0TDDPYRVKNK77XKC3Z4" {
		t.Fatalf("group message = %+v; replies must go to the group", g)
	}
}

func TestWebhookConnectivityCheckAndLimits(t *testing.T) {
	a, rec := newTestAdapter(t, newFakeLINE(t, adaptertest.Up), nil)
	empty := []byte(`{"destination":"U0123456789abcdef0123456789abcdef","events":[]}`)
	if code := postWebhook(t, a, empty, sign(testSecret, empty)); code != http.StatusOK {
		t.Fatalf("LINE's verify request: status %d, want 200", code)
	}
	big := []byte(`{"events":[],"pad":"` + strings.Repeat("x", maxWebhookBody) + `"}`)
	if code := postWebhook(t, a, big, sign(testSecret, big)); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized body: status %d, want 413", code)
	}
	rr := httptest.NewRecorder()
	a.Webhook().ServeHTTP(rr, httptest.NewRequest(http.MethodGet, "/v1/inbound/line/line", nil))
	if rr.Code != http.StatusMethodNotAllowed {
		t.Fatalf("GET: status %d, want 405", rr.Code)
	}
	if len(rec.Inbound()) != 0 {
		t.Fatal("messages accepted from empty or refused requests")
	}
}
