package kakao

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"
	"unicode"

	"github.com/relay-project/relay/adapters/internal/httpx"
	"github.com/relay-project/relay/relay"
)

// effect is what a classified failure asks of the adapter itself, beyond
// returning the error to the dispatcher.
type effect int

const (
	effectNone effect = iota
	// effectTokenRefused: kapi refused the access token (-401); refresh it
	// and retry the call once.
	effectTokenRefused
	// effectQuotaSpent: the app's or the sender's daily quota is spent;
	// the whole channel is out until the verdict's until.
	effectQuotaSpent
	// effectRecipientQuota: this recipient (or this sender/recipient pair)
	// cannot get more messages until the verdict's until.
	effectRecipientQuota
	// effectLoginNeeded: only a new login (relay kakao login) repairs it.
	effectLoginNeeded
	// effectConsentMissing: the user has not agreed to a scope (-402).
	effectConsentMissing
	// effectAppRefused: the Kakao app's settings, permissions or standing
	// refuse the call; someone must fix the app on developers.kakao.com.
	effectAppRefused
)

// verdict is one classified upstream failure.
type verdict struct {
	err    *relay.Error
	code   int // the kapi code, 0 when the body had none
	effect effect
	until  time.Time
	scopes string // the consent a -402 asks for
}

// apiError is kapi's error body: {"code": -401, "msg": "..."}, sometimes
// with more fields (-402 lists required_scopes). Kakao says to classify on
// code, as msg may change.
// https://developers.kakao.com/docs/latest/ko/rest-api/reference
type apiError struct {
	Code           int      `json:"code"`
	Msg            string   `json:"msg"`
	RequiredScopes []string `json:"required_scopes"`
}

// kst is Korea Standard Time; Kakao's daily quotas reset at its midnight.
// Korea has no daylight saving time.
var kst = time.FixedZone("KST", 9*60*60)

// nextMidnightKST returns the first 00:00 KST after now.
func nextMidnightKST(now time.Time) time.Time {
	t := now.In(kst)
	return time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, kst)
}

// classifyAPI classifies a non-2xx kapi response. The decision on daily
// quotas: a quota that stops the whole channel (-10 app limit, -532 the
// sender's daily quota) is KindAuth with RetryAfter up to the next midnight
// KST, and the adapter signals the channel down with Until. KindRateLimited
// would only make the dispatcher hold its sends, while the token probe
// kept reporting the channel up and the admin never heard of it; quotas
// cannot be raised, so a day without Kakao is worth a notice and an honest
// "down" in the channel list. Quotas of one recipient (-533 the receiver's,
// -536 the pair's) are KindPermanent for that delivery only: other
// recipients still get messages, so the channel is not blamed.
func classifyAPI(status int, header http.Header, body []byte, now time.Time) verdict {
	var ae apiError
	if json.Unmarshal(body, &ae) != nil || ae.Code == 0 {
		return classifyStatus(status, header, now)
	}
	return classifyCode(status, ae, now)
}

// classifyCode classifies a kapi error code; status is the HTTP status it
// came with (200 for a failure_info entry).
func classifyCode(status int, ae apiError, now time.Time) verdict {
	v := verdict{code: ae.Code}
	msg := fmt.Sprintf("kakao: %d %d %s", status, ae.Code, clean(ae.Msg))
	switch ae.Code {
	case -401:
		v.effect = effectTokenRefused
		v.err = relay.Errorf(relay.KindAuth, "%s", msg)
	case -402:
		scopes := "talk_message"
		if len(ae.RequiredScopes) > 0 {
			scopes = clean(strings.Join(ae.RequiredScopes, ","))
		}
		v.effect, v.scopes = effectConsentMissing, scopes
		v.err = relay.Errorf(relay.KindAuth, "kakao: %d -402 consent missing: %s", status, scopes)
	case -10, -532:
		v.effect = effectQuotaSpent
		v.until = nextMidnightKST(now)
		v.err = relay.Errorf(relay.KindAuth, "%s (daily quota spent until 00:00 KST)", msg)
		v.err.RetryAfter = v.until.Sub(now)
	case -533, -536:
		v.effect = effectRecipientQuota
		v.until = nextMidnightKST(now)
		v.err = relay.Errorf(relay.KindPermanent, "%s (recipient's daily quota spent until 00:00 KST)", msg)
		v.err.RetryAfter = v.until.Sub(now)
	case -1, -7, -9798:
		// Internal error, maintenance, service under maintenance.
		v.err = relay.Errorf(relay.KindTemporary, "%s", msg)
	case -603:
		// Kakao timed out internally after it had our request: the message
		// may have gone out.
		v.err = relay.Errorf(relay.KindAmbiguous, "%s", msg)
	case -101:
		// The user is not linked to the app (unlinked it): log in again.
		v.effect = effectLoginNeeded
		v.err = relay.Errorf(relay.KindAuth, "%s", msg)
	case -3, -4, -5, -9, -11, -12, -406, -903:
		// App settings, permissions, restrictions, sanctions: nothing a
		// retry or another recipient changes.
		v.effect = effectAppRefused
		v.err = relay.Errorf(relay.KindAuth, "%s", msg)
	case -2:
		if strings.Contains(ae.Msg, "receiver") {
			v.err = relay.Errorf(relay.KindPermanent, "%s", msg)
		} else {
			v.err = relay.Errorf(relay.KindInvalid, "%s", msg)
		}
	case -501, -502, -530:
		// Not a KakaoTalk user, not a friend, refuses messages.
		v.err = relay.Errorf(relay.KindPermanent, "%s", msg)
	default:
		s := classifyStatus(status, nil, now)
		s.code = ae.Code
		s.err.Msg = msg
		return s
	}
	return v
}

