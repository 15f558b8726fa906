package telegram

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	tgbotapi "github.com/go-telegram-bot-api/telegram-bot-api/v5"

	"github.com/relay-project/relay/relay"
)

// callTrace records how far one HTTP call got, so that a failure can be
// told apart: never sent (temporary) or possibly processed (ambiguous).
type callTrace struct {
	wrote  atomic.Bool  // the whole request was written to the connection
	status atomic.Int32 // the response's status code, 0 if none arrived
}

// call names one Bot API call for classification.
type call struct {
	method string // "sendMessage", "getMe", ...
	// delivers is true when a success of the call delivers a message:
	// only then can a half-finished call be ambiguous.
	delivers bool
	trace    *callTrace
}

// classify turns an error from the SDK into a *relay.Error. The Bot API's
// error envelope is {"ok":false,"error_code":N,"description":"...",
// "parameters":{...}} (core.telegram.org/bots/api#making-requests), which
// the SDK returns as *tgbotapi.Error; anything else is a transport or
// decoding failure. token is scrubbed from every message: the SDK's
// *url.Error carries the request URL, and the URL carries the token.
func classify(c call, token string, err error) *relay.Error {
	if err == nil {
		return nil
	}
	var re *relay.Error
	if errors.As(err, &re) {
		return re
	}
	var te *tgbotapi.Error
	if errors.As(err, &te) {
		return classifyAPI(c, te)
	}
	err = scrubErr(err, token)
	msg := scrub(fmt.Sprintf("telegram: %s: %v", c.method, err), token)
	kind := relay.KindTemporary
	if c.delivers && c.trace != nil && c.trace.wrote.Load() {
		status := int(c.trace.status.Load())
		switch {
		case status == 0:
			// The request went out and no answer came: a timeout, a
			// cancel or a reset after writing. Telegram may have sent it.
			kind = relay.KindAmbiguous
		case status >= 200 && status < 300:
			// A success status whose body we could not read.
			kind = relay.KindAmbiguous
		}
		// Any other status with an unreadable body (a proxy's 502 HTML
		// page) is an answer from in front of the API: temporary.
	}
	return &relay.Error{Kind: kind, Msg: msg, Err: err}
}

// classifyAPI classifies an error the Bot API itself answered. Exact
// descriptions are from tdlib/telegram-bot-api's Client.cpp (see
// shared/reference/upstream-apis.md §1.5).
func classifyAPI(c call, te *tgbotapi.Error) *relay.Error {
	desc := te.Message
	msg := fmt.Sprintf("telegram: %s: %d %s", c.method, te.Code, desc)
	mk := func(k relay.Kind) *relay.Error { return &relay.Error{Kind: k, Msg: msg, Err: te} }
	lower := strings.ToLower(desc)
	switch {
	case te.Code == 429:
		e := mk(relay.KindRateLimited)
		e.RetryAfter = time.Duration(te.RetryAfter) * time.Second
		return e
	case te.Code == 401 || te.Code == 404:
		// 401: the token is revoked or malformed. 404: the URL does not
		// reach a Bot API (a wrong api_url). Both are the channel's.
		return mk(relay.KindAuth)
	case te.Code == 403:
		// Every 403 is about this chat: blocked by the user, user
		// deactivated, kicked from or not a member of the group, the
		// group deleted, or the bot may not start the conversation.
		return mk(relay.KindPermanent)
	case te.Code == 400 && te.MigrateToChatID != 0:
		// Send retries a migration once; landing here means the retry
		// migrated again, or the caller did not retry.
		e := mk(relay.KindPermanent)
		e.Msg = fmt.Sprintf("%s (new chat id %d: update the address)", msg, te.MigrateToChatID)
		return e
	case te.Code == 400 && (strings.Contains(lower, "chat not found") ||
		strings.Contains(lower, "user not found") ||
		strings.Contains(lower, "peer_id_invalid") ||
		strings.Contains(lower, "chat_id is empty")):
		return mk(relay.KindPermanent)
	case te.Code == 400:
		// The request itself is wrong for Telegram: empty text, too long,
		// bad entities.
		return mk(relay.KindInvalid)
	default:
		// 5xx ("Internal Server Error: restart"), 409, anything new.
		return mk(relay.KindTemporary)
	}
}

// scrub removes the bot token from s.
func scrub(s, token string) string {
	if token == "" {
		return s
	}
	return strings.ReplaceAll(s, token, "<token>")
}

// scrubErr returns err with the token removed from a *url.Error's URL,
// keeping the chain below it (so errors.Is still finds
// context.DeadlineExceeded). Other errors the SDK returns (JSON syntax
// errors, io.EOF) do not carry the URL.
func scrubErr(err error, token string) error {
	var ue *url.Error
	if token == "" || !errors.As(err, &ue) {
		return err
	}
	return &url.Error{Op: ue.Op, URL: scrub(ue.URL, token), Err: ue.Err}
}

// isConflict reports whether err is getUpdates' 409: another poller, or a
// webhook is set.
func isConflict(err error) bool {
	var te *tgbotapi.Error
	return errors.As(err, &te) && te.Code == 409
}
