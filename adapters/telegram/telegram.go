// Package telegram is the Telegram Bot API channel: it sends texts with
// sendMessage, probes with getMe, and takes customer messages by getUpdates
// long polling or by webhook. It is built on go-telegram-bot-api v5.
package telegram

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync"
	"time"

	tgbotapi "github.com/go-telegram-bot-api/telegram-bot-api/v5"
	"golang.org/x/time/rate"

	"github.com/relay-project/relay/relay"
)

// Type is the `type` value of a telegram channel.
const Type = "telegram"

// TextLimit is sendMessage's limit: 1-4096 characters after entity
// parsing (core.telegram.org/bots/api#sendmessage).
const TextLimit = 4096

// Pacing from the Bots FAQ ("My bot is hitting limits"): about one
// message per second in one chat, about 30 per second overall.
const (
	chatRate    = rate.Limit(1)
	chatBurst   = 1
	globalRate  = rate.Limit(30)
	globalBurst = 30
)

func init() {
	relay.Register(relay.Factory{
		Type:      Type,
		NewConfig: func() any { return &Config{} },
		New:       New,
	})
}

var (
	_ relay.Adapter          = (*Adapter)(nil)
	_ relay.Starter          = (*Adapter)(nil)
	_ relay.TextLimiter      = (*Adapter)(nil)
	_ relay.WebhookReceiver  = (*Adapter)(nil)
	_ relay.ConfigValidator  = (*Config)(nil)
	_ relay.AddressValidator = (*Config)(nil)
)

// Adapter is one telegram channel.
type Adapter struct {
	cfg      Config
	env      relay.Env
	log      *slog.Logger
	hc       *http.Client
	endpoint string
	pace     *pacer
	seen     *seenSet

	// backoffMin and backoffMax bound the wait between failed polls or
	// webhook registrations; tests shorten them.
	backoffMin, backoffMax time.Duration

	mu      sync.Mutex
	bot     *tgbotapi.BotAPI // nil until getMe succeeded once
	started bool
	closed  bool
	cancel  context.CancelFunc
	// migrated maps a group's old chat id to its supergroup's id, learnt
	// from "group chat was upgraded to a supergroup chat".
	migrated map[int64]int64
	wg       sync.WaitGroup
}

// New builds a telegram adapter. It does not touch the network: the SDK's
// constructor calls getMe, so the bot is built on first use (Probe, Send,
// the poll loop) and again after a failure, and start-up does not depend
// on Telegram being reachable.
func New(cfg any, env relay.Env) (relay.Adapter, error) {
	c, ok := cfg.(*Config)
	if !ok {
		return nil, fmt.Errorf("telegram: config is %T, want *telegram.Config", cfg)
	}
	if errs := c.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("telegram: %w", errors.Join(errs...))
	}
	conf := c.withDefaults()
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("channel", env.Name, "type", Type)
	if env.Signal == nil {
		env.Signal = func(relay.HealthSignal) {}
	}
	if env.Now == nil {
		env.Now = time.Now
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	return &Adapter{
		cfg: conf,
		env: env,
		log: log,
		hc: &http.Client{
			Transport: tr,
			// The API never redirects; following one would resend the
			// token to wherever it points.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			// A backstop for callers without a deadline; it must exceed
			// the long-poll timeout.
			Timeout: time.Duration(conf.PollTimeout)*time.Second + time.Minute,
		},
		endpoint:   conf.endpoint(),
		pace:       newPacer(chatRate, chatBurst, globalRate, globalBurst),
		seen:       newSeenSet(4096),
		backoffMin: time.Second,
		backoffMax: time.Minute,
		migrated:   map[int64]int64{},
	}, nil
}

// TextLimit returns sendMessage's limit.
func (a *Adapter) TextLimit() int { return TextLimit }

// Start begins receiving (the getUpdates loop, or registering the webhook
// when webhook_url is set). It does not block and does not fail when
// Telegram is unreachable: the work retries with backoff until ctx is done
// or Close is called.
func (a *Adapter) Start(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return relay.ErrClosed
	}
	if a.started {
		return errors.New("telegram: already started")
	}
	a.started = true
	run, cancel := context.WithCancel(ctx)
	a.cancel = cancel
	switch a.cfg.Receive {
	case ReceivePoll:
		a.wg.Go(func() { a.pollLoop(run) })
	case ReceiveWebhook:
		if a.cfg.WebhookURL != "" {
			a.wg.Go(func() { a.registerWebhook(run) })
		}
	}
	return nil
}

