package kakao

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relay-project/relay/adapters/adaptertest"
	"github.com/relay-project/relay/relay"
)

const (
	testKey     = "test-rest-api-key"
	testSecret  = "test-client-secret"
	testLinkURL = "https://shop.example.com/inquiries"
)

// canned is one scripted kapi answer.
type canned struct {
	status int
	body   string
}

// sentRequest is what the fake recorded of one kapi send.
type sentRequest struct {
	path          string
	contentType   string
	template      map[string]any
	receiverUUIDs []string
}

// fakeKakao plays kapi and kauth on two loopback servers, following the
// documented wire format: form-encoded POST bodies
// (application/x-www-form-urlencoded;charset=utf-8), Bearer access tokens,
// kapi errors as {"msg","code"} with 401 + WWW-Authenticate for -401
// (https://developers.kakao.com/docs/latest/ko/rest-api/reference), and
// kauth errors as {"error","error_description","error_code"}
// (https://devtalk.kakao.com/t/koe322-expired-or-invalid-refresh-token/126899).
type fakeKakao struct {
	t    *testing.T
	api  *httptest.Server
	auth *httptest.Server
	mode adaptertest.Mode
	hang chan struct{}

	mu          sync.Mutex
	access      map[string]bool // valid access tokens
	refresh     map[string]bool // valid refresh tokens
	codes       map[string]bool // unused authorization codes
	redirectURI string
	rotate      bool // refresh answers carry a new refresh token
	tokenCalls  int
	tokenForms  []map[string]string
	issued      int
	sendCalls   int
	sends       []sentRequest // accepted sends
	probes      int
	script      []canned // answers for the next kapi sends, after the token check
	partial     map[string]canned
}

func newFake(t *testing.T, mode adaptertest.Mode) *fakeKakao {
	f := &fakeKakao{
		t: t, mode: mode, hang: make(chan struct{}),
		access: map[string]bool{}, refresh: map[string]bool{}, codes: map[string]bool{},
		partial: map[string]canned{},
	}
	f.api = httptest.NewServer(http.HandlerFunc(f.serveAPI))
	f.auth = httptest.NewServer(http.HandlerFunc(f.serveAuth))
	t.Cleanup(func() {
		close(f.hang)
		f.api.Close()
		f.auth.Close()
	})
	if mode == adaptertest.Refusing {
		f.api.Close()
		f.auth.Close()
	}
	return f
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	fmt.Fprint(w, body)
}

func (f *fakeKakao) misbehave(w http.ResponseWriter, r *http.Request) bool {
	switch f.mode {
	case adaptertest.Failing:
		writeJSON(w, http.StatusServiceUnavailable, `{"msg":"service under maintenance","code":-9798}`)
		return true
	case adaptertest.Hanging:
		select {
		case <-r.Context().Done():
		case <-f.hang:
		}
		return true
	}
	return false
}

func (f *fakeKakao) formOK(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodPost || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		writeJSON(w, http.StatusBadRequest, `{"msg":"not a form post","code":-2}`)
		return false
	}
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, `{"msg":"bad form","code":-2}`)
		return false
	}
	return true
}

func (f *fakeKakao) serveAuth(w http.ResponseWriter, r *http.Request) {
	if f.misbehave(w, r) {
		return
	}
	if r.URL.Path != "/oauth/token" || !f.formOK(w, r) {
		http.NotFound(w, r)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokenCalls++
	form := map[string]string{}
	for k := range r.PostForm {
		form[k] = r.PostForm.Get(k)
	}
	f.tokenForms = append(f.tokenForms, form)
	if form["client_id"] != testKey {
		writeJSON(w, http.StatusUnauthorized, `{"error":"invalid_client","error_description":"Bad client credentials","error_code":"KOE010"}`)
		return
	}
	f.issued++
	at := fmt.Sprintf("SECRET-at-%d", f.issued)
	f.access[at] = true
	switch form["grant_type"] {
	case "refresh_token":
		if !f.refresh[form["refresh_token"]] {
			writeJSON(w, http.StatusBadRequest, `{"error":"invalid_grant","error_description":"expired_or_invalid_refresh_token","error_code":"KOE322"}`)
			return
		}
		if f.rotate {
			delete(f.refresh, form["refresh_token"])
			rt := fmt.Sprintf("SECRET-rt-%d", f.issued)
			f.refresh[rt] = true
			writeJSON(w, http.StatusOK, fmt.Sprintf(`{"access_token":%q,"token_type":"bearer","refresh_token":%q,"expires_in":21599,"refresh_token_expires_in":5183999}`, at, rt))
			return
		}
		writeJSON(w, http.StatusOK, fmt.Sprintf(`{"access_token":%q,"token_type":"bearer","expires_in":21599}`, at))
	case "authorization_code":
		if !f.codes[form["code"]] || form["redirect_uri"] != f.redirectURI {
			// Kakao echoes the code in the description.
			writeJSON(w, http.StatusBadRequest, fmt.Sprintf(`{"error":"invalid_grant","error_description":"authorization code not found for code=%s","error_code":"KOE320"}`, form["code"]))
			return
		}
		delete(f.codes, form["code"])
		rt := fmt.Sprintf("SECRET-rt-%d", f.issued)
		f.refresh[rt] = true
		writeJSON(w, http.StatusOK, fmt.Sprintf(`{"access_token":%q,"token_type":"bearer","refresh_token":%q,"expires_in":21599,"scope":"talk_message","refresh_token_expires_in":5183999}`, at, rt))
	default:
		writeJSON(w, http.StatusBadRequest, `{"error":"unsupported_grant_type","error_code":"KOE201"}`)
	}
}

func (f *fakeKakao) serveAPI(w http.ResponseWriter, r *http.Request) {
	if f.misbehave(w, r) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if r.URL.Path == pathSendToMe || r.URL.Path == pathSendFriends {
		f.sendCalls++
	}
	if !f.access[token] {
		w.Header().Set("WWW-Authenticate", "Bearer error=invalid_token")
		writeJSON(w, http.StatusUnauthorized, `{"msg":"this access token does not exist","code":-401}`)
		return
	}
	switch r.URL.Path {
	case pathTokenInfo:
		f.probes++
		writeJSON(w, http.StatusOK, `{"id":1234567890,"expires_in":21000,"app_id":123456}`)
	case pathSendToMe, pathSendFriends:
		if !f.formOK(w, r) {
			return
		}
		if len(f.script) > 0 {
			c := f.script[0]
			f.script = f.script[1:]
			writeJSON(w, c.status, c.body)
			return
		}
		req := sentRequest{path: r.URL.Path, contentType: r.Header.Get("Content-Type")}
		if err := json.Unmarshal([]byte(r.PostForm.Get("template_object")), &req.template); err != nil {
			writeJSON(w, http.StatusBadRequest, `{"msg":"template_object is not JSON","code":-2}`)
			return
		}
		if req.template["object_type"] != "text" || req.template["text"] == "" || req.template["link"] == nil {
			writeJSON(w, http.StatusBadRequest, `{"msg":"bad text template","code":-2}`)
			return
		}
		if r.URL.Path == pathSendFriends {
			if err := json.Unmarshal([]byte(r.PostForm.Get("receiver_uuids")), &req.receiverUUIDs); err != nil || len(req.receiverUUIDs) == 0 {
				writeJSON(w, http.StatusBadRequest, `{"msg":"The Parameter [receiver_uuids] cannot be null.","code":-2}`)
				return
			}
			if c, ok := f.partial[req.receiverUUIDs[0]]; ok {
				writeJSON(w, c.status, c.body)
				return
			}
			f.sends = append(f.sends, req)
			b, _ := json.Marshal(map[string]any{"successful_receiver_uuids": req.receiverUUIDs})
			writeJSON(w, http.StatusOK, string(b))
			return
		}
		f.sends = append(f.sends, req)
		writeJSON(w, http.StatusOK, `{"result_code":0}`)
	default:
		writeJSON(w, http.StatusNotFound, `{"msg":"not found","code":-2}`)
	}
}

func (f *fakeKakao) count(field *int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return *field
}

func (f *fakeKakao) delivered() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sends)
}

