package line

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/relay-project/relay/relay"
)

// maxWebhookBody bounds a webhook request; LINE's are a few kilobytes.
const maxWebhookBody = 1 << 20

// Webhook implements relay.WebhookReceiver. The daemon mounts it at
// POST /v1/inbound/line/{channel}; set that URL as the channel's webhook
// URL in the LINE Developers console.
//
// The handler verifies X-Line-Signature over the raw body before it looks
// at the body, answers 401 to a missing or wrong signature, and answers 200
// only after every message event was accepted by env.Inbound (500 when one
// was not, so LINE redelivers; the sink deduplicates on webhookEventId).
func (a *Adapter) Webhook() http.Handler {
	return http.HandlerFunc(a.serveWebhook)
}

// callback is the documented webhook body
// (developers.line.biz/en/reference/messaging-api/#request-body), reduced
// to what relay uses.
type callback struct {
	Destination string  `json:"destination"`
	Events      []event `json:"events"`
}

type event struct {
	Type           string `json:"type"`
	Mode           string `json:"mode"`
	Timestamp      int64  `json:"timestamp"` // milliseconds since the epoch
	WebhookEventID string `json:"webhookEventId"`
	Source         struct {
		Type    string `json:"type"` // user, group, room
		UserID  string `json:"userId"`
		GroupID string `json:"groupId"`
		RoomID  string `json:"roomId"`
	} `json:"source"`
	Message *struct {
		ID              string `json:"id"`
		Type            string `json:"type"` // text, image, video, audio, file, location, sticker
		Text            string `json:"text"`
		QuotedMessageID string `json:"quotedMessageId"`
	} `json:"message"`
}

func (a *Adapter) serveWebhook(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, err := readBody(w, r)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "cannot read body", http.StatusBadRequest)
		return
	}
	if a.secret == "" {
		a.log.Warn("LINE webhook refused: channel_secret is not set")
		http.Error(w, "signature cannot be verified", http.StatusUnauthorized)
		return
	}
	if !validSignature(a.secret, r.Header.Get("X-Line-Signature"), body) {
		a.log.Warn("LINE webhook refused: bad or missing X-Line-Signature", "remote", r.RemoteAddr)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}

	var cb callback
	if err := json.Unmarshal(body, &cb); err != nil {
		a.log.Warn("LINE webhook body is not the documented JSON", "error", err)
		http.Error(w, "invalid JSON", http.StatusBadRequest)
		return
	}
	failed := 0
	for i := range cb.Events {
		m, ok := a.inbound(&cb.Events[i])
		if !ok {
			continue
		}
		// Every event is tried even after one fails: a redelivery (when
		// the channel has "webhook redelivery" on) brings the failed
		// ones again and the stored ones are dropped as duplicates;
		// without redelivery only the failed events are lost.
		if err := a.env.Inbound.Accept(r.Context(), m); err != nil {
			a.log.Error("LINE webhook event not stored; LINE redelivers it if webhook redelivery is on", "upstream_id", m.UpstreamID, "error", err)
			failed++
		}
	}
	if failed > 0 {
		http.Error(w, "not stored", http.StatusInternalServerError)
		return
	}
	// An empty events list is LINE's connectivity check ("Verify" in the
	// console): it gets 200 too.
	w.WriteHeader(http.StatusOK)
}

func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	defer r.Body.Close()
	return io.ReadAll(http.MaxBytesReader(w, r.Body, maxWebhookBody))
}

// validSignature checks LINE's signature: the base64 HMAC-SHA256 of the raw
// body keyed with the channel secret
// (developers.line.biz/en/reference/messaging-api/#signature-validation),
// compared in constant time.
func validSignature(secret, signature string, body []byte) bool {
	if signature == "" {
		return false
	}
	got, err := base64.StdEncoding.DecodeString(signature)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}

// inbound turns a message event into an InboundMessage. Other events
// (follow, postback, unsend, ...) are not messages to forward.
func (a *Adapter) inbound(ev *event) (relay.InboundMessage, bool) {
	if ev.Type != "message" || ev.Message == nil {
		return relay.InboundMessage{}, false
	}
	// Replies go where the message came from: the group or room when it
	// was written there, else the user.
	sender := ev.Source.UserID
	switch ev.Source.Type {
	case "group":
		sender = ev.Source.GroupID
	case "room":
		sender = ev.Source.RoomID
	}
	if sender == "" {
		return relay.InboundMessage{}, false
	}
	id := ev.WebhookEventID
	if id == "" && ev.Message.ID != "" {
		// Events from before webhookEventId existed: the message id is
		// unique too.
		id = "message:" + ev.Message.ID
	}
	if id == "" {
		return relay.InboundMessage{}, false
	}
	text := ev.Message.Text
	if ev.Message.Type != "text" {
		text = "[" + ev.Message.Type + "]"
	}
	return relay.InboundMessage{
		Channel:    a.env.Name,
		UpstreamID: id,
		SenderID:   sender,
		Text:       text,
		ReplyTo:    ev.Message.QuotedMessageID,
		At:         time.UnixMilli(ev.Timestamp).UTC(),
	}, true
}
