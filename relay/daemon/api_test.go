package daemon_test

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

const tokensCfg = `
[[server.tokens]]
name = "website"
secret = "web-secret"
send_to = ["owner"]
[[server.tokens]]
name = "ops"
secret = "ops-secret"
scopes = ["admin"]
[[server.tokens]]
name = "reader"
secret = "read-secret"
scopes = ["read"]
`

// TestBadInputIsRefusedClearly: each malformed request gets its status
// and stable code, and nothing is stored.
func TestBadInputIsRefusedClearly(t *testing.T) {
	sinkA, sinkB := newSink(t), newSink(t)
	n := startDaemon(t, "", twoHooks(sinkA.srv.URL, sinkB.srv.URL, ""))
	cases := []struct {
		name, ctype, body string
		status            int
		code              string
	}{
		{"malformed json", "application/json", `{"to": "owner", "text": `, 400, "invalid_json"},
		{"unknown field", "application/json", `{"to": "owner", "txt": "x"}`, 400, "invalid_json"},
		{"no text", "application/json", `{"to": "owner"}`, 400, "invalid_request"},
		{"no recipient", "application/json", `{"text": "hi"}`, 400, "invalid_request"},
		{"unknown contact", "application/json", `{"to": ["owner", "nobody"], "text": "hi"}`, 422, "unknown_contact"},
		{"unknown group", "application/json", `{"to": "group:nope", "text": "hi"}`, 422, "unknown_contact"},
		{"unknown channel in route", "application/json", `{"to": "owner", "text": "hi", "route": ["pigeon"]}`, 422, "unknown_channel"},
		{"bad ttl", "application/json", `{"to": "owner", "text": "hi", "ttl": "soon"}`, 400, "invalid_request"},
		{"media type", "text/plain", `hi`, 415, "unsupported_media_type"},
		{"too large", "application/json", `{"to": "owner", "text": "` + strings.Repeat("x", 1<<20) + `"}`, 413, "too_large"},
	}
	for _, c := range cases {
		r := n.do("POST", "/v1/messages", c.ctype, []byte(c.body))
		if r.status != c.status || r.code() != c.code {
			t.Errorf("%s: %d %s, want %d %s (%s)", c.name, r.status, r.code(), c.status, c.code, r.body)
		}
	}
	if r := n.do("GET", "/v1/messages/01NOPE", "", nil); r.status != 404 || r.code() != "not_found" {
		t.Errorf("unknown message: %d %s", r.status, r.body)
	}
	r := n.do("GET", "/v1/messages", "", nil)
	if !strings.Contains(string(r.body), `"messages":[]`) {
		t.Errorf("refused requests stored something: %s", r.body)
	}
}

// TestFormSubmission: plain web forms may post to/text url-encoded.
func TestFormSubmission(t *testing.T) {
	sinkA, sinkB := newSink(t), newSink(t)
	n := startDaemon(t, "", twoHooks(sinkA.srv.URL, sinkB.srv.URL, ""))
	r := n.do("POST", "/v1/messages", "application/x-www-form-urlencoded", []byte("to=owner&text=%EC%98%88%EC%95%BD+%EB%AC%B8%EC%9D%98"))
	if r.status != 202 {
		t.Fatalf("form: %d %s", r.status, r.body)
	}
	var v struct{ ID string }
	r.json(t, &v)
	n.waitStatus(v.ID, "delivered", 10*time.Second)
	if got := sinkA.texts(); len(got) != 1 || got[0] != "예약 문의" {
		t.Fatalf("received %v", got)
	}
}

// TestIdempotencyKey: same key and body → the same message (200); same
// key, other body → 422; a different client's same key is its own.
func TestIdempotencyKey(t *testing.T) {
	sinkA, sinkB := newSink(t), newSink(t)
	n := startDaemon(t, "", twoHooks(sinkA.srv.URL, sinkB.srv.URL, tokensCfg))
	body := `{"to": "owner", "text": "once"}`
	web := []string{"Authorization", "Bearer web-secret", "Idempotency-Key", "k-1"}
	first := n.send(body, web...)
	if first.status != 202 {
		t.Fatalf("first: %d %s", first.status, first.body)
	}
	again := n.send(body, web...)
	if again.status != 200 {
		t.Fatalf("repeat: %d %s", again.status, again.body)
	}
	var a, b struct{ ID string }
	first.json(t, &a)
	again.json(t, &b)
	if a.ID != b.ID {
		t.Fatalf("repeat made a new message: %s vs %s", a.ID, b.ID)
	}
	if r := n.send(`{"to": "owner", "text": "other"}`, web...); r.status != 422 || r.code() != "idempotency_conflict" {
		t.Fatalf("other body: %d %s", r.status, r.body)
	}
	ops := []string{"Authorization", "Bearer ops-secret", "Idempotency-Key", "k-1"}
	if r := n.send(body, ops...); r.status != 202 {
		t.Fatalf("another client's key: %d %s", r.status, r.body)
	}
	n.token = "ops-secret"
	n.waitStatus(a.ID, "delivered", 10*time.Second)
	time.Sleep(100 * time.Millisecond)
	count := 0
	for _, txt := range sinkA.texts() {
		if txt == "once" {
			count++
		}
	}
	if count != 2 { // one for website, one for ops
		t.Fatalf("sink got %d copies of \"once\", want 2", count)
	}
}

