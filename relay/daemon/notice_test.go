package daemon_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/relay-project/relay/adapters/kakao"
)

// TestKakaoLoginLostNotifiesAdmin: a Kakao refresh token that kauth
// refuses (KOE322) marks the channel down with a clear reason, the
// admin is told over another channel to run `relay kakao login`, messages
// fail over, and kauth is not asked again and again.
func TestKakaoLoginLostNotifiesAdmin(t *testing.T) {
	var tokenCalls atomic.Int64
	// Kakao's documented error for a dead refresh token.
	kauth := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/oauth/token" {
			tokenCalls.Add(1)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(400)
		fmt.Fprint(w, `{"error":"invalid_grant","error_description":"expired_or_invalid_refresh_token","error_code":"KOE322"}`)
	}))
	defer kauth.Close()
	kapi := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(401)
		fmt.Fprint(w, `{"msg":"this access token does not exist","code":-401}`)
	}))
	defer kapi.Close()
	backup := newSink(t)
	n := startDaemon(t, "", fmt.Sprintf(`
[server]
listen = "127.0.0.1:0"
[store]
path = "%%DIR%%/relay.db"
[delivery]
admin = "owner"
retry_min = "50ms"
retry_max = "100ms"
[channels.kakao]
type = "kakao"
rest_api_key = "kakao-key"
refresh_token = "dead-refresh-token"
link_url = "https://shop.example.com"
api_url = %q
auth_url = %q
health = { interval = "100ms", fall = 1, rise = 1 }
[channels.hook]
type = "webhook"
url = %q
[contacts.owner]
route = ["kakao", "hook"]
kakao = "me"
hook = "owner"
`, kapi.URL, kauth.URL, backup.srv.URL))
	n.waitChannel("kakao", "down", 10*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for {
		found := false
		for _, txt := range backup.texts() {
			if strings.Contains(txt, "relay kakao login") {
				found = true
			}
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no notice to the admin; hook got %q", backup.texts())
		}
		time.Sleep(10 * time.Millisecond)
	}
	id := n.accept(`{"to": "owner", "text": "still reaches the owner"}`)
	m := n.waitStatus(id, "delivered", 10*time.Second)
	if m.Deliveries[0].Channel != "hook" {
		t.Fatalf("delivered on %s", m.Deliveries[0].Channel)
	}
	time.Sleep(500 * time.Millisecond) // five probe intervals
	if c := tokenCalls.Load(); c > 2 {
		t.Fatalf("kauth asked %d times for a refused refresh token: a refresh loop", c)
	}
	r := n.do("GET", "/v1/channels", "", nil)
	if !strings.Contains(string(r.body), "relay kakao login") {
		t.Fatalf("/v1/channels does not say why: %s", r.body)
	}
	if strings.Contains(string(r.body), "dead-refresh-token") || strings.Contains(string(r.body), "kakao-key") {
		t.Fatal("a secret is shown in /v1/channels")
	}
}
