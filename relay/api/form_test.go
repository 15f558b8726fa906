package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/relay-project/relay/relay"
	"github.com/relay-project/relay/relay/metrics"
)

type formOnly struct{ accepted int }

func (f *formOnly) List(context.Context, int) ([]*relay.Conversation, error) { return nil, nil }
func (f *formOnly) Get(context.Context, string) (*relay.Conversation, []relay.ConversationMessage, error) {
	return nil, nil, relay.ErrNotFound
}
func (f *formOnly) Reply(context.Context, string, string, string) (*relay.Message, *relay.Conversation, error) {
	return nil, nil, relay.ErrNotFound
}
func (f *formOnly) AcceptForm(context.Context, string, string, string) error {
	f.accepted++
	return nil
}
func (f *formOnly) FormToken() string { return "" }

// TestFormWithoutTokenOnlyFromThisHost: without inbound.form_token the
// form is taken only from a website on this host: not through a reverse
// proxy (which connects from loopback for anyone on the internet), not
// from a browser sent by another site.
func TestFormWithoutTokenOnlyFromThisHost(t *testing.T) {
	for _, c := range []struct {
		name     string
		hdr      [2]string
		want     int
		accepted int
	}{
		{"website on this host", [2]string{}, http.StatusAccepted, 1},
		{"proxied (X-Forwarded-For)", [2]string{"X-Forwarded-For", "203.0.113.9"}, http.StatusForbidden, 0},
		{"proxied (Forwarded)", [2]string{"Forwarded", "for=203.0.113.9"}, http.StatusForbidden, 0},
		{"cross-site browser post", [2]string{"Sec-Fetch-Site", "cross-site"}, http.StatusForbidden, 0},
	} {
		conv := &formOnly{}
		s := New(Deps{Metrics: metrics.New(), Conversations: conv}, nil)
		r := httptest.NewRequest("POST", "/v1/inbound/form", strings.NewReader("name=x&contact=%2B821099999999&text=hi"))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if c.hdr[0] != "" {
			r.Header.Set(c.hdr[0], c.hdr[1])
		}
		r.RemoteAddr, r.Host = "127.0.0.1:40000", "127.0.0.1:8780"
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if (w.Code != c.want && !(c.want == http.StatusAccepted && w.Code/100 == 2)) || conv.accepted != c.accepted {
			t.Errorf("%s: status %d, accepted %d; want %d, %d (%s)", c.name, w.Code, conv.accepted, c.want, c.accepted, w.Body)
		}
	}
}