// Close stops the receiving work and waits for it. It may be called more
// than once.
func (a *Adapter) Close() error {
	a.mu.Lock()
	a.closed = true
	cancel := a.cancel
	a.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	a.wg.Wait()
	a.hc.CloseIdleConnections()
	return nil
}

// Probe calls getMe.
func (a *Adapter) Probe(ctx context.Context) error {
	bot, fresh, err := a.botFor(ctx)
	if err != nil {
		return err
	}
	if fresh {
		return nil // building the bot just called getMe
	}
	tr := bot.trace
	if _, err := bot.GetMe(); err != nil {
		return classify(call{method: "getMe", trace: tr}, a.cfg.Token, err)
	}
	return nil
}

// Send sends out.Text to the chat out.Address with sendMessage. When the
// chat was a group upgraded to a supergroup, it retries once with the new
// chat id. Sent.UpstreamID is "<chat_id>:<message_id>", the form inbound
// messages use in ReplyTo.
func (a *Adapter) Send(ctx context.Context, out *relay.Outgoing) (relay.Sent, error) {
	id, username, err := parseAddress(out.Address)
	if err != nil {
		return relay.Sent{}, relay.Errorf(relay.KindPermanent, "telegram: %v", err)
	}
	if strings.TrimSpace(out.Text) == "" {
		return relay.Sent{}, relay.Errorf(relay.KindInvalid, "telegram: message text is empty")
	}
	a.mu.Lock()
	closed := a.closed
	if to, ok := a.migrated[id]; ok && id != 0 {
		id = to
	}
	a.mu.Unlock()
	if closed {
		return relay.Sent{}, relay.Errorf(relay.KindTemporary, "telegram: %w", relay.ErrClosed)
	}
	sent, err := a.sendOnce(ctx, id, username, out.Text)
	var te *tgbotapi.Error
	if errors.As(err, &te) && te.Code == 400 && te.MigrateToChatID != 0 && username == "" {
		a.mu.Lock()
		a.migrated[id] = te.MigrateToChatID
		a.mu.Unlock()
		a.log.Info("telegram group was upgraded to a supergroup; sending to the new chat id, update the contact's address",
			"old_chat_id", id, "new_chat_id", te.MigrateToChatID)
		sent, err = a.sendOnce(ctx, te.MigrateToChatID, "", out.Text)
	}
	if err != nil {
		return relay.Sent{}, classify(call{method: "sendMessage", delivers: true, trace: traceOf(err)}, a.cfg.Token, err)
	}
	return sent, nil
}

// sendOnce paces and makes one sendMessage call. Its errors are raw (the
// SDK's) wrapped in a tracedError, so Send can look at a migration
// before classifying.
func (a *Adapter) sendOnce(ctx context.Context, id int64, username, text string) (relay.Sent, error) {
	key := username
	if id != 0 {
		key = strconv.FormatInt(id, 10)
	}
	if err := a.pace.wait(ctx, key); err != nil {
		return relay.Sent{}, err
	}
	bot, _, err := a.botFor(ctx)
	if err != nil {
		return relay.Sent{}, err
	}
	msg := tgbotapi.NewMessage(id, text)
	if id == 0 {
		msg = tgbotapi.NewMessageToChannel(username, text)
	}
	// Request, not Send: when the envelope says ok but the result does not
	// decode, the message was still sent.
	resp, err := bot.Request(msg)
	if err != nil {
		return relay.Sent{}, &tracedError{err: err, trace: bot.trace}
	}
	var m tgbotapi.Message
	if err := json.Unmarshal(resp.Result, &m); err != nil || m.MessageID == 0 {
		a.log.Warn("telegram accepted a message but its result did not decode; upstream id unknown")
		return relay.Sent{}, nil
	}
	chat := key
	if m.Chat != nil && m.Chat.ID != 0 {
		chat = strconv.FormatInt(m.Chat.ID, 10)
	}
	return relay.Sent{UpstreamID: chat + ":" + strconv.Itoa(m.MessageID)}, nil
}

// tracedError carries a raw SDK error with the trace of its call.
type tracedError struct {
	err   error
	trace *callTrace
}

func (e *tracedError) Error() string { return e.err.Error() }
func (e *tracedError) Unwrap() error { return e.err }

func traceOf(err error) *callTrace {
	var te *tracedError
	if errors.As(err, &te) {
		return te.trace
	}
	return nil
}

// tracedBot is a per-call copy of the bot whose HTTP client carries the
// call's context and records its trace. The SDK's methods take no
// context; this is how a call is bounded by one.
type tracedBot struct {
	*tgbotapi.BotAPI
	trace *callTrace
}

