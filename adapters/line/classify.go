package line

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/line/line-bot-sdk-go/v8/linebot/messaging_api"
	"github.com/relay-project/relay/adapters/internal/httpx"
	"github.com/relay-project/relay/relay"
)

// Error messages LINE documents (developers.line.biz/en/reference/messaging-api/#error-messages).
const (
	msgMonthlyLimit  = "You have reached your monthly limit."
	msgRetryAccepted = "The retry key is already accepted"
)

// jst is Japan Standard Time (no daylight saving), the zone LINE's monthly
// message count is kept in.
var jst = time.FixedZone("JST", 9*60*60)

// quotaResetAfter returns when the monthly message quota counted at now
// renews: the first day of the next month, 00:00 JST.
func quotaResetAfter(now time.Time) time.Time {
	t := now.In(jst)
	return time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, jst)
}

// invalidToRE matches LINE's "The property, XXX, in the request body is
// invalid" when XXX is the recipient.
var invalidToRE = regexp.MustCompile(`(?i)property,\s*'?to'?\s*,`)

// classifyHTTP classifies a non-2xx answer of the Messaging API. op names
// the call ("push", "bot info") for the message. A 409 to a push is the
// retry key's "already accepted": it returns the Sent of the earlier,
// accepted request and a nil error. A spent monthly quota is KindAuth with
// a non-zero quotaUntil, when the quota renews.
func classifyHTTP(op string, status int, h http.Header, body []byte, now time.Time) (sent relay.Sent, rerr *relay.Error, quotaUntil time.Time) {
	var e messaging_api.ErrorResponse
	if json.Unmarshal(body, &e) != nil || e.Message == "" {
		// Not LINE's error envelope (a proxy's HTML page): the status says
		// enough, the body is not worth quoting.
		e = messaging_api.ErrorResponse{Message: http.StatusText(status)}
	}
	desc := describe(op, status, &e)

	switch {
	case status == http.StatusConflict:
		// "If the request has already been accepted, the re-request is
		// blocked and the status code 409 is returned" (developers.line.biz/
		// en/docs/messaging-api/retrying-api-request/). The body echoes the
		// accepted request's sentMessages; the same id as the first success
		// keeps receipts and the attempt history consistent.
		if len(e.SentMessages) > 0 && e.SentMessages[0].Id != "" {
			return relay.Sent{UpstreamID: e.SentMessages[0].Id}, nil, time.Time{}
		}
		return relay.Sent{UpstreamID: h.Get("X-Line-Accepted-Request-Id")}, nil, time.Time{}

	case status == http.StatusTooManyRequests && strings.TrimSpace(e.Message) == msgMonthlyLimit:
		until := quotaResetAfter(now)
		rerr = relay.Errorf(relay.KindAuth, "line: LINE monthly message quota reached (renews %s)", until.Format("2006-01-02 15:04 MST"))
		rerr.RetryAfter = until.Sub(now)
		return relay.Sent{}, rerr, until

	case status == http.StatusTooManyRequests:
		return relay.Sent{}, relay.RateLimited(httpx.RetryAfterOr(h, now, 0), "%s", desc), time.Time{}

	case status == http.StatusUnauthorized:
		return relay.Sent{}, relay.Errorf(relay.KindAuth, "%s", desc), time.Time{}

	case status == http.StatusBadRequest:
		if recipientProblem(&e) {
			return relay.Sent{}, relay.Errorf(relay.KindPermanent, "%s", desc), time.Time{}
		}
		if len(e.Details) > 0 || strings.Contains(e.Message, "could not be parsed") || strings.Contains(e.Message, "in the request body is invalid") {
			// The message itself is wrong (empty text, too long, bad JSON).
			return relay.Sent{}, relay.Errorf(relay.KindInvalid, "%s", desc), time.Time{}
		}
		// "Failed to send messages": among others, the user ID does not exist.
		return relay.Sent{}, relay.Errorf(relay.KindPermanent, "%s", desc), time.Time{}

	case status == http.StatusRequestEntityTooLarge, status == http.StatusUnsupportedMediaType:
		return relay.Sent{}, relay.Errorf(relay.KindInvalid, "%s", desc), time.Time{}

	case status == http.StatusRequestTimeout:
		return relay.Sent{}, relay.Errorf(relay.KindTemporary, "%s", desc), time.Time{}

	case status >= 400 && status < 500:
		// 403 (the plan or account may not use this API), 404, 410: LINE's
		// retry table says other 4xx are not to be retried.
		return relay.Sent{}, relay.Errorf(relay.KindPermanent, "%s", desc), time.Time{}

	default:
		// 5xx, and 3xx that nothing at api.line.me should send.
		return relay.Sent{}, relay.Errorf(relay.KindTemporary, "%s", desc), time.Time{}
	}
}

// recipientProblem reports whether a 400 names the "to" property.
func recipientProblem(e *messaging_api.ErrorResponse) bool {
	if invalidToRE.MatchString(e.Message) {
		return true
	}
	for _, d := range e.Details {
		if d.Property == "to" {
			return true
		}
	}
	return false
}

// describe makes the attempt's error text: op, status, LINE's message and
// its details, bounded. LINE's messages never carry the token.
func describe(op string, status int, e *messaging_api.ErrorResponse) string {
	var b strings.Builder
	b.WriteString("line: ")
	b.WriteString(op)
	b.WriteString(": ")
	b.WriteString(strconv.Itoa(status))
	b.WriteString(" ")
	b.WriteString(strings.TrimSpace(e.Message))
	for i, d := range e.Details {
		if i == 3 {
			b.WriteString("; …")
			break
		}
		b.WriteString("; ")
		if d.Property != "" {
			b.WriteString(d.Property)
			b.WriteString(": ")
		}
		b.WriteString(d.Message)
	}
	return truncate(b.String(), 300)
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n]) + "…"
}

// classifyTransport classifies a call that got no HTTP answer. Once the
// request was written LINE may have accepted it: that is ambiguous, and
// the same retry key makes a retry on LINE safe. Before that it is
// temporary.
func classifyTransport(op string, err error, wrote bool) *relay.Error {
	if wrote {
		return relay.Errorf(relay.KindAmbiguous, "line: %s: no answer after the request was sent: %w", op, err)
	}
	return relay.Errorf(relay.KindTemporary, "line: %s: %w", op, err)
}