// memState is an in-memory relay.StateStore that counts Puts.
type memState struct {
	mu   sync.Mutex
	m    map[string][]byte
	puts int
}

func newMemState() *memState { return &memState{m: map[string][]byte{}} }

func (s *memState) Get(_ context.Context, key string) ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[key]
	return append([]byte(nil), v...), ok, nil
}

func (s *memState) Put(_ context.Context, key string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[key] = append([]byte(nil), value...)
	s.puts++
	return nil
}

func (s *memState) record(t *testing.T) (tokenRecord, int) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var rec tokenRecord
	if b, ok := s.m[StateKey]; ok {
		if err := json.Unmarshal(b, &rec); err != nil {
			t.Fatalf("stored tokens: %v", err)
		}
	}
	return rec, s.puts
}

// signals records health signals.
type signals struct {
	mu  sync.Mutex
	got []relay.HealthSignal
}

func (s *signals) add(h relay.HealthSignal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, h)
}

func (s *signals) all() []relay.HealthSignal {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]relay.HealthSignal(nil), s.got...)
}

// clock is a settable clock for env.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// rig is one adapter wired to a fake and to env fakes.
type rig struct {
	a     *Adapter
	fake  *fakeKakao
	state *memState
	sig   *signals
	clock *clock
	logs  *lockedWriter
}

type rigOption func(*Config, *fakeKakao, *memState, *clock)

// withSeededTokens stores a valid token record, as after a login.
func withSeededTokens(accessLeft time.Duration) rigOption {
	return func(_ *Config, f *fakeKakao, s *memState, c *clock) {
		f.access["SECRET-at-seed"] = true
		f.refresh["SECRET-rt-seed"] = true
		b, _ := json.Marshal(tokenRecord{
			AccessToken: "SECRET-at-seed", AccessExpiresAt: c.now.Add(accessLeft),
			RefreshToken: "SECRET-rt-seed", IssuedAt: c.now.Add(-time.Hour),
		})
		s.m[StateKey] = b
	}
}

// lockedWriter lets the race detector accept a log buffer shared by goroutines.
type lockedWriter struct {
	mu sync.Mutex
	b  *strings.Builder
}

func (w *lockedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func slogDebug(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func newRig(t *testing.T, mode adaptertest.Mode, opts ...rigOption) *rig {
	t.Helper()
	f := newFake(t, mode)
	st := newMemState()
	clk := &clock{now: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)}
	cfg := &Config{RestAPIKey: testKey, ClientSecret: testSecret, LinkURL: testLinkURL, APIURL: f.api.URL, AuthURL: f.auth.URL}
	for _, o := range opts {
		o(cfg, f, st, clk)
	}
	sig := &signals{}
	logs := &strings.Builder{}
	lw := &lockedWriter{b: logs}
	env := relay.Env{
		Name:   "kakao",
		Logger: slogDebug(lw),
		State:  st,
		Signal: sig.add,
		Now:    clk.Now,
	}
	ad, err := New(cfg, env)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	a := ad.(*Adapter)
	t.Cleanup(func() { a.Close() })
	return &rig{a: a, fake: f, state: st, sig: sig, clock: clk, logs: lw}
}
