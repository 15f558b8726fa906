package whatsapp

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"

	"github.com/relay-project/relay/relay"
)

// acceptTimeout bounds one hand-over of an inbound message or receipt to
// the daemon's store.
const acceptTimeout = 30 * time.Second

// handle receives every event of client c. It returns false only when an
// inbound message could not be stored, so whatsmeow leaves it
// unacknowledged and WhatsApp delivers it again.
func (a *Adapter) handle(c client, evt any) bool {
	if a.current() != c {
		return true
	}
	switch e := evt.(type) {
	case *events.Connected:
		a.mu.Lock()
		a.down, a.downUntil = "", time.Time{}
		a.mu.Unlock()
		a.signal(relay.HealthSignal{Down: false})
	case *events.Disconnected:
		// whatsmeow reconnects by itself; Probe reports it if it lasts.
		a.log.Info("whatsapp disconnected; reconnecting")
	case *events.KeepAliveTimeout:
		a.log.Info("whatsapp keep-alive timed out", "errors", e.ErrorCount, "last_success", e.LastSuccess)
	case *events.KeepAliveRestored:
		a.log.Info("whatsapp keep-alive restored")
	case *events.LoggedOut:
		// whatsmeow has deleted the session itself (connectionevents.go).
		a.setDown(fmt.Sprintf("WhatsApp was logged out (%s): run relay whatsapp link", e.PermanentDisconnectDescription()), time.Time{})
	case *events.TemporaryBan:
		var until time.Time
		if e.Expire > 0 {
			until = a.now().Add(e.Expire)
		}
		a.setDown("WhatsApp temporarily banned this number: "+e.Code.String()+"; sending resumes when the ban ends", until)
		if !until.IsZero() {
			// The server closed the connection and whatsmeow will
			// not redial; try again once the ban has run out.
			a.connectAt(until)
		}
	case *events.StreamReplaced:
		a.setDown("another program connected with this WhatsApp session (stream replaced): run one relay per session file, then restart relay", time.Time{})
	case *events.ClientOutdated:
		a.setDown("WhatsApp refused this client as outdated: upgrade relay", time.Time{})
	case *events.ConnectFailure:
		switch e.Reason {
		case events.ConnectFailureInternalServerError, events.ConnectFailureServiceUnavailable:
			// whatsmeow reconnects after these.
			a.log.Warn("whatsapp connect failure; reconnecting", "reason", e.Reason.String())
		default:
			a.setDown("WhatsApp refused the connection ("+e.Reason.String()+")", time.Time{})
		}
	case *events.CATRefreshError:
		a.setDown("WhatsApp connection failed: "+e.PermanentDisconnectDescription(), time.Time{})
	case *events.PairSuccess:
		a.mu.Lock()
		a.lookups = map[string]lookup{}
		a.mu.Unlock()
		a.log.Info("whatsapp linked", "account", accountOf(&e.ID))
	case *events.Receipt:
		a.receipt(e)
	case *events.Message:
		return a.inbound(e)
	}
	return true
}

// setDown records an event-driven outage and tells the daemon, with a
// notice to the admin: each of these needs a person or lasts a while.
func (a *Adapter) setDown(reason string, until time.Time) {
	a.mu.Lock()
	a.down, a.downUntil = reason, until
	a.mu.Unlock()
	a.signal(relay.HealthSignal{Down: true, Reason: reason, Until: until, Notify: true})
}

// receipt passes delivery and read receipts for our messages on, one call
// per message ID.
func (a *Adapter) receipt(e *events.Receipt) {
	var kind relay.ReceiptKind
	switch e.Type {
	case types.ReceiptTypeDelivered:
		kind = relay.ReceiptDelivered
	case types.ReceiptTypeRead:
		kind = relay.ReceiptRead
	default:
		// read-self, played, sender (our own devices), retry, ...
		return
	}
	if e.IsFromMe {
		// Our own other devices reporting on messages they received.
		return
	}
	ctx, cancel := context.WithTimeout(a.baseCtx(), acceptTimeout)
	defer cancel()
	for _, id := range e.MessageIDs {
		if err := a.env.Receipts.Receipt(ctx, a.name, string(id), kind, e.Timestamp); err != nil {
			a.log.Warn("whatsapp receipt not recorded", "message_id", id, "kind", string(kind), "err", err)
		}
	}
}

