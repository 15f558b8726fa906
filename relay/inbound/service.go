package inbound

import (
	"context"
	"fmt"
	"net/mail"
	"strings"

	"github.com/relay-project/relay/relay"
)

// List returns up to limit conversations, newest message first (GET
// /v1/conversations).
func (p *Pipeline) List(ctx context.Context, limit int) ([]*relay.Conversation, error) {
	return p.store.Conversations(ctx, limit)
}

// Get returns a conversation by id or tag with its newest 200 messages,
// oldest first, each outgoing one with its delivery status.
func (p *Pipeline) Get(ctx context.Context, idOrTag string) (*relay.Conversation, []relay.ConversationMessage, error) {
	c, err := p.store.Conversation(ctx, idOrTag)
	if err != nil {
		return nil, nil, err
	}
	msgs, err := p.store.ConversationMessages(ctx, c.ID, 200)
	return c, msgs, err
}

// FormToken returns inbound.form_token ("" when none is set).
func (p *Pipeline) FormToken() string { return p.cfg.Load().FormToken }

// ErrInvalidForm is wrapped by AcceptForm for a submission to refuse.
var ErrInvalidForm = relay.ErrInvalidInbound

// AcceptForm takes a website form submission: the customer's name, a
// contact (e-mail address or phone number, where replies go) and text.
func (p *Pipeline) AcceptForm(ctx context.Context, name, contact, text string) error {
	name, contact = strings.TrimSpace(name), strings.TrimSpace(contact)
	switch {
	case strings.TrimSpace(text) == "":
		return fmt.Errorf("%w: text is required", ErrInvalidForm)
	case contact == "":
		return fmt.Errorf("%w: contact (an e-mail address or phone number) is required", ErrInvalidForm)
	case len(name) > 200 || len(contact) > 200:
		return fmt.Errorf("%w: name and contact are at most 200 bytes", ErrInvalidForm)
	}
	if strings.Contains(contact, "@") {
		a, err := mail.ParseAddress(contact)
		if err != nil {
			return fmt.Errorf("%w: contact %q is not an e-mail address", ErrInvalidForm, contact)
		}
		contact = strings.ToLower(a.Address)
	} else if d := phoneDigits(contact); d != "" {
		if strings.HasPrefix(contact, "+") {
			d = "+" + d
		}
		contact = d
	} else {
		return fmt.Errorf("%w: contact is neither an e-mail address nor a phone number", ErrInvalidForm)
	}
	return p.Accept(ctx, relay.InboundMessage{Channel: relay.FormChannel, SenderID: contact, SenderName: name,
		Text: text, At: p.now()})
}
