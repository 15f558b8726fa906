package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestKakaoLogin drives `relay kakao login` end to end: the CLI asks the
// daemon for Kakao's authorize URL, a "browser" follows it to a fake kauth
// that redirects back to the CLI's loopback listener with a code, the CLI
// hands the code to the daemon, the daemon exchanges it for tokens, and
// the channel comes up and sends with them.
func TestKakaoLogin(t *testing.T) {
	var mu sync.Mutex
	var sent []string
	// Fake kauth/kapi following Kakao's documented OAuth and memo APIs.
	kakao := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/oauth/authorize":
			q := r.URL.Query()
			http.Redirect(w, r, q.Get("redirect_uri")+"?code=the-code&state="+url.QueryEscape(q.Get("state")), http.StatusFound)
		case "/oauth/token":
			r.ParseForm()
			if r.PostForm.Get("grant_type") != "authorization_code" || r.PostForm.Get("code") != "the-code" {
				w.WriteHeader(400)
				fmt.Fprint(w, `{"error":"invalid_grant","error_code":"KOE320"}`)
				return
			}
			fmt.Fprint(w, `{"token_type":"bearer","access_token":"fresh-access","expires_in":21599,"refresh_token":"fresh-refresh","refresh_token_expires_in":5183999,"scope":"talk_message"}`)
		case "/v1/user/access_token_info":
			if r.Header.Get("Authorization") != "Bearer fresh-access" {
				w.WriteHeader(401)
				fmt.Fprint(w, `{"msg":"this access token does not exist","code":-401}`)
				return
			}
			fmt.Fprint(w, `{"id":1,"expires_in":21000,"app_id":1}`)
		case "/v2/api/talk/memo/default/send":
			if r.Header.Get("Authorization") != "Bearer fresh-access" {
				w.WriteHeader(401)
				fmt.Fprint(w, `{"msg":"this access token does not exist","code":-401}`)
				return
			}
			r.ParseForm()
			mu.Lock()
			sent = append(sent, r.PostForm.Get("template_object"))
			mu.Unlock()
			fmt.Fprint(w, `{"result_code":0}`)
		default:
			w.WriteHeader(404)
		}
	}))
	defer kakao.Close()

	cfgPath, d := serveInProcess(t, fmt.Sprintf(`
[channels.kakao]
type = "kakao"
rest_api_key = "app-key"
link_url = "https://shop.example.com"
api_url = %q
auth_url = %q
health = { interval = "100ms", fall = 1, rise = 1 }
[contacts.owner]
route = ["kakao"]
kakao = "me"
`, kakao.URL, kakao.URL))
	addr := d.Addr()

	pl, _ := net.Listen("tcp", "127.0.0.1:0")
	port := pl.Addr().(*net.TCPAddr).Port
	pl.Close()
	var out syncBuffer
	var errOut syncBuffer
	code := make(chan int, 1)
	go func() {
		code <- run([]string{"kakao", "login", "-c", cfgPath, "--port", fmt.Sprint(port)}, nil, &out, &errOut)
	}()
	re := regexp.MustCompile(`https?://\S+/oauth/authorize\S+`)
	deadline := time.Now().Add(10 * time.Second)
	var authURL string
	for authURL == "" {
		authURL = re.FindString(out.String())
		if time.Now().After(deadline) {
			t.Fatalf("no login URL printed: %q %q", out.String(), errOut.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !strings.Contains(authURL, "client_id=app-key") || !strings.Contains(authURL, url.QueryEscape(fmt.Sprintf("http://localhost:%d/kakao/callback", port))) {
		t.Fatalf("authorize URL %s", authURL)
	}
	// The browser: follow the authorize URL and its redirect back.
	resp, err := http.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("relay kakao login exited %d: %s", c, errOut.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("relay kakao login did not finish")
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		if st, ok := d.Health().Get("kakao"); ok && st.State == "up" {
			break
		}
		if time.Now().After(deadline) {
			st, _ := d.Health().Get("kakao")
			t.Fatalf("kakao after login: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Setenv("RELAY_ADDR", addr)
	if c := run([]string{"send", "-c", cfgPath, "--to", "owner", "--wait", "로그인 완료"}, nil, &out, &errOut); c != 0 {
		t.Fatalf("send after login exited %d: %s", c, errOut.String())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sent) != 1 || !strings.Contains(sent[0], "로그인 완료") {
		t.Fatalf("kakao memo sends: %q", sent)
	}
}
