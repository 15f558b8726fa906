package telegram

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relay-project/relay/adapters/adaptertest"
	"github.com/relay-project/relay/relay"
)

const testToken = "123456:AAE-secret_TOKEN_value"

// reply is one scripted HTTP answer.
type reply struct {
	status int
	body   string
	ctype  string // default application/json
}

// fakeBot is a Bot API server on loopback. It follows the wire format of
// core.telegram.org/bots/api ("Making requests"): POST /bot<token>/<method>
// with form-encoded (as go-telegram-bot-api sends), JSON or query
// parameters; answers {"ok":true,"result":...} or {"ok":false,
// "error_code":N,"description":"...","parameters":{...}} with the HTTP
// status equal to error_code, and a Retry-After header on 429
// (tdlib/telegram-bot-api Query.cpp, HttpConnection.cpp).
type fakeBot struct {
	t    *testing.T
	srv  *httptest.Server
	mode adaptertest.Mode

	mu       sync.Mutex
	script   map[string][]reply      // method -> queued answers, used first
	always   map[string]reply        // method -> answer for every call
	sends    []callParams            // accepted sendMessage calls
	calls    map[string][]callParams // every call's params by method
	updates  []string                // JSON updates served by getUpdates
	nextMsg  int
	changed  chan struct{} // closed and replaced on every call or new update
	migrates map[string]int64
}

// callParams is a call's parameters.
type callParams map[string]string

func newFakeBot(t *testing.T, mode adaptertest.Mode) *fakeBot {
	f := &fakeBot{
		t: t, mode: mode,
		script: map[string][]reply{}, always: map[string]reply{},
		calls: map[string][]callParams{}, nextMsg: 41, changed: make(chan struct{}),
		migrates: map[string]int64{},
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	if mode == adaptertest.Refusing {
		f.srv.Close()
	} else {
		t.Cleanup(f.srv.Close)
	}
	return f
}

// newFakeBotOn serves on addr (a port that was refused before).
func newFakeBotOn(t *testing.T, addr string) *fakeBot {
	f := &fakeBot{
		t: t, mode: adaptertest.Up,
		script: map[string][]reply{}, always: map[string]reply{},
		calls: map[string][]callParams{}, nextMsg: 41, changed: make(chan struct{}),
		migrates: map[string]int64{},
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on %s again: %v", addr, err)
	}
	f.srv = &httptest.Server{Listener: l, Config: &http.Server{Handler: http.HandlerFunc(f.serve)}}
	f.srv.Start()
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeBot) url() string { return f.srv.URL }

func (f *fakeBot) notifyLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// waitFor blocks until cond (called under the lock) holds.
func (f *fakeBot) waitFor(what string, cond func() bool) {
	f.t.Helper()
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	for {
		f.mu.Lock()
		ok, ch := cond(), f.changed
		f.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			f.t.Fatalf("fake Bot API: timed out waiting for %s", what)
		}
	}
}

func (f *fakeBot) push(method string, r reply) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.script[method] = append(f.script[method], r)
}

func (f *fakeBot) setAlways(method string, r reply) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.always[method] = r
}

func (f *fakeBot) addUpdate(js string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.updates = append(f.updates, js)
	f.notifyLocked()
}

func (f *fakeBot) delivered() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sends)
}

func (f *fakeBot) callsOf(method string) []callParams {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]callParams(nil), f.calls[method]...)
}

func apiError(code int, desc string, params string) reply {
	body := fmt.Sprintf(`{"ok":false,"error_code":%d,"description":%q`, code, desc)
	if params != "" {
		body += `,"parameters":` + params
	}
	return reply{status: code, body: body + "}"}
}

func (f *fakeBot) setMode(m adaptertest.Mode) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mode = m
}

func (f *fakeBot) migrate(from string, to int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.migrates[from] = to
}