// classifyStatus classifies a response by its HTTP status alone.
func classifyStatus(status int, header http.Header, now time.Time) verdict {
	msg := fmt.Sprintf("kakao: %d %s", status, http.StatusText(status))
	switch {
	case status == http.StatusTooManyRequests:
		return verdict{err: relay.RateLimited(httpx.RetryAfterOr(header, now, 0), "%s", msg)}
	case status == http.StatusUnauthorized:
		return verdict{effect: effectTokenRefused, err: relay.Errorf(relay.KindAuth, "%s", msg)}
	case status >= 500 || status == http.StatusRequestTimeout:
		return verdict{err: relay.Errorf(relay.KindTemporary, "%s", msg)}
	default:
		return verdict{err: relay.Errorf(relay.KindPermanent, "%s", msg)}
	}
}

// authError is kauth's error body:
// {"error":"invalid_grant","error_description":"...","error_code":"KOE322"}
// https://devtalk.kakao.com/t/koe322-expired-or-invalid-refresh-token/126899
type authError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
	Code        string `json:"error_code"`
}

var redactCode = regexp.MustCompile(`(?i)code=[^\s&"]+`)

// classifyAuth classifies a non-2xx kauth /oauth/token response. A 4xx
// means the login (or the app's key or secret) is refused: KOE320 a bad
// authorization code, KOE322 an expired or revoked refresh token, KOE010 a
// bad client secret. Only a new login repairs those. 5xx is temporary.
func classifyAuth(status int, body []byte) verdict {
	var ae authError
	_ = json.Unmarshal(body, &ae)
	// KOE320's description echoes the authorization code: redact it.
	ae.Description = redactCode.ReplaceAllString(ae.Description, "code=[redacted]")
	desc := strings.TrimSpace(clean(ae.Error) + " " + clean(ae.Code) + " " + clean(ae.Description))
	if desc == "" {
		desc = http.StatusText(status)
	}
	msg := fmt.Sprintf("kakao: login: %d %s", status, desc)
	if status >= 500 || status == http.StatusTooManyRequests || status == http.StatusRequestTimeout {
		return verdict{err: relay.Errorf(relay.KindTemporary, "%s", msg)}
	}
	return verdict{effect: effectLoginNeeded, err: relay.Errorf(relay.KindAuth, "%s", msg)}
}

// classifyTransport classifies a failed round trip. Once the request was
// written, Kakao may have acted on it: a send is then ambiguous. The
// context's error stays in the chain so the dispatcher can tell a
// cancelled send (shutdown) from a failure. Request URLs carry no secrets
// (the bearer token is a header, the refresh token a form field), so a
// *url.Error may be kept as it is.
func classifyTransport(ctx context.Context, what string, err error, wrote bool) *relay.Error {
	if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
		err = fmt.Errorf("%w: %w", ctxErr, err)
	}
	kind := relay.KindTemporary
	if wrote {
		kind = relay.KindAmbiguous
	}
	return relay.Errorf(kind, "kakao: %s: %w", what, err)
}

// clean makes an upstream string safe for a one-line error message.
func clean(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if r := []rune(s); len(r) > 160 {
		s = string(r[:160]) + "…"
	}
	return s
}
