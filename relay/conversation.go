package relay

import (
	"context"
	"errors"
	"strings"
	"time"
)

// Errors of the two-way pipeline.
var (
	// ErrCannotReply: a conversation has no way back to the customer (a
	// web-form contact with no e-mail or SMS channel configured).
	ErrCannotReply = errors.New("cannot reply to this conversation")
	// ErrInvalidInbound: a submission (the web form) is refused as given.
	ErrInvalidInbound = errors.New("invalid inbound message")
)

// Conversation is one customer on one of our channels: every message the
// customer writes there, the forwards of those messages to the owner, and
// the owner's replies, which go back on that same channel.
type Conversation struct {
	ID         string // a ULID, the caller's
	Seq        int64  // assigned by the store, 1, 2, ...; the tag is made from it
	Tag        string // the short handle the owner replies with ("K7"), from Seq
	Channel    string // our channel name ("line"), or FormChannel
	SenderID   string // the customer's address on Channel (LINE user id, chat id, e-mail)
	SenderName string // display name, if known
	CreatedAt  time.Time
	// The newest message, for listings.
	LastAt        time.Time
	LastText      string
	LastDirection string // DirectionIn or DirectionOut
	// Unanswered counts the customer's messages since the owner's last reply.
	Unanswered int
	// AutoReplyAt is when the auto-reply last went to this customer.
	AutoReplyAt time.Time
}

// FormChannel is the Channel of conversations started by the website form
// (POST /v1/inbound/form); replies go out by e-mail or SMS.
const FormChannel = "form"

// Directions of a conversation message.
const (
	DirectionIn  = "in"  // from the customer
	DirectionOut = "out" // the owner's reply, or the auto-reply
)

// Hold reasons: why an inbound message was kept but not forwarded.
const (
	HeldTooLong     = "too_long"
	HeldRateLimited = "rate_limited"
	HeldNoForwardTo = "no_forward_to"
	HeldNoRoute     = "no_route" // forward_to has no usable route (a reload broke it)
)

// ConversationMessage is one message of a conversation.
type ConversationMessage struct {
	ID             int64
	ConversationID string
	Direction      string
	// Channel and UpstreamID identify the received message upstream (the
	// customer's message, or the owner's message that was a reply); a
	// store keeps one message per channel and upstream id. Both are ""
	// for replies written in the API or the console.
	Channel    string
	UpstreamID string
	Text       string
	At         time.Time
	// Held is the reason an inbound message was not forwarded ("" when it
	// was).
	Held string
	// Auto marks the auto-reply.
	Auto bool
	// MessageID is the relay message that carries it: the forward of an
	// inbound message, the reply of an outgoing one.
	MessageID string
	// MessageStatus is that message's status, filled in by reads.
	MessageStatus MessageStatus
}

// ConversationEntry is what ConversationStore.Record stores in one
// transaction: a conversation message and the relay messages it causes.
type ConversationEntry struct {
	Message ConversationMessage
	// Submit, when set, is stored as Store.Submit would store it, and
	// Message.MessageID is set to its ID: the forward of an inbound
	// message, or the reply an owner's message asks for.
	Submit *Message
	// AutoReply, when set, is stored only if no auto-reply went to this
	// conversation in the AutoReplyEvery before Now; it is then recorded
	// as an outgoing Auto message too.
	AutoReply      *Message
	AutoReplyEvery time.Duration
	Now            time.Time
}

// Recorded is what Record did.
type Recorded struct {
	// Duplicate is true when a message with the same channel and upstream
	// id was stored before: nothing was stored now.
	Duplicate bool
	// AutoReplied is true when the auto-reply was stored.
	AutoReplied bool
	Message     ConversationMessage
}

// ConversationStore keeps conversations. Every method is safe for
// concurrent use; writes are durable when they return. The conformance
// suite storetest.RunConversations pins the contract down.
type ConversationStore interface {
	// OpenConversation returns the conversation of c.Channel and
	// c.SenderID, creating it from c (with c.ID, a new Seq and its Tag)
	// when there is none. A non-empty c.SenderName replaces the stored one.
	OpenConversation(ctx context.Context, c Conversation) (*Conversation, error)
	// Record stores e in one transaction, or nothing when e.Message has a
	// channel and upstream id that were recorded before. It updates the
	// conversation's last message and unanswered count.
	Record(ctx context.Context, e ConversationEntry) (Recorded, error)
	// Conversation returns a conversation by ID or by tag (any case), or
	// ErrNotFound.
	Conversation(ctx context.Context, idOrTag string) (*Conversation, error)
	// Conversations returns up to limit conversations, newest message
	// first.
	Conversations(ctx context.Context, limit int) ([]*Conversation, error)
	// ConversationMessages returns a conversation's newest limit messages,
	// oldest first, with the status of the relay message of each.
	ConversationMessages(ctx context.Context, conversationID string, limit int) ([]ConversationMessage, error)
	// ConversationBySent returns the conversation of the relay message
	// whose attempt on channel got this upstream id (a forward the owner
	// answers with the messenger's reply function), or ErrNotFound.
	ConversationBySent(ctx context.Context, channel, upstreamID string) (*Conversation, error)
	// CountInbound counts a conversation's inbound messages at or after
	// since.
	CountInbound(ctx context.Context, conversationID string, since time.Time) (int, error)
}

// tagLetters start a tag; tagDigits are Crockford's base32 digits. Neither
// has I, L, O or U, so a tag read aloud or typed in any case is one tag.
const (
	tagLetters = "ABCDEFGHJKMNPQRSTVWXYZ"
	tagDigits  = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
)

// ConversationTag returns the tag of the seq-th conversation: a letter,
// then seq in Crockford base32 ("K7"). The number alone makes it unique;
// the letter keeps "#7" from reading as a count or a price.
func ConversationTag(seq int64) string {
	if seq < 0 {
		seq = -seq
	}
	var digits []byte
	for n := seq; ; n /= 32 {
		digits = append([]byte{tagDigits[n%32]}, digits...)
		if n < 32 {
			break
		}
	}
	return string(tagLetters[seq%int64(len(tagLetters))]) + string(digits)
}

// NormalizeTag turns what someone typed ("#k7", "k7") into the stored form
// ("K7"), reading Crockford's look-alikes (o→0, i/l→1) in the number. It
// returns "" for something that is not shaped like a tag.
func NormalizeTag(s string) string {
	s = strings.ToUpper(strings.TrimPrefix(strings.TrimSpace(s), "#"))
	if len(s) < 2 || len(s) > 14 || !strings.ContainsRune(tagLetters, rune(s[0])) {
		return ""
	}
	out := []byte{s[0]}
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch c {
		case 'O':
			c = '0'
		case 'I', 'L':
			c = '1'
		}
		if !strings.ContainsRune(tagDigits, rune(c)) {
			return ""
		}
		out = append(out, c)
	}
	return string(out)
}