func (f *fakeBot) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	mode := f.mode
	f.mu.Unlock()
	switch mode {
	case adaptertest.Hanging:
		// Read the body first: the server only notices the client going
		// away (and cancels r.Context) once the body is consumed.
		_, _ = io.Copy(io.Discard, r.Body)
		<-r.Context().Done()
		return
	case adaptertest.Failing:
		write(w, apiError(500, "Internal Server Error: restart", ""))
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/bot")
	token, method, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 || r.Method != http.MethodPost && r.Method != http.MethodGet {
		write(w, apiError(404, "Not Found", ""))
		return
	}
	if token != testToken {
		write(w, apiError(401, "Unauthorized", ""))
		return
	}
	params := callParams{}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		var m map[string]any
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			write(w, apiError(400, "Bad Request: can't parse JSON", ""))
			return
		}
		for k, v := range m {
			params[k] = fmt.Sprint(v)
		}
	} else {
		if err := r.ParseForm(); err != nil {
			write(w, apiError(400, "Bad Request: can't parse request", ""))
			return
		}
		for k := range r.Form {
			params[k] = r.Form.Get(k)
		}
	}
	method = strings.ToLower(method) // method names are case-insensitive

	f.mu.Lock()
	f.calls[method] = append(f.calls[method], params)
	f.notifyLocked()
	var rep *reply
	if q := f.script[method]; len(q) > 0 {
		rep, f.script[method] = &q[0], q[1:]
	} else if a, ok := f.always[method]; ok {
		rep = &a
	}
	f.mu.Unlock()
	if rep != nil {
		write(w, *rep)
		return
	}

	switch method {
	case "getme":
		write(w, reply{status: 200, body: `{"ok":true,"result":{"id":123456,"is_bot":true,"first_name":"Fake","username":"fake_bot","can_join_groups":true,"can_read_all_group_messages":false,"supports_inline_queries":false}}`})
	case "sendmessage":
		f.sendMessage(w, params)
	case "getupdates":
		f.getUpdates(w, r, params)
	case "setwebhook":
		write(w, reply{status: 200, body: `{"ok":true,"result":true,"description":"Webhook was set"}`})
	default:
		write(w, apiError(404, "Not Found: method not found", ""))
	}
}

func (f *fakeBot) sendMessage(w http.ResponseWriter, p callParams) {
	chat, text := p["chat_id"], p["text"]
	if text == "" {
		write(w, apiError(400, "Bad Request: message text is empty", ""))
		return
	}
	f.mu.Lock()
	if to, ok := f.migrates[chat]; ok {
		f.mu.Unlock()
		write(w, apiError(400, "Bad Request: group chat was upgraded to a supergroup chat",
			fmt.Sprintf(`{"migrate_to_chat_id":%d}`, to)))
		return
	}
	id := chat
	if strings.HasPrefix(chat, "@") {
		id = "-1001000000001"
	}
	f.nextMsg++
	n := f.nextMsg
	f.sends = append(f.sends, p)
	f.notifyLocked()
	f.mu.Unlock()
	chatType := "private"
	if strings.HasPrefix(id, "-") {
		chatType = "supergroup"
	}
	write(w, reply{status: 200, body: fmt.Sprintf(
		`{"ok":true,"result":{"message_id":%d,"chat":{"id":%s,"type":%q},"date":1700000000,"text":%q}}`,
		n, id, chatType, text)})
}

// getUpdates answers the updates with update_id >= offset, holding the
// call up to its timeout while there are none (a long poll).
func (f *fakeBot) getUpdates(w http.ResponseWriter, r *http.Request, p callParams) {
	offset, _ := strconv.Atoi(p["offset"])
	timeout, _ := strconv.Atoi(p["timeout"])
	hold := time.NewTimer(time.Duration(timeout) * time.Second)
	defer hold.Stop()
	for {
		f.mu.Lock()
		var out []string
		for _, u := range f.updates {
			var head struct {
				UpdateID int `json:"update_id"`
			}
			_ = json.Unmarshal([]byte(u), &head)
			if head.UpdateID >= offset {
				out = append(out, u)
			}
		}
		ch := f.changed
		f.mu.Unlock()
		if len(out) > 0 {
			write(w, reply{status: 200, body: `{"ok":true,"result":[` + strings.Join(out, ",") + `]}`})
			return
		}
		select {
		case <-ch:
		case <-hold.C:
			write(w, reply{status: 200, body: `{"ok":true,"result":[]}`})
			return
		case <-r.Context().Done():
			return
		}
	}
}

func write(w http.ResponseWriter, r reply) {
	ct := r.ctype
	if ct == "" {
		ct = "application/json"
	}
	w.Header().Set("Content-Type", ct)
	if r.status == 429 {
		var env struct {
			Parameters struct {
				RetryAfter int `json:"retry_after"`
			} `json:"parameters"`
		}
		if json.Unmarshal([]byte(r.body), &env) == nil && env.Parameters.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(env.Parameters.RetryAfter))
		}
	}
	w.WriteHeader(r.status)
	_, _ = w.Write([]byte(r.body))
}

