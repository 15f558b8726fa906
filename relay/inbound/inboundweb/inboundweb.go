// Package inboundweb gives the web console (relay/web) the customer
// conversations of an inbound.Pipeline, as web.Conversations. It is a
// package of its own because relay/web imports relay/daemon, which imports
// relay/inbound.
package inboundweb

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/relay-project/relay/relay"
	"github.com/relay-project/relay/relay/inbound"
	"github.com/relay-project/relay/relay/web"
)

// Conversations serves the console's conversation pages from a pipeline.
type Conversations struct {
	p *inbound.Pipeline
}

var _ web.Conversations = (*Conversations)(nil)

// New returns the console's view of p.
func New(p *inbound.Pipeline) *Conversations { return &Conversations{p: p} }

// List returns up to limit conversations, newest message first.
func (c *Conversations) List(ctx context.Context, limit int) ([]web.ConversationSummary, error) {
	list, err := c.p.List(ctx, limit)
	if err != nil {
		return nil, err
	}
	out := make([]web.ConversationSummary, len(list))
	for i, conv := range list {
		out[i] = summary(conv)
	}
	return out, nil
}

// Get returns one conversation (by id or tag) with its messages.
func (c *Conversations) Get(ctx context.Context, id string) (*web.ConversationDetail, error) {
	conv, msgs, err := c.p.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	d := &web.ConversationDetail{ConversationSummary: summary(conv)}
	for _, m := range msgs {
		wm := web.ConversationMessage{Direction: m.Direction, Text: m.Text, At: m.At, MessageID: m.MessageID,
			Status: string(m.MessageStatus)}
		if m.Direction == relay.DirectionIn {
			wm.Direction, wm.Status = web.DirectionIn, "received"
			if m.Held != "" {
				wm.Status = "received (not forwarded: " + m.Held + ")"
			}
		} else {
			wm.Direction = web.DirectionOut
		}
		d.Messages = append(d.Messages, wm)
	}
	return d, nil
}

// Reply queues text for the customer; the console's replies are submitted
// as "console".
func (c *Conversations) Reply(ctx context.Context, id, text string) (string, error) {
	m, _, err := c.p.Reply(ctx, id, text, "console")
	if errors.Is(err, relay.ErrCannotReply) {
		why := strings.TrimPrefix(err.Error(), relay.ErrCannotReply.Error()+": ")
		return "", fmt.Errorf("%w: %s", web.ErrCannotReply, why)
	}
	if err != nil {
		return "", err
	}
	return m.ID, nil
}

func summary(c *relay.Conversation) web.ConversationSummary {
	state := "answered"
	if c.Unanswered > 0 {
		state = "open"
	}
	return web.ConversationSummary{ID: c.ID, Tag: c.Tag, Channel: c.Channel, Customer: inbound.Who(c),
		LastText: c.LastText, LastAt: c.LastAt, State: state, Unanswered: c.Unanswered}
}
