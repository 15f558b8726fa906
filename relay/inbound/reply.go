package inbound

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/relay-project/relay/relay"
	"github.com/relay-project/relay/relay/dispatch"
)

// ErrCannotReply is relay.ErrCannotReply, for callers of this package.
var ErrCannotReply = relay.ErrCannotReply

// ownerOf returns the forward_to contact whose address on channel is
// sender, or "": the owner writing to the shop's own bot or number.
func (p *Pipeline) ownerOf(cfg *Config, channel, sender string) string {
	dir := p.disp.Runtime().Directory
	if dir == nil || len(cfg.ForwardTo) == 0 {
		return ""
	}
	names, err := dir.Resolve(cfg.ForwardTo)
	if err != nil {
		return ""
	}
	for _, n := range names {
		if addr, ok := dir.Contacts[n].Addresses[channel]; ok && sameAddress(addr, sender) {
			return n
		}
	}
	return ""
}

// sameAddress compares addresses as written in the config with the form an
// adapter reports: "+82 10-1234-5678" is "+821012345678".
func sameAddress(configured, reported string) bool {
	configured = strings.TrimSpace(configured)
	if configured == reported {
		return true
	}
	// Only phone numbers written with their country code compare by
	// digits: a Telegram group "-123456789" is not the owner "123456789".
	if !strings.HasPrefix(configured, "+") || !strings.HasPrefix(reported, "+") {
		return false
	}
	a, b := phoneDigits(configured), phoneDigits(reported)
	return a != "" && a == b
}

func phoneDigits(s string) string {
	var out []byte
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			out = append(out, c)
		case c == '+' && len(out) == 0, c == ' ', c == '-', c == '(', c == ')', c == '.':
		default:
			return ""
		}
	}
	if len(out) < 6 {
		return ""
	}
	return string(out)
}

// tagRE finds a leading tag: "#K7 네, 가능합니다".
var tagRE = regexp.MustCompile(`^\s*#([0-9A-Za-z]{2,14})(?:[\s:,.]+|$)`)

// splitTag returns the normalised tag at the start of text and the rest.
func splitTag(text string) (tag, rest string) {
	loc := tagRE.FindStringSubmatchIndex(text)
	if loc == nil {
		return "", text
	}
	tag = relay.NormalizeTag(text[loc[2]:loc[3]])
	if tag == "" {
		return "", text
	}
	return tag, strings.TrimSpace(text[loc[1]:])
}

// fromOwner routes an owner's message: (a) a messenger reply to a forward,
// (b) a message starting with a conversation's tag; anything else gets a
// short help answer on the channel the owner wrote from.
func (p *Pipeline) fromOwner(ctx context.Context, cfg *Config, owner string, m relay.InboundMessage) error {
	conv, text, why, err := p.target(ctx, m)
	if err != nil {
		p.m.Inbound.WithLabelValues(m.Channel, "error").Inc()
		return err
	}
	if conv != nil && strings.TrimSpace(text) == "" {
		conv, why = nil, fmt.Sprintf("Your message to #%s was empty. ", conv.Tag)
	}
	if conv == nil {
		p.m.Inbound.WithLabelValues(m.Channel, "owner_help").Inc()
		return p.help(ctx, owner, m, why)
	}
	msg, err := p.toCustomer(conv, text, "inbound:owner")
	if err != nil {
		// The reply cannot be built (no channel to answer a form on, the
		// customer's channel removed by a reload): tell the owner. It is
		// not an error for the adapter, which would redeliver the
		// owner's message forever.
		p.log.Warn("owner reply cannot be sent", "conversation", conv.Tag, "err", err)
		p.m.Inbound.WithLabelValues(m.Channel, "owner_help").Inc()
		return p.help(ctx, owner, m, err.Error()+". ")
	}
	rec, err := p.store.Record(ctx, relay.ConversationEntry{Message: relay.ConversationMessage{ConversationID: conv.ID,
		Direction: relay.DirectionOut, Channel: m.Channel, UpstreamID: m.UpstreamID, Text: text, At: p.now()},
		Submit: msg, Now: p.now()})
	if err != nil {
		p.m.Inbound.WithLabelValues(m.Channel, "error").Inc()
		return err
	}
	if rec.Duplicate {
		p.m.Inbound.WithLabelValues(m.Channel, "duplicate").Inc()
		return nil
	}
	p.disp.Submitted(msg)
	p.m.Inbound.WithLabelValues(m.Channel, "owner_reply").Inc()
	p.log.Info("owner's reply queued", "conversation", conv.Tag, "message", msg.ID, "via", m.Channel)
	return nil
}

