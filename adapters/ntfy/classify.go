package ntfy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/relay-project/relay/adapters/internal/httpx"
	"github.com/relay-project/relay/relay"
)

// defaultRetryAfter is used for a 429 without Retry-After: ntfy's rate
// limiter (visitor request limit, a token bucket refilled every 5s by
// default) sends none.
const defaultRetryAfter = 10 * time.Second

// apiError is ntfy's error envelope (server/errors.go: errHTTP), e.g.
// {"code":40301,"http":403,"error":"forbidden","link":"..."}.
type apiError struct {
	Code     int    `json:"code"`
	HTTPCode int    `json:"http"`
	Message  string `json:"error"`
}

// classifyResponse turns a non-2xx ntfy response into a *relay.Error.
func classifyResponse(status int, header http.Header, body []byte) *relay.Error {
	var e apiError
	_ = json.Unmarshal(body, &e) // a proxy's HTML page leaves e zero
	desc := fmt.Sprintf("ntfy: %d", status)
	if e.Code != 0 {
		desc += fmt.Sprintf(" %d", e.Code)
	}
	if e.Message != "" {
		desc += " " + e.Message
	} else if t := http.StatusText(status); t != "" {
		desc += " " + t
	}
	switch {
	case status == http.StatusTooManyRequests:
		return relay.RateLimited(httpx.RetryAfterOr(header, time.Now(), defaultRetryAfter), "%s", desc)
	case status == http.StatusUnauthorized:
		return relay.Errorf(relay.KindAuth, "%s", desc)
	case status == http.StatusForbidden:
		// 40301: this account may not write to this topic. Each contact
		// has a topic of its own, so one denied topic must not take the
		// channel down for every other contact; a bad token is a 401.
		return relay.Errorf(relay.KindPermanent, "%s", desc)
	case status == http.StatusBadRequest || status == http.StatusRequestEntityTooLarge:
		return relay.Errorf(relay.KindInvalid, "%s", desc)
	case status == http.StatusNotFound:
		// The api_url points at something that is not an ntfy server (or
		// a path prefix is wrong): configuration, not the message.
		return relay.Errorf(relay.KindAuth, "%s (is api_url an ntfy server?)", desc)
	case status >= 500 || status == http.StatusRequestTimeout:
		return relay.Errorf(relay.KindTemporary, "%s", desc)
	default:
		return relay.Errorf(relay.KindInvalid, "%s", desc)
	}
}

// classifyTransport classifies an error from http.Client.Do. A deadline
// may have passed after the request was written, so it is ambiguous.
func classifyTransport(op string, err error) *relay.Error {
	var ue *url.Error
	inner := err
	if errors.As(err, &ue) {
		inner = ue.Err // the URL carries nothing secret, but is noise
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return relay.Errorf(relay.KindAmbiguous, "ntfy: %s: %w", op, inner)
	}
	return relay.Errorf(relay.KindTemporary, "ntfy: %s: %w", op, inner)
}
