// Package inbound is the two-way part of relay: a customer's message on
// any receiving channel becomes a conversation and a forward to the owner
// (inbound.forward_to) over the owner's route with failover; the owner's
// answer (a messenger reply to the forward, a message starting with the
// conversation's tag, or the API) goes back to the customer on the channel
// the customer used.
//
// Everything an upstream hands over is stored before Accept returns: the
// customer's message and its forward in one transaction, so an adapter
// that acknowledges the upstream after Accept loses nothing in a crash,
// and a redelivery (same channel and upstream id) is dropped.
package inbound

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/relay-project/relay/relay"
	"github.com/relay-project/relay/relay/dispatch"
	"github.com/relay-project/relay/relay/metrics"
)

// Config is the [inbound] table.
type Config struct {
	ForwardTo      []string
	AutoReply      string
	AutoReplyEvery time.Duration
	MaxLength      int // characters; 0 is no limit
	RatePerHour    int // per sender; 0 is no limit
	FormToken      string
}

// Store is what the pipeline keeps its records in.
type Store interface {
	relay.Store
	relay.ConversationStore
}

// Options build a Pipeline.
type Options struct {
	Store   Store
	Logger  *slog.Logger
	Metrics *metrics.Metrics
	Now     func() time.Time
}

// Pipeline takes inbound messages from every channel. Attach a dispatcher
// before the first Accept.
type Pipeline struct {
	store Store
	log   *slog.Logger
	m     *metrics.Metrics
	now   func() time.Time
	cfg   atomic.Pointer[Config]
	disp  *dispatch.Dispatcher
}

