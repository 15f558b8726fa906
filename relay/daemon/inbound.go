package daemon

import (
	"context"
	"fmt"
	"strings"

	"github.com/relay-project/relay/relay"
	"github.com/relay-project/relay/relay/dispatch"
)

// inboundSink forwards customer messages to inbound.forward_to over their
// routes. The forward is an ordinary message, committed before Accept
// returns (so the adapter may acknowledge the upstream), and its
// Idempotency-Key is the upstream's message id, so a redelivered webhook
// or update creates no second forward.
type inboundSink struct {
	d *Daemon
}

type channelSink struct {
	s       *inboundSink
	channel string
	typ     string
}

func (s *inboundSink) forChannel(name, typ string) relay.InboundSink {
	return &channelSink{s: s, channel: name, typ: typ}
}

var typeLabels = map[string]string{"telegram": "Telegram", "line": "LINE", "whatsapp": "WhatsApp", "kakao": "Kakao", "email": "email", "sms": "SMS"}

// Accept stores the forward durably, or reports that it is a duplicate.
func (c *channelSink) Accept(ctx context.Context, m relay.InboundMessage) error {
	d := c.s.d
	cfg := d.Config()
	if len(cfg.Inbound.ForwardTo) == 0 {
		d.log.Warn("inbound message but inbound.forward_to is empty; it is counted, not forwarded", "channel", c.channel)
		d.metrics.Inbound.WithLabelValues(c.channel, "no_forward_to").Inc()
		return nil
	}
	label := typeLabels[c.typ]
	if label == "" {
		label = c.channel
	}
	who := m.SenderName
	if who == "" {
		who = m.SenderID
	}
	text := m.Text
	if max := cfg.Inbound.MaxLength; max > 0 && len([]rune(text)) > max {
		text = string([]rune(text)[:max]) + "…"
	}
	_, created, err := d.disp.Submit(ctx, dispatch.Request{
		To:             cfg.Inbound.ForwardTo,
		Text:           fmt.Sprintf("[%s · %s] %s", label, strings.TrimSpace(who), text),
		Kind:           relay.KindInbound,
		Submitter:      "inbound:" + c.channel,
		IdempotencyKey: m.UpstreamID,
		RequestHash:    "inbound",
	})
	if err != nil {
		d.metrics.Inbound.WithLabelValues(c.channel, "error").Inc()
		return err
	}
	result := "forwarded"
	if !created {
		result = "duplicate"
	}
	d.metrics.Inbound.WithLabelValues(c.channel, result).Inc()
	return nil
}
