package sms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/relay-project/relay/adapters/internal/httpx"
	"github.com/relay-project/relay/relay"
)

// twilioError is Twilio's REST error envelope
// (https://www.twilio.com/docs/usage/twilios-response):
// {"code":21211,"message":"...","more_info":"https://www.twilio.com/docs/errors/21211","status":400}.
type twilioError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Status  int    `json:"status"`
}

// Twilio error codes (https://www.twilio.com/docs/api/errors) that say
// this recipient cannot be reached from this account.
var twilioPermanent = map[int]bool{
	21211: true, // invalid 'To' phone number
	21214: true, // 'To' number cannot be reached
	21408: true, // permission to send an SMS has not been enabled for the region
	21610: true, // the recipient unsubscribed (replied STOP)
	21612: true, // 'To' number is not currently reachable via SMS
	21614: true, // 'To' number is not a valid mobile number
	21608: true, // trial account: the number is unverified
	21635: true, // 'To' number cannot be a landline
}

// Twilio codes about the channel's own setup: no message can go out until
// an operator fixes it, so the channel is marked down.
var twilioChannel = map[int]bool{
	20003: true, // authentication failed
	20005: true, // account not active
	10001: true, // account is not active
	21212: true, // invalid 'From' number
	21606: true, // 'From' number is not SMS-capable
	21659: true, // 'From' is not a Twilio number
	30002: true, // account suspended
}

// twilioDefaultWait is used for a 429 without Retry-After.
const twilioDefaultWait = time.Second

func classifyTwilio(status int, header http.Header, body []byte) *relay.Error {
	var e twilioError
	_ = json.Unmarshal(body, &e) // a proxy's page leaves e zero
	desc := fmt.Sprintf("twilio: %d", status)
	if e.Code != 0 {
		desc += fmt.Sprintf(" %d", e.Code)
	}
	if e.Message != "" {
		desc += " " + e.Message
	} else if t := http.StatusText(status); t != "" {
		desc += " " + t
	}
	switch {
	case status == http.StatusTooManyRequests || e.Code == 20429:
		return relay.RateLimited(httpx.RetryAfterOr(header, time.Now(), twilioDefaultWait), "%s", desc)
	case status == http.StatusUnauthorized || status == http.StatusForbidden || twilioChannel[e.Code]:
		return relay.Errorf(relay.KindAuth, "%s", desc)
	case twilioPermanent[e.Code]:
		return relay.Errorf(relay.KindPermanent, "%s", desc)
	case status == http.StatusNotFound:
		// The account SID in the path does not exist (20404).
		return relay.Errorf(relay.KindAuth, "%s", desc)
	case status >= 500 || status == http.StatusRequestTimeout:
		return relay.Errorf(relay.KindTemporary, "%s", desc)
	default:
		return relay.Errorf(relay.KindInvalid, "%s", desc)
	}
}

// solapiError is Solapi's REST error envelope
// ({"errorCode":"ValidationError","errorMessage":"..."}, as the official
// SDK's transport decodes it).
type solapiError struct {
	ErrorCode    string `json:"errorCode"`
	ErrorMessage string `json:"errorMessage"`
}

// Solapi message status codes (https://docs.solapi.com/api-reference/message-status-codes)
// that a send can come back with instead of 2000.
var solapiStatusKinds = map[string]relay.Kind{
	"1020": relay.KindAuth,      // not a registered account
	"1030": relay.KindAuth,      // balance too low
	"1062": relay.KindAuth,      // sender number not registered
	"2062": relay.KindAuth,      // sender number not registered
	"2063": relay.KindAuth,      // account blocked
	"2230": relay.KindAuth,      // balance too low
	"1060": relay.KindPermanent, // blocked recipient
	"1061": relay.KindPermanent, // recipient opted out (080 수신거부)
	"1064": relay.KindPermanent, // blocked after a KISA report
	"2060": relay.KindPermanent, // blocked recipient
	"2061": relay.KindPermanent, // recipient opted out
	"2064": relay.KindPermanent, // blocked after a KISA report
	"3010": relay.KindPermanent, // recipient number malformed
	"3032": relay.KindPermanent, // not a subscriber
	"3050": relay.KindPermanent, // handset cannot take SMS
	"1010": relay.KindInvalid,   // required value missing
	"1011": relay.KindInvalid,   // format error
	"1013": relay.KindInvalid,   // subject on an SMS
	"1014": relay.KindInvalid,   // subject over 40 bytes
	"1027": relay.KindInvalid,   // not UTF-8
	"1028": relay.KindInvalid,   // non-printable characters
	"1029": relay.KindInvalid,   // characters outside EUC-KR
	"1031": relay.KindInvalid,   // too long for the type
	"2254": relay.KindInvalid,   // filtered as spam
	"1024": relay.KindTemporary, // server error
	"2024": relay.KindTemporary, // server error
	"3024": relay.KindTemporary, // server error
}