// target finds the conversation an owner's message answers, with the text
// to send; why explains a miss.
func (p *Pipeline) target(ctx context.Context, m relay.InboundMessage) (c *relay.Conversation, text, why string, err error) {
	tag, rest := splitTag(m.Text)
	if m.ReplyTo != "" {
		c, err = p.store.ConversationBySent(ctx, m.Channel, m.ReplyTo)
		switch {
		case err == nil:
			if tag == c.Tag {
				return c, rest, "", nil
			}
			return c, m.Text, "", nil
		case !errors.Is(err, relay.ErrNotFound):
			return nil, "", "", err
		}
	}
	if tag == "" {
		return nil, "", "", nil
	}
	c, err = p.store.Conversation(ctx, tag)
	switch {
	case err == nil:
		return c, rest, "", nil
	case errors.Is(err, relay.ErrNotFound):
		return nil, "", fmt.Sprintf("There is no conversation #%s. ", tag), nil
	}
	return nil, "", "", err
}

// help answers the owner on the channel they wrote from; the upstream id
// keeps a redelivered message from getting a second answer.
func (p *Pipeline) help(ctx context.Context, owner string, m relay.InboundMessage, why string) error {
	text := "[relay] " + why + "To answer a customer, reply to their forwarded message, or start with its tag: #K7 your answer."
	if open := p.openTags(ctx); open != "" {
		text += " Waiting: " + open
	}
	r := dispatch.Request{To: []string{owner}, Text: text, Kind: relay.KindNotice,
		Hops: []relay.Hop{{Channel: m.Channel, Address: m.SenderID}}, Submitter: "inbound:help:" + m.Channel}
	if m.UpstreamID != "" {
		r.IdempotencyKey, r.RequestHash = m.UpstreamID, "help"
	}
	_, _, err := p.disp.Submit(ctx, r)
	return err
}

// openTags lists a few conversations waiting for an answer.
func (p *Pipeline) openTags(ctx context.Context) string {
	list, err := p.store.Conversations(ctx, 20)
	if err != nil {
		return ""
	}
	var parts []string
	for _, c := range list {
		if c.Unanswered > 0 && len(parts) < 3 {
			parts = append(parts, fmt.Sprintf("#%s (%s · %s)", c.Tag, p.label(c.Channel), Who(c)))
		}
	}
	return strings.Join(parts, ", ")
}

// Reply sends text to a conversation's customer (the API, the CLI, the
// console) and returns the reply message once it is durable.
func (p *Pipeline) Reply(ctx context.Context, idOrTag, text, submitter string) (*relay.Message, *relay.Conversation, error) {
	conv, err := p.store.Conversation(ctx, idOrTag)
	if err != nil {
		return nil, nil, err
	}
	msg, err := p.toCustomer(conv, text, submitter)
	if err != nil {
		return nil, conv, err
	}
	now := p.now()
	if _, err := p.store.Record(ctx, relay.ConversationEntry{Message: relay.ConversationMessage{ConversationID: conv.ID,
		Direction: relay.DirectionOut, Text: text, At: now}, Submit: msg, Now: now}); err != nil {
		return nil, conv, err
	}
	p.disp.Submitted(msg)
	return msg, conv, nil
}

// DeliveryEnded is the dispatcher's OnEnd hook: when an owner's reply to a
// customer ends failed or expired, the owner hears of it over their own
// route, with the conversation attached so they can answer the notice to
// try again.
func (p *Pipeline) DeliveryEnded(del *relay.Delivery, state relay.DeliveryState) {
	if del.Kind != relay.KindReply || state == relay.StateDelivered || p.disp == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := p.store.Message(ctx, del.MessageID)
	if err != nil {
		p.log.Error("read failed reply", "message", del.MessageID, "err", err)
		return
	}
	if m.Submitter == "inbound:auto_reply" || m.ConversationID == "" {
		return // the customer misses the auto-reply only; the owner has the inquiry
	}
	conv, err := p.store.Conversation(ctx, m.ConversationID)
	if err != nil {
		p.log.Error("read conversation of failed reply", "message", del.MessageID, "err", err)
		return
	}
	cfg := p.cfg.Load()
	to := cfg.ForwardTo
	if len(to) == 0 {
		p.disp.Notify(ctx, fmt.Sprintf("a reply to %s (%s #%s) was not delivered", Who(conv), p.label(conv.Channel), conv.Tag))
		return
	}
	text := fmt.Sprintf("[relay] Your reply to %s (%s · #%s) was not delivered (%s: %s). The customer wrote on %s only; answer this message or #%s to try again. Your reply: %s",
		Who(conv), p.label(conv.Channel), conv.Tag, state, orNone(del.LastError), p.label(conv.Channel), conv.Tag, shorten(m.Text, 200))
	if _, _, err := p.disp.Submit(ctx, dispatch.Request{To: to, Text: text, Subject: "reply not delivered #" + conv.Tag,
		Kind: relay.KindNotice, Priority: relay.PriorityHigh, ConversationID: conv.ID, Submitter: "inbound"}); err != nil {
		p.log.Error("queue notice of a failed reply", "conversation", conv.Tag, "err", err)
	}
}

func orNone(s string) string {
	if s == "" {
		return "no error recorded"
	}
	return s
}

func shorten(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