// memState is an in-memory relay.StateStore that records every Put in the
// shared event log.
type memState struct {
	mu   sync.Mutex
	vals map[string][]byte
	log  *eventLog
}

func (s *memState) Get(_ context.Context, key string) ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.vals[key]
	return v, ok, nil
}

func (s *memState) Put(_ context.Context, key string, value []byte) error {
	s.mu.Lock()
	if s.vals == nil {
		s.vals = map[string][]byte{}
	}
	s.vals[key] = append([]byte(nil), value...)
	s.mu.Unlock()
	s.log.add(fmt.Sprintf("put %s=%s", key, value))
	return nil
}

// eventLog orders what the sink and the state saw.
type eventLog struct {
	mu      sync.Mutex
	events  []string
	changed chan struct{}
}

func newEventLog() *eventLog { return &eventLog{changed: make(chan struct{})} }

func (l *eventLog) add(e string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *eventLog) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.events...)
}

// waitLen blocks until the log holds at least n events.
func (l *eventLog) waitLen(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		ev, ch := append([]string(nil), l.events...), l.changed
		l.mu.Unlock()
		if len(ev) >= n {
			return ev
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %d events; have %q", n, ev)
		}
	}
}

// recordingSink is a relay.InboundSink that records accepted messages; fail
// decides per message whether Accept fails.
type recordingSink struct {
	mu       sync.Mutex
	accepted []relay.InboundMessage
	fail     func(m relay.InboundMessage) error
	log      *eventLog
}

func (s *recordingSink) Accept(_ context.Context, m relay.InboundMessage) error {
	s.mu.Lock()
	fail := s.fail
	s.mu.Unlock()
	if fail != nil {
		if err := fail(m); err != nil {
			s.log.add("reject " + m.UpstreamID)
			return err
		}
	}
	s.mu.Lock()
	s.accepted = append(s.accepted, m)
	s.mu.Unlock()
	s.log.add("accept " + m.UpstreamID)
	return nil
}

func (s *recordingSink) messages() []relay.InboundMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]relay.InboundMessage(nil), s.accepted...)
}

type nopReceipts struct{}

func (nopReceipts) Receipt(context.Context, string, string, relay.ReceiptKind, time.Time) error {
	return nil
}

// lockedBuffer collects log output from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// testEnv is an Env with fakes, and what they record.
type testEnv struct {
	env     relay.Env
	state   *memState
	sink    *recordingSink
	events  *eventLog
	logs    *lockedBuffer
	mu      sync.Mutex
	signals []relay.HealthSignal
}

func newTestEnv(t *testing.T) *testEnv {
	te := &testEnv{events: newEventLog(), logs: &lockedBuffer{}}
	te.state = &memState{log: te.events}
	te.sink = &recordingSink{log: te.events}
	te.env = relay.Env{
		Name:     "tg",
		Logger:   slog.New(slog.NewTextHandler(te.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		State:    te.state,
		Inbound:  te.sink,
		Receipts: nopReceipts{},
		Signal: func(s relay.HealthSignal) {
			te.mu.Lock()
			te.signals = append(te.signals, s)
			te.mu.Unlock()
			te.events.add("signal")
		},
		Now: time.Now,
	}
	t.Cleanup(func() {
		if strings.Contains(te.logs.String(), testToken) || strings.Contains(te.logs.String(), "AAE-secret") {
			t.Errorf("the bot token appears in the logs:\n%s", te.logs.String())
		}
	})
	return te
}

func (te *testEnv) signalList() []relay.HealthSignal {
	te.mu.Lock()
	defer te.mu.Unlock()
	return append([]relay.HealthSignal(nil), te.signals...)
}

// newAdapter builds an adapter for the fake with fast backoff.
func newAdapter(t *testing.T, cfg Config, env relay.Env) *Adapter {
	t.Helper()
	if cfg.Token == "" {
		cfg.Token = testToken
	}
	ad, err := New(&cfg, env)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	a := ad.(*Adapter)
	a.backoffMin, a.backoffMax = time.Millisecond, 20*time.Millisecond
	t.Cleanup(func() { _ = a.Close() })
	return a
}