// New returns a pipeline with an empty configuration.
func New(opt Options) *Pipeline {
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Metrics == nil {
		opt.Metrics = metrics.New()
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	p := &Pipeline{store: opt.Store, log: opt.Logger, m: opt.Metrics, now: opt.Now}
	p.cfg.Store(&Config{})
	return p
}

// Attach gives the pipeline the dispatcher its forwards and replies go
// through. The daemon builds the dispatcher after the channels (which
// need the pipeline's sinks), hence the separate step.
func (p *Pipeline) Attach(d *dispatch.Dispatcher) { p.disp = d }

// SetConfig replaces the [inbound] settings (at start and on reload).
func (p *Pipeline) SetConfig(c Config) { p.cfg.Store(&c) }

// Config returns the settings in force.
func (p *Pipeline) Config() Config { return *p.cfg.Load() }

// Sink returns the relay.InboundSink for one channel.
func (p *Pipeline) Sink(channel string) relay.InboundSink {
	return channelSink{p: p, channel: channel}
}

type channelSink struct {
	p       *Pipeline
	channel string
}

// Accept stores m (or knows it as a duplicate) before it returns.
func (s channelSink) Accept(ctx context.Context, m relay.InboundMessage) error {
	m.Channel = s.channel
	return s.p.Accept(ctx, m)
}

// Accept handles one received message: an owner's message is routed as a
// reply (or answered with help), anything else is a customer's inquiry.
func (p *Pipeline) Accept(ctx context.Context, m relay.InboundMessage) error {
	if m.SenderID == "" {
		return fmt.Errorf("inbound %s: message without sender", m.Channel)
	}
	cfg := p.cfg.Load()
	if owner := p.ownerOf(cfg, m.Channel, m.SenderID); owner != "" {
		return p.fromOwner(ctx, cfg, owner, m)
	}
	result, err := p.inquiry(ctx, cfg, m)
	if err != nil {
		result = "error"
	}
	p.m.Inbound.WithLabelValues(m.Channel, result).Inc()
	return err
}

// inquiry records a customer's message with its forward and auto-reply.
func (p *Pipeline) inquiry(ctx context.Context, cfg *Config, m relay.InboundMessage) (string, error) {
	now := p.now()
	conv, err := p.store.OpenConversation(ctx, relay.Conversation{ID: p.disp.NewID(), Channel: m.Channel,
		SenderID: m.SenderID, SenderName: strings.TrimSpace(m.SenderName), CreatedAt: now})
	if err != nil {
		return "", err
	}
	// The receive time orders the conversation and the rate window: an
	// upstream's own clock is not trusted with either.
	msg := relay.ConversationMessage{ConversationID: conv.ID, Direction: relay.DirectionIn, Channel: m.Channel,
		UpstreamID: m.UpstreamID, Text: m.Text, At: now}
	msg.Held, err = p.hold(ctx, cfg, conv, m.Text, now)
	if err != nil {
		return "", err
	}
	if msg.Held != "" {
		// Kept for the owner to read, not forwarded: a flood of huge
		// messages must not fill the disk, so held texts keep a head.
		msg.Text = clip(msg.Text, heldKeep)
	}
	e := relay.ConversationEntry{Message: msg, Now: now}
	if msg.Held == "" {
		e.Submit, err = p.disp.Prepare(dispatch.Request{To: cfg.ForwardTo, Text: p.forwardText(conv, m.Text),
			Subject: "inquiry " + conv.Tag, Kind: relay.KindInbound, ConversationID: conv.ID, Submitter: "inbound"})
		if err != nil {
			// The configuration cannot route the forward (a reload left
			// forward_to without a usable route): keep the inquiry, held,
			// rather than refusing it and making the upstream redeliver
			// it forever.
			p.log.Error("inquiry kept but not forwarded", "channel", m.Channel, "conversation", conv.Tag,
				"err", fmt.Errorf("forward to %s: %w", strings.Join(cfg.ForwardTo, ", "), err))
			e.Submit, msg.Held = nil, relay.HeldNoRoute
			e.Message = msg
		} else if cfg.AutoReply != "" {
			e.AutoReply, err = p.toCustomer(conv, cfg.AutoReply, "inbound:auto_reply")
			if err != nil {
				// No channel to answer on (a form contact), or the
				// customer's channel is gone: the owner still gets the
				// inquiry.
				if !errors.Is(err, ErrCannotReply) {
					p.log.Warn("auto-reply not sent", "conversation", conv.Tag, "err", err)
				}
				e.AutoReply = nil
			}
			e.AutoReplyEvery = cfg.AutoReplyEvery
		}
	}
	rec, err := p.store.Record(ctx, e)
	if err != nil {
		return "", err
	}
	if rec.Duplicate {
		return "duplicate", nil
	}
	if e.Submit != nil {
		p.disp.Submitted(e.Submit)
	}
	if rec.AutoReplied {
		p.disp.Submitted(e.AutoReply)
	}
	if msg.Held != "" {
		p.log.Info("inbound message kept, not forwarded", "channel", m.Channel, "conversation", conv.Tag, "reason", msg.Held)
		return msg.Held, nil
	}
	return "forwarded", nil
}

// hold says why a message is not forwarded, or "".
func (p *Pipeline) hold(ctx context.Context, cfg *Config, conv *relay.Conversation, text string, now time.Time) (string, error) {
	if len(cfg.ForwardTo) == 0 {
		return relay.HeldNoForwardTo, nil
	}
	if cfg.MaxLength > 0 && utf8.RuneCountInString(text) > cfg.MaxLength {
		return relay.HeldTooLong, nil
	}
	if cfg.RatePerHour > 0 {
		n, err := p.store.CountInbound(ctx, conv.ID, now.Add(-time.Hour))
		if err != nil {
			return "", err
		}
		if n >= cfg.RatePerHour {
			return relay.HeldRateLimited, nil
		}
	}
	return "", nil
}

// heldKeep is how much of a held message's text is stored.
const heldKeep = 4000

// clip cuts text to at most n runes, saying how much was cut.
func clip(text string, n int) string {
	if utf8.RuneCountInString(text) <= n {
		return text
	}
	r := []rune(text)
	return fmt.Sprintf("%s… [%d more characters not kept]", string(r[:n]), len(r)-n)
}

// channelLabels name channel types in forwarded messages.
var channelLabels = map[string]string{"telegram": "Telegram", "line": "LINE", "whatsapp": "WhatsApp",
	"kakao": "Kakao", "email": "e-mail", "sms": "SMS", relay.FormChannel: "web form"}

// label names the channel the customer used.
func (p *Pipeline) label(channel string) string {
	typ := channel
	if channel != relay.FormChannel {
		if ch := p.disp.Runtime().Channels[channel]; ch != nil {
			typ = ch.Type
		}
	}
	if l, ok := channelLabels[typ]; ok {
		return l
	}
	return channel
}

// Who names the customer: their display name, else their address (long
// opaque ids such as LINE's are shortened).
func Who(c *relay.Conversation) string {
	if c.SenderName != "" {
		if c.Channel == relay.FormChannel {
			return c.SenderName + " <" + c.SenderID + ">"
		}
		return c.SenderName
	}
	if utf8.RuneCountInString(c.SenderID) > 16 {
		return string([]rune(c.SenderID)[:10]) + "…"
	}
	return c.SenderID
}

// forwardText is what the owner reads: "[LINE · 김민수 · #K7] text".
func (p *Pipeline) forwardText(c *relay.Conversation, text string) string {
	return fmt.Sprintf("[%s · %s · #%s] %s", p.label(c.Channel), Who(c), c.Tag, text)
}

// toCustomer prepares a message to the customer on the channel they used
// only (a pinned hop: no failover to channels the customer never used).
func (p *Pipeline) toCustomer(c *relay.Conversation, text, submitter string) (*relay.Message, error) {
	hop, err := p.customerHop(c)
	if err != nil {
		return nil, err
	}
	return p.disp.Prepare(dispatch.Request{To: []string{"customer " + c.Tag}, Text: text, Kind: relay.KindReply,
		ConversationID: c.ID, Hops: []relay.Hop{hop}, Submitter: submitter})
}

// customerHop is where replies to a conversation go: its channel, or for
// the web form the first e-mail (or SMS) channel for the contact given.
func (p *Pipeline) customerHop(c *relay.Conversation) (relay.Hop, error) {
	if c.Channel != relay.FormChannel {
		return relay.Hop{Channel: c.Channel, Address: c.SenderID}, nil
	}
	want := "sms"
	if strings.Contains(c.SenderID, "@") {
		want = "email"
	}
	var best string
	for name, ch := range p.disp.Runtime().Channels {
		if ch.Type == want && (best == "" || name < best) {
			best = name
		}
	}
	if best == "" {
		return relay.Hop{}, fmt.Errorf("%w: the customer wrote from the web form and no %s channel is configured to answer %s",
			ErrCannotReply, want, c.SenderID)
	}
	return relay.Hop{Channel: best, Address: c.SenderID}, nil
}