// TestTokensAndScopes: bearer tokens with scopes and send_to.
func TestTokensAndScopes(t *testing.T) {
	sinkA, sinkB := newSink(t), newSink(t)
	n := startDaemon(t, "", twoHooks(sinkA.srv.URL, sinkB.srv.URL, tokensCfg))
	body := `{"to": "owner", "text": "hi"}`
	auth := func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }
	if r := n.send(body); r.status != 401 || r.code() != "unauthorized" {
		t.Errorf("no token: %d %s", r.status, r.body)
	}
	if r := n.send(body, auth("wrong")...); r.status != 401 {
		t.Errorf("wrong token: %d", r.status)
	}
	if r := n.send(`{"to": "admin", "text": "hi"}`, auth("web-secret")...); r.status != 403 || r.code() != "forbidden" {
		t.Errorf("send_to violated: %d %s", r.status, r.body)
	}
	r := n.send(body, auth("web-secret")...)
	if r.status != 202 {
		t.Fatalf("website send: %d %s", r.status, r.body)
	}
	var v struct{ ID string }
	r.json(t, &v)
	// A send token reads its own message but not listings or others'.
	if r := n.do("GET", "/v1/messages/"+v.ID, "", nil, auth("web-secret")...); r.status != 200 {
		t.Errorf("own message: %d", r.status)
	}
	other := n.send(body, auth("ops-secret")...)
	var o struct{ ID string }
	other.json(t, &o)
	if r := n.do("GET", "/v1/messages/"+o.ID, "", nil, auth("web-secret")...); r.status != 404 {
		t.Errorf("another client's message visible to a send token: %d", r.status)
	}
	if r := n.do("GET", "/v1/channels", "", nil, auth("web-secret")...); r.status != 403 {
		t.Errorf("channels with a send token: %d", r.status)
	}
	if r := n.do("GET", "/metrics", "", nil, auth("read-secret")...); r.status != 200 || !strings.Contains(string(r.body), "relay_messages_accepted_total") {
		t.Errorf("metrics with read token: %d", r.status)
	}
	if r := n.send(body, auth("read-secret")...); r.status != 403 {
		t.Errorf("send with a read-only token: %d", r.status)
	}
	if r := n.do("POST", "/v1/messages/"+v.ID+"/cancel", "", nil, auth("read-secret")...); r.status != 403 {
		t.Errorf("cancel with a read token: %d", r.status)
	}
	if r := n.do("GET", "/healthz", "", nil); r.status != 200 {
		t.Errorf("healthz needs no token: %d", r.status)
	}
}

// TestCancelAndRetry: admin cancels a waiting message; retry brings a
// failed one back.
func TestCancelAndRetry(t *testing.T) {
	sinkA, sinkB := newSink(t), newSink(t)
	sinkA.set("500")
	sinkB.set("500")
	n := startDaemon(t, "", twoHooks(sinkA.srv.URL, sinkB.srv.URL, ""))
	id := n.accept(`{"to": "owner", "text": "cancel me"}`)
	if r := n.do("POST", "/v1/messages/"+id+"/cancel", "", nil); r.status != 200 {
		t.Fatalf("cancel: %d %s", r.status, r.body)
	}
	n.waitStatus(id, "cancelled", 5*time.Second)

	sinkA.set("400")
	sinkB.set("400")
	id = n.accept(`{"to": "owner", "text": "retry me"}`)
	n.waitStatus(id, "failed", 10*time.Second)
	sinkA.set("ok")
	if r := n.do("POST", "/v1/messages/"+id+"/retry", "", nil); r.status != 200 {
		t.Fatalf("retry: %d %s", r.status, r.body)
	}
	m := n.waitStatus(id, "delivered", 10*time.Second)
	if m.Deliveries[0].Channel != "primary" {
		t.Fatalf("retried delivery went to %s", m.Deliveries[0].Channel)
	}
	if r := n.do("POST", "/v1/messages/nope/retry", "", nil); r.status != 404 {
		t.Fatalf("retry unknown: %d", r.status)
	}
}

// TestGroupFanOutOnce: a group and a contact named twice get one delivery
// each.
func TestGroupFanOutOnce(t *testing.T) {
	sinkA, sinkB := newSink(t), newSink(t)
	n := startDaemon(t, "", twoHooks(sinkA.srv.URL, sinkB.srv.URL, `
[contacts.mom]
route = ["backup"]
backup = "mom-b"
[groups]
family = ["mom", "owner"]
`))
	id := n.accept(`{"to": ["group:family", "owner", "mom"], "text": "dinner at 7"}`)
	m := n.waitStatus(id, "delivered", 10*time.Second)
	if len(m.Deliveries) != 2 {
		t.Fatalf("%d deliveries, want 2", len(m.Deliveries))
	}
	var to []string
	for _, p := range append(sinkA.got(), sinkB.got()...) {
		to = append(to, fmt.Sprint(p["to"]))
	}
	if strings.Join(to, ",") != "owner-p,mom-b" {
		t.Fatalf("addresses %v", to)
	}
}
