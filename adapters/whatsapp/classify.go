package whatsapp

import (
	"context"
	"errors"
	"strings"

	"go.mau.fi/whatsmeow"

	"github.com/relay-project/relay/relay"
)

// sendAction is DisconnectedError.Action for a message send (send.go calls
// retryFrame with "message send"); any other action is an info query made
// while preparing the send (device list, LID lookup), before the message was
// written.
const sendAction = "message send"

// classify turns an error from SendMessage or IsOnWhatsApp into a
// *relay.Error. whatsmeow's errors are sentinels and types (errors.go), so
// they are matched with errors.Is/As; only the server's ack error code is
// text ("server returned error 429", send.go).
func classify(err error) *relay.Error {
	var disc *whatsmeow.DisconnectedError
	var iq *whatsmeow.IQError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, whatsmeow.ErrNotLoggedIn):
		return relay.Errorf(relay.KindAuth, "whatsapp: not linked: run relay whatsapp link: %w", err)
	case errors.Is(err, whatsmeow.ErrIQRateOverLimit), isServerError(err, "429"):
		return relay.RateLimited(0, "whatsapp: rate over limit: %w", err)
	case errors.Is(err, whatsmeow.ErrIQNotAuthorized):
		return relay.Errorf(relay.KindAuth, "whatsapp: not authorized: %w", err)
	case errors.Is(err, whatsmeow.ErrMessageTimedOut):
		// The message was written and no ack came within 75 s.
		return relay.Errorf(relay.KindAmbiguous, "whatsapp: %w", err)
	case errors.As(err, &disc):
		if disc.Action == sendAction {
			// Written, then the socket dropped before the ack.
			return relay.Errorf(relay.KindAmbiguous, "whatsapp: %w", err)
		}
		return relay.Errorf(relay.KindTemporary, "whatsapp: %w", err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		// SendMessage returns ctx.Err() both while preparing and while
		// waiting for the ack; it cannot tell which, so assume the worst.
		// The message ID is fixed, so a resend is deduplicated.
		return relay.Errorf(relay.KindAmbiguous, "whatsapp: send interrupted: %w", err)
	case errors.Is(err, whatsmeow.ErrNotConnected), errors.Is(err, whatsmeow.ErrIQTimedOut):
		return relay.Errorf(relay.KindTemporary, "whatsapp: %w", err)
	case errors.Is(err, whatsmeow.ErrRecipientADJID), errors.Is(err, whatsmeow.ErrUnknownServer),
		errors.Is(err, whatsmeow.ErrBroadcastListUnsupported):
		return relay.Errorf(relay.KindPermanent, "whatsapp: %w", err)
	case errors.As(err, &iq) && (iq.Code == 400 || iq.Code == 404):
		return relay.Errorf(relay.KindPermanent, "whatsapp: %w", err)
	default:
		return relay.Errorf(relay.KindTemporary, "whatsapp: %w", err)
	}
}

// isServerError reports whether err is whatsmeow's ErrServerReturnedError
// with the given code: send.go wraps it as fmt.Errorf("%w %d", ...).
func isServerError(err error, code string) bool {
	return errors.Is(err, whatsmeow.ErrServerReturnedError) &&
		strings.HasSuffix(err.Error(), whatsmeow.ErrServerReturnedError.Error()+" "+code)
}