// botFor returns a bot for one call under ctx, building the shared bot
// first (the SDK constructor calls getMe) if no build succeeded yet. fresh
// is true when this call built it.
func (a *Adapter) botFor(ctx context.Context) (bot tracedBot, fresh bool, err error) {
	a.mu.Lock()
	base := a.bot
	a.mu.Unlock()
	if base == nil {
		tr := &callTrace{}
		b, err := tgbotapi.NewBotAPIWithClient(a.cfg.Token, a.endpoint, a.client(ctx, tr))
		if err != nil {
			return tracedBot{}, false, classify(call{method: "getMe", trace: tr}, a.cfg.Token, err)
		}
		b.Client = nil // bound to this call's ctx; every use sets its own
		a.mu.Lock()
		if a.bot == nil {
			a.bot = b
			a.log.Info("telegram bot ready", "bot_username", b.Self.UserName, "bot_id", b.Self.ID)
		}
		base = a.bot
		a.mu.Unlock()
		fresh = true
	}
	cp := *base
	tr := &callTrace{}
	cp.Client = a.client(ctx, tr)
	return tracedBot{BotAPI: &cp, trace: tr}, fresh, nil
}

func (a *Adapter) client(ctx context.Context, tr *callTrace) tgbotapi.HTTPClient {
	return &ctxClient{ctx: ctx, hc: a.hc, trace: tr}
}

// ctxClient is the SDK's HTTPClient bound to one call's context.
type ctxClient struct {
	ctx   context.Context
	hc    *http.Client
	trace *callTrace
}

func (c *ctxClient) Do(req *http.Request) (*http.Response, error) {
	ctx := httptrace.WithClientTrace(c.ctx, &httptrace.ClientTrace{
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			if info.Err == nil {
				c.trace.wrote.Store(true)
			}
		},
	})
	resp, err := c.hc.Do(req.WithContext(ctx))
	if resp != nil {
		c.trace.status.Store(int32(resp.StatusCode))
		// Bound what the SDK's JSON decoder may read; Bot API answers to
		// our calls are small (a batch of 100 updates stays well below).
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.LimitReader(resp.Body, 16<<20), resp.Body}
	}
	return resp, err
}

// pacer holds sends to Telegram's documented pace: per chat and overall.
type pacer struct {
	perChat   rate.Limit
	chatBurst int
	global    *rate.Limiter

	mu        sync.Mutex
	chats     map[string]*chatLimiter
	lastSweep time.Time
}

type chatLimiter struct {
	lim  *rate.Limiter
	used time.Time
}

func newPacer(perChat rate.Limit, chatBurst int, global rate.Limit, globalBurst int) *pacer {
	return &pacer{
		perChat: perChat, chatBurst: chatBurst,
		global: rate.NewLimiter(global, globalBurst),
		chats:  map[string]*chatLimiter{},
	}
}

// wait blocks until a send to chat is within both limits, or ctx is done.
// A wait that cannot finish before ctx's deadline returns at once as
// rate-limited with the wait needed.
func (p *pacer) wait(ctx context.Context, chat string) error {
	now := time.Now()
	p.mu.Lock()
	p.sweep(now)
	cl := p.chats[chat]
	if cl == nil {
		cl = &chatLimiter{lim: rate.NewLimiter(p.perChat, p.chatBurst)}
		p.chats[chat] = cl
	}
	cl.used = now
	rc := cl.lim.ReserveN(now, 1)
	rg := p.global.ReserveN(now, 1)
	p.mu.Unlock()
	d := max(rc.DelayFrom(now), rg.DelayFrom(now))
	if d <= 0 {
		return nil
	}
	cancel := func() { rc.Cancel(); rg.Cancel() }
	if dl, ok := ctx.Deadline(); ok && dl.Sub(now) < d {
		cancel()
		return relay.RateLimited(d, "telegram: pacing: the next send to this chat may go in %v", d.Round(time.Millisecond))
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		cancel()
		return relay.Errorf(relay.KindTemporary, "telegram: waiting for the send pace: %w", ctx.Err())
	}
}

// sweep forgets chats idle long enough for their limiter to be full again,
// so the map does not grow with every chat ever written to.
func (p *pacer) sweep(now time.Time) {
	if len(p.chats) < 1024 || now.Sub(p.lastSweep) < time.Minute {
		return
	}
	p.lastSweep = now
	idle := time.Minute
	for k, cl := range p.chats {
		if now.Sub(cl.used) > idle {
			delete(p.chats, k)
		}
	}
}