func classifySolapi(status int, body []byte) *relay.Error {
	var e solapiError
	_ = json.Unmarshal(body, &e)
	desc := fmt.Sprintf("solapi: %d", status)
	if e.ErrorCode != "" {
		desc += " " + e.ErrorCode
	}
	if e.ErrorMessage != "" {
		desc += ": " + e.ErrorMessage
	} else if e.ErrorCode == "" {
		desc += " " + http.StatusText(status)
	}
	switch e.ErrorCode {
	// https://docs.solapi.com/authentication/api-key: all answered with 403.
	case "InvalidAPIKey", "SignatureDoesNotMatch":
		return relay.Errorf(relay.KindAuth, "%s", desc)
	case "RequestTimeTooSkewed":
		return relay.Errorf(relay.KindAuth, "%s (check the box's clock)", desc)
	case "DuplicatedSignature":
		// Every request gets a fresh salt, so a retry signs differently.
		return relay.Errorf(relay.KindTemporary, "%s", desc)
	case "NotEnoughBalance":
		return relay.Errorf(relay.KindAuth, "%s", desc)
	case "TooManyRequests":
		return relay.RateLimited(0, "%s", desc)
	}
	if code := statusCodeIn(e.ErrorMessage); code != "" {
		if k, ok := solapiStatusKinds[code]; ok {
			return relay.Errorf(k, "%s", desc)
		}
	}
	switch {
	case status == http.StatusTooManyRequests:
		return relay.RateLimited(0, "%s", desc)
	case status == http.StatusUnauthorized || status == http.StatusForbidden || status == http.StatusPaymentRequired:
		return relay.Errorf(relay.KindAuth, "%s", desc)
	case status >= 500:
		return relay.Errorf(relay.KindTemporary, "%s", desc)
	case mentionsRecipient(e.ErrorMessage):
		return relay.Errorf(relay.KindPermanent, "%s", desc)
	default:
		return relay.Errorf(relay.KindInvalid, "%s", desc)
	}
}

// classifySolapiStatus classifies an accepted (HTTP 200) send whose
// statusCode is not a success.
func classifySolapiStatus(code, message string) *relay.Error {
	k, ok := solapiStatusKinds[code]
	if !ok {
		switch code[:1] {
		case "1":
			k = relay.KindInvalid
		case "2":
			k = relay.KindTemporary
		default:
			k = relay.KindPermanent
		}
	}
	return relay.Errorf(k, "solapi: status %s: %s", code, message)
}

// statusCodeIn finds a four-digit Solapi status code in an error message
// (InvalidStatusCode errors name the message's status code).
func statusCodeIn(s string) string {
	for i := 0; i+4 <= len(s); i++ {
		w := s[i : i+4]
		if _, err := strconv.Atoi(w); err == nil &&
			(i == 0 || s[i-1] < '0' || s[i-1] > '9') && (i+4 == len(s) || s[i+4] < '0' || s[i+4] > '9') {
			return w
		}
	}
	return ""
}

// mentionsRecipient reports whether a ValidationError is about the
// recipient number, which makes it permanent for this contact.
func mentionsRecipient(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "수신번호") || strings.Contains(m, "\"to\"") || strings.Contains(m, "recipient")
}

// classifyTransport classifies an error from http.Client.Do. A deadline
// may have passed after the request was written, so it is ambiguous.
func classifyTransport(provider, op string, err error) *relay.Error {
	var ue *url.Error
	inner := err
	if errors.As(err, &ue) {
		inner = ue.Err // keep the account SID in the URL out of messages
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return relay.Errorf(relay.KindAmbiguous, "%s: %s: %w", provider, op, inner)
	}
	return relay.Errorf(relay.KindTemporary, "%s: %s: %w", provider, op, inner)
}
