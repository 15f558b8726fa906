package line

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/relay-project/relay/adapters/adaptertest"
	"github.com/relay-project/relay/relay"
)

const (
	testToken  = "test-channel-access-token-do-not-log"
	testSecret = "testsecret"
	testUser   = "U4af4980629a1b2c3d4e5f60718293a4b"
)

// fakeLINE is the Messaging API as documented at
// developers.line.biz/en/reference/messaging-api/: push
// (POST /v2/bot/message/push, JSON, Bearer token, X-Line-Retry-Key honoured
// for 24 hours with 409 and X-Line-Accepted-Request-Id on a repeat, per
// /en/docs/messaging-api/retrying-api-request/), bot info
// (GET /v2/bot/info) and the message quota calls, with the documented
// error envelope {"message", "details"}.
type fakeLINE struct {
	srv  *httptest.Server
	mode adaptertest.Mode
	stop chan struct{} // closed at cleanup: releases hanging handlers

	mu        sync.Mutex
	pushes    []fakePush
	accepted  map[string]fakeAccepted // retry key → the accepted request
	delivered int
	nextID    int64
	// script, when set, answers pushes instead of the normal behaviour.
	script func(w http.ResponseWriter)
	// stallAccepted makes the next n accepted pushes get no answer (the
	// push was taken, the response lost), until the client gives up.
	stallAccepted int
	// monthlyLimit makes pushes fail with the monthly-quota 429.
	monthlyLimit bool
	quotaType    string
	quotaValue   int64
	quotaUsed    int64
}

type fakePush struct {
	To, Text, RetryKey string
	RetryKeySet        bool
}

type fakeAccepted struct {
	requestID string
	ids       []string
}

func newFakeLINE(t *testing.T, mode adaptertest.Mode) *fakeLINE {
	t.Helper()
	f := &fakeLINE{mode: mode, stop: make(chan struct{}), accepted: map[string]fakeAccepted{},
		nextID: 461230966842064897, quotaType: "limited", quotaValue: 200}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	if mode == adaptertest.Refusing {
		f.srv.Close()
		return f
	}
	// Cleanups run last-in first-out: release hanging handlers, then close.
	t.Cleanup(f.srv.Close)
	t.Cleanup(func() { close(f.stop) })
	return f
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Line-Request-Id", fmt.Sprintf("req-%d", time.Now().UnixNano()))
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (f *fakeLINE) serve(w http.ResponseWriter, r *http.Request) {
	switch f.mode {
	case adaptertest.Hanging:
		select {
		case <-r.Context().Done():
		case <-f.stop:
		}
		return
	case adaptertest.Failing:
		writeJSON(w, http.StatusInternalServerError, map[string]string{"message": "Internal server error"})
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+testToken {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"message": "Authentication failed due to the following reason: invalid token. Confirm that the access token in the authorization header is valid."})
		return
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v2/bot/message/push":
		f.push(w, r)
	case r.Method == http.MethodGet && r.URL.Path == "/v2/bot/info":
		writeJSON(w, http.StatusOK, map[string]string{"userId": "Ub9952f8e5b4d6f7a8c9d0e1f2a3b4c5d", "basicId": "@216ru", "displayName": "Example shop", "chatMode": "chat", "markAsReadMode": "manual"})
	case r.Method == http.MethodGet && r.URL.Path == "/v2/bot/message/quota":
		f.mu.Lock()
		writeJSON(w, http.StatusOK, map[string]any{"type": f.quotaType, "value": f.quotaValue})
		f.mu.Unlock()
	case r.Method == http.MethodGet && r.URL.Path == "/v2/bot/message/quota/consumption":
		f.mu.Lock()
		writeJSON(w, http.StatusOK, map[string]any{"totalUsage": f.quotaUsed})
		f.mu.Unlock()
	default:
		writeJSON(w, http.StatusNotFound, map[string]string{"message": "Not found"})
	}
}

