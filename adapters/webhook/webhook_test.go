package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relay-project/relay/adapters/adaptertest"
	"github.com/relay-project/relay/relay"
)

func newAdapter(t *testing.T, cfg Config) relay.Adapter {
	t.Helper()
	a, err := New(&cfg, relay.Env{Name: "hook"})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestConformance(t *testing.T) {
	var delivered atomic.Int64
	adaptertest.Run(t, adaptertest.Harness{
		Address:   "owner-1",
		Delivered: func() int { return int(delivered.Load()) },
		New: func(t *testing.T, mode adaptertest.Mode) relay.Adapter {
			release := make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch mode {
				case adaptertest.Failing:
					http.Error(w, "down", http.StatusBadGateway)
					return
				case adaptertest.Hanging:
					select {
					case <-release:
					case <-r.Context().Done():
					}
					return
				}
				if r.Method == http.MethodPost {
					delivered.Add(1)
				}
			}))
			t.Cleanup(func() { close(release); srv.Close() })
			url := srv.URL
			if mode == adaptertest.Refusing {
				url = closedURL(t)
			}
			return newAdapter(t, Config{URL: url + "/hook", HealthURL: url + "/healthz"})
		},
	})
}

// closedURL returns the URL of a port nothing listens on.
func closedURL(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

// TestClassification checks SPEC's table for webhook answers: 2xx
// delivered, 408/429/5xx temporary or rate-limited, 401/403 auth, other 4xx
// and 3xx permanent (redirects are not followed).
func TestClassification(t *testing.T) {
	cases := []struct {
		status     int
		header     map[string]string
		want       relay.Kind
		retryAfter time.Duration
	}{
		{200, nil, 0, 0},
		{204, nil, 0, 0},
		{302, map[string]string{"Location": "/elsewhere"}, relay.KindPermanent, 0},
		{400, nil, relay.KindPermanent, 0},
		{401, nil, relay.KindAuth, 0},
		{403, nil, relay.KindAuth, 0},
		{404, nil, relay.KindPermanent, 0},
		{408, nil, relay.KindTemporary, 0},
		{429, map[string]string{"Retry-After": "7"}, relay.KindRateLimited, 7 * time.Second},
		{500, nil, relay.KindTemporary, 0},
		{503, nil, relay.KindTemporary, 0},
	}
	for _, c := range cases {
		var redirected atomic.Bool
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/elsewhere" {
				redirected.Store(true)
				return
			}
			for k, v := range c.header {
				w.Header().Set(k, v)
			}
			w.WriteHeader(c.status)
		}))
		a := newAdapter(t, Config{URL: srv.URL + "/hook"})
		_, err := a.Send(context.Background(), &relay.Outgoing{MessageID: "m", Address: "x", Text: "hi"})
		if got := relay.KindOf(err); got != c.want {
			t.Errorf("status %d: kind %v (%v), want %v", c.status, got, err, c.want)
		}
		if got := relay.RetryAfterOf(err); got != c.retryAfter {
			t.Errorf("status %d: retry-after %v, want %v", c.status, got, c.retryAfter)
		}
		if redirected.Load() {
			t.Errorf("status %d: redirect was followed", c.status)
		}
		srv.Close()
	}
}

// TestPayloadAndSignature checks the documented body and the HMAC header.
func TestPayloadAndSignature(t *testing.T) {
	var got Payload
	var sig, idem string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mac := hmac.New(sha256.New, []byte("s3cret"))
		mac.Write(body)
		if r.Header.Get("X-Relay-Signature") == hex.EncodeToString(mac.Sum(nil)) {
			sig = "ok"
		}
		idem = r.Header.Get("Idempotency-Key")
		_ = json.Unmarshal(body, &got)
	}))
	defer srv.Close()
	a := newAdapter(t, Config{URL: srv.URL, Secret: "s3cret"})
	created := time.Date(2026, 11, 25, 1, 2, 3, 0, time.UTC)
	_, err := a.Send(context.Background(), &relay.Outgoing{
		MessageID: "01M", DeliveryID: "01D", Contact: "mom", Address: "+8210", Subject: "s",
		Text: "엄마, 도착했어요", CreatedAt: created, Key: "01D/hook/1", Part: 1, Parts: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := Payload{ID: "01M", DeliveryID: "01D", To: "+8210", Contact: "mom", Text: "엄마, 도착했어요", Subject: "s", Part: 1, Parts: 1, CreatedAt: created}
	if got != want {
		t.Fatalf("payload %+v, want %+v", got, want)
	}
	if sig != "ok" {
		t.Fatal("X-Relay-Signature missing or wrong")
	}
	if idem != "01D/hook/1" {
		t.Fatalf("Idempotency-Key %q", idem)
	}
}

func TestValidate(t *testing.T) {
	if errs := (&Config{}).Validate(); len(errs) != 1 {
		t.Fatalf("empty url: %v", errs)
	}
	if errs := (&Config{URL: "ftp://x", HealthURL: "nope"}).Validate(); len(errs) != 2 {
		t.Fatalf("bad urls: %v", errs)
	}
	if errs := (&Config{URL: "https://example.com/h"}).Validate(); len(errs) != 0 {
		t.Fatalf("good url: %v", errs)
	}
}