// inbound hands a message someone sent us to the daemon. Group chats,
// status updates, channels and our own messages are not customer
// conversations and are left alone.
func (a *Adapter) inbound(e *events.Message) bool {
	info := e.Info
	if info.IsFromMe || info.IsGroup || info.Chat.Server == types.BroadcastServer ||
		info.Chat.Server == types.NewsletterServer {
		return true
	}
	text, ok := messageText(e.Message)
	if !ok {
		// Reactions, edits, receipts of protocol state: nothing to forward.
		return true
	}
	m := relay.InboundMessage{
		Channel:    a.name,
		UpstreamID: string(info.ID),
		SenderID:   senderAddress(info.MessageSource),
		SenderName: info.PushName,
		Text:       text,
		ReplyTo:    replyTo(e.Message),
		At:         info.Timestamp,
	}
	ctx, cancel := context.WithTimeout(a.baseCtx(), acceptTimeout)
	defer cancel()
	if err := a.env.Inbound.Accept(ctx, m); err != nil {
		a.log.Warn("whatsapp message not stored; WhatsApp will deliver it again", "message_id", info.ID, "err", err)
		return false
	}
	return true
}

func (a *Adapter) baseCtx() context.Context {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.runCtx != nil {
		return a.runCtx
	}
	return context.Background()
}

// messageText returns the text of m, or a short placeholder for media
// (with the caption, if any). ok is false for messages with nothing to show.
func messageText(m *waE2E.Message) (text string, ok bool) {
	if m == nil {
		return "", false
	}
	with := func(placeholder, caption string) (string, bool) {
		if caption = strings.TrimSpace(caption); caption != "" {
			return placeholder + " " + caption, true
		}
		return placeholder, true
	}
	switch {
	case m.GetConversation() != "":
		return m.GetConversation(), true
	case m.GetExtendedTextMessage().GetText() != "":
		return m.GetExtendedTextMessage().GetText(), true
	case m.GetImageMessage() != nil:
		return with("[photo]", m.GetImageMessage().GetCaption())
	case m.GetVideoMessage() != nil:
		return with("[video]", m.GetVideoMessage().GetCaption())
	case m.GetAudioMessage() != nil:
		return "[voice]", true
	case m.GetDocumentMessage() != nil:
		return with("[document]", m.GetDocumentMessage().GetCaption())
	case m.GetStickerMessage() != nil:
		return "[sticker]", true
	case m.GetLocationMessage() != nil || m.GetLiveLocationMessage() != nil:
		return "[location]", true
	case m.GetContactMessage() != nil || m.GetContactsArrayMessage() != nil:
		return "[contact]", true
	}
	return "", false
}

// replyTo returns the ID of the message m quotes, if any.
func replyTo(m *waE2E.Message) string {
	for _, ci := range []*waE2E.ContextInfo{
		m.GetExtendedTextMessage().GetContextInfo(),
		m.GetImageMessage().GetContextInfo(),
		m.GetVideoMessage().GetContextInfo(),
		m.GetAudioMessage().GetContextInfo(),
		m.GetDocumentMessage().GetContextInfo(),
		m.GetStickerMessage().GetContextInfo(),
	} {
		if id := ci.GetStanzaID(); id != "" {
			return id
		}
	}
	return ""
}

// senderAddress is the address to answer the sender at: "+<E.164>" when
// WhatsApp tells us the phone number, else the sender's LID JID
// ("…@lid"), which Send also accepts.
func senderAddress(src types.MessageSource) string {
	for _, j := range []types.JID{src.Sender, src.SenderAlt} {
		if j.Server == types.DefaultUserServer && j.User != "" {
			return displayPhone(j.User)
		}
	}
	return src.Sender.ToNonAD().String()
}

// accountOf formats a linked device's JID as the account's phone number.
func accountOf(id *types.JID) string {
	if id == nil || id.User == "" {
		return ""
	}
	if id.Server == types.DefaultUserServer {
		return displayPhone(id.User)
	}
	return id.ToNonAD().String()
}
