package web

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/relay-project/relay/relay"
)

// Conversations is what the console needs from the two-way feature: a
// customer conversation is one customer on one of our channels (a Telegram
// chat with the shop's bot, a LINE user of the official account), with the
// customer's messages forwarded to the owner and the owner's replies sent
// back on that same channel.
//
// Implementations must be safe for concurrent use; every method gets the
// request's context and must return when it is done. The console shows
// errors in general words and logs them, so an error may carry detail but
// must not carry secrets. Texts are shown as plain text (HTML-escaped by
// the console).
type Conversations interface {
	// List returns up to limit conversations, the one with the newest
	// message first. limit is between 1 and 200.
	List(ctx context.Context, limit int) ([]ConversationSummary, error)
	// Get returns one conversation with its messages, oldest first (the
	// console shows the newest 200 when there are more). An unknown id
	// returns an error wrapping relay.ErrNotFound.
	Get(ctx context.Context, id string) (*ConversationDetail, error)
	// Reply queues text for the customer on the conversation's channel
	// (as POST /v1/conversations/{id}/reply does) and returns the id of
	// the reply message, which the console links to its message page.
	// It returns once the reply is durable. An unknown id returns an error
	// wrapping relay.ErrNotFound; a reply the channel cannot take any more
	// (the conversation is closed, the customer blocked the bot) returns
	// an error wrapping ErrCannotReply, whose text is shown to the user.
	// text is non-empty, valid UTF-8 and at most 64 KiB characters.
	Reply(ctx context.Context, id, text string) (messageID string, err error)
}

// ErrCannotReply is wrapped by Conversations.Reply when the conversation
// does not accept a reply; the error's text is shown to the user.
var ErrCannotReply = errors.New("cannot reply to this conversation")

// ConversationSummary is one row of the conversation list.
type ConversationSummary struct {
	// ID identifies the conversation in URLs (/ui/conversations/{id}).
	ID string
	// Tag is the short handle the owner sees in forwarded messages and
	// may reply with ("K7"); empty when there is none.
	Tag string
	// Channel is our channel name the customer wrote to ("telegram").
	Channel string
	// Customer is the customer's display name, or their address when the
	// upstream gives no name.
	Customer string
	// LastText is the newest message's text (the console shortens it).
	LastText string
	// LastAt is when the newest message was sent or received.
	LastAt time.Time
	// State is "open" (waiting for the owner's answer), "answered" or
	// "closed"; the console shows it as a badge.
	State string
	// Unanswered counts customer messages after the owner's last reply.
	Unanswered int
}

// ConversationDetail is one conversation with its messages.
type ConversationDetail struct {
	ConversationSummary
	// Messages are oldest first.
	Messages []ConversationMessage
}

// Direction of a conversation message.
const (
	DirectionIn  = "in"  // from the customer
	DirectionOut = "out" // the owner's reply (or the auto-reply)
)

// ConversationMessage is one message in a conversation.
type ConversationMessage struct {
	// Direction is DirectionIn or DirectionOut.
	Direction string
	Text      string
	At        time.Time
	// Status is, for an outgoing message, its message status (queued,
	// sending, delivered, failed, expired, cancelled); for an incoming one
	// "received".
	Status string
	// MessageID is the relay message id of an outgoing reply (linked to
	// its message page), or of the forward of an incoming one; may be "".
	MessageID string
}

const conversationLimit = 100

func (c *Console) conversations(w http.ResponseWriter, r *http.Request, s *session) {
	if c.opt.Conversations == nil {
		c.render(w, r, s, http.StatusOK, "conversations", map[string]any{"Disabled": true})
		return
	}
	list, err := c.opt.Conversations.List(r.Context(), conversationLimit)
	if err != nil {
		c.log.Error("console: list conversations", "err", err)
		c.fail(w, r, s, http.StatusBadGateway, "err.conversations")
		return
	}
	for i := range list {
		list[i].LastText = shorten(list[i].LastText, 80)
	}
	c.render(w, r, s, http.StatusOK, "conversations", map[string]any{"List": list})
}

func (c *Console) conversation(w http.ResponseWriter, r *http.Request, s *session) {
	if c.opt.Conversations == nil {
		c.render(w, r, s, http.StatusOK, "conversations", map[string]any{"Disabled": true})
		return
	}
	c.showConversation(w, r, s, http.StatusOK, "", r.URL.Query().Get("sent"))
}

func (c *Console) showConversation(w http.ResponseWriter, r *http.Request, s *session, status int, errKey, sent string) {
	d, err := c.opt.Conversations.Get(r.Context(), r.PathValue("id"))
	if errors.Is(err, relay.ErrNotFound) {
		c.fail(w, r, s, http.StatusNotFound, "err.no_conversation")
		return
	}
	if err != nil {
		c.log.Error("console: read conversation", "err", err)
		c.fail(w, r, s, http.StatusBadGateway, "err.conversations")
		return
	}
	if n := len(d.Messages); n > 200 {
		d.Messages = d.Messages[n-200:]
	}
	c.render(w, r, s, status, "conversation", map[string]any{"C": d, "Error": errKey, "Sent": sent,
		"Text": r.PostFormValue("text")})
}

func (c *Console) reply(w http.ResponseWriter, r *http.Request, s *session) {
	if c.opt.Conversations == nil {
		c.render(w, r, s, http.StatusNotFound, "conversations", map[string]any{"Disabled": true})
		return
	}
	id, text := r.PathValue("id"), r.PostFormValue("text")
	if strings.TrimSpace(text) == "" || !utf8.ValidString(text) || utf8.RuneCountInString(text) > maxText {
		c.showConversation(w, r, s, http.StatusBadRequest, "send.bad_text", "")
		return
	}
	mid, err := c.opt.Conversations.Reply(r.Context(), id, text)
	switch {
	case errors.Is(err, relay.ErrNotFound):
		c.fail(w, r, s, http.StatusNotFound, "err.no_conversation")
		return
	case errors.Is(err, ErrCannotReply):
		c.fail(w, r, s, http.StatusConflict, "conv.cannot_reply", err.Error())
		return
	case err != nil:
		c.log.Error("console: reply", "err", err)
		c.showConversation(w, r, s, http.StatusBadGateway, "conv.reply_failed", "")
		return
	}
	http.Redirect(w, r, "/ui/conversations/"+url.PathEscape(id)+"?sent="+url.QueryEscape(mid), http.StatusSeeOther)
}

// shorten cuts s to n characters with an ellipsis.
func shorten(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}