func (f *fakeLINE) push(w http.ResponseWriter, r *http.Request) {
	var req struct {
		To       string `json:"to"`
		Messages []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"messages"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": "The request body could not be parsed as JSON (line: 1, column: 1)"})
		return
	}
	p := fakePush{To: req.To}
	if len(req.Messages) == 1 && req.Messages[0].Type == "text" {
		p.Text = req.Messages[0].Text
	}
	_, p.RetryKeySet = r.Header["X-Line-Retry-Key"]
	p.RetryKey = r.Header.Get("X-Line-Retry-Key")

	f.mu.Lock()
	f.pushes = append(f.pushes, p)
	if f.script != nil {
		script := f.script
		f.mu.Unlock()
		script(w)
		return
	}
	if f.monthlyLimit {
		f.mu.Unlock()
		writeJSON(w, http.StatusTooManyRequests, map[string]string{"message": "You have reached your monthly limit."})
		return
	}
	if prev, ok := f.accepted[p.RetryKey]; ok && p.RetryKey != "" {
		f.mu.Unlock()
		w.Header().Set("X-Line-Accepted-Request-Id", prev.requestID)
		sent := []map[string]string{}
		for _, id := range prev.ids {
			sent = append(sent, map[string]string{"id": id, "quoteToken": "q"})
		}
		writeJSON(w, http.StatusConflict, map[string]any{"message": "The retry key is already accepted", "sentMessages": sent})
		return
	}
	if len(req.Messages) == 0 || p.Text == "" {
		f.mu.Unlock()
		writeJSON(w, http.StatusBadRequest, map[string]any{"message": "The request body has 1 error(s)",
			"details": []map[string]string{{"message": "May not be empty", "property": "messages[0].text"}}})
		return
	}
	f.nextID++
	id := fmt.Sprint(f.nextID)
	reqID := fmt.Sprintf("accepted-%s", id)
	f.accepted[p.RetryKey] = fakeAccepted{requestID: reqID, ids: []string{id}}
	f.delivered++
	stall := f.stallAccepted > 0
	if stall {
		f.stallAccepted--
	}
	f.mu.Unlock()
	if stall {
		select {
		case <-r.Context().Done():
		case <-f.stop:
		}
		return
	}
	w.Header().Set("X-Line-Request-Id", reqID)
	writeJSON(w, http.StatusOK, map[string]any{"sentMessages": []map[string]string{{"id": id, "quoteToken": "q"}}})
}

func (f *fakeLINE) Pushes() []fakePush {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakePush(nil), f.pushes...)
}

func (f *fakeLINE) Delivered() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.delivered
}

// recorder is the Env's sinks, recording what the adapter reports.
type recorder struct {
	mu        sync.Mutex
	inbound   []relay.InboundMessage
	acceptErr error
	signals   []relay.HealthSignal
}

func (r *recorder) Accept(_ context.Context, m relay.InboundMessage) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.acceptErr != nil {
		return r.acceptErr
	}
	r.inbound = append(r.inbound, m)
	return nil
}

func (r *recorder) Receipt(context.Context, string, string, relay.ReceiptKind, time.Time) error {
	return nil
}

func (r *recorder) Signal(s relay.HealthSignal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.signals = append(r.signals, s)
}

func (r *recorder) Inbound() []relay.InboundMessage {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]relay.InboundMessage(nil), r.inbound...)
}

func (r *recorder) Signals() []relay.HealthSignal {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]relay.HealthSignal(nil), r.signals...)
}

// testClock is an injected clock tests move by hand.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// newTestAdapter builds an adapter against f with a recording Env.
func newTestAdapter(t *testing.T, f *fakeLINE, clock *testClock) (*Adapter, *recorder) {
	t.Helper()
	rec := &recorder{}
	env := relay.Env{Name: "line", Inbound: rec, Receipts: rec, Signal: rec.Signal}
	if clock != nil {
		env.Now = clock.Now
	}
	a, err := New(&Config{ChannelAccessToken: testToken, ChannelSecret: testSecret, APIURL: f.srv.URL}, env)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { a.Close() })
	return a.(*Adapter), rec
}
