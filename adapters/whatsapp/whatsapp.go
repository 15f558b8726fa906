// Package whatsapp is relay's WhatsApp channel: a linked device (like
// WhatsApp Web) driven by go.mau.fi/whatsmeow, with its session in SQLite.
//
// Only the daemon holds the connection (a second connection with the same
// session is cut off with StreamReplaced), so linking happens inside the
// daemon through relay.Linker, and the CLI and web console show its QR codes
// through the API.
package whatsapp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types"
	"google.golang.org/protobuf/proto"

	"github.com/relay-project/relay/relay"
)

func init() {
	relay.Register(relay.Factory{Type: "whatsapp", NewConfig: func() any { return &Config{} }, New: New})
}

var (
	_ relay.Adapter     = (*Adapter)(nil)
	_ relay.Starter     = (*Adapter)(nil)
	_ relay.TextLimiter = (*Adapter)(nil)
	_ relay.Idempotent  = (*Adapter)(nil)
	_ relay.Linker      = (*Adapter)(nil)

	_ relay.ConfigValidator  = (*Config)(nil)
	_ relay.AddressValidator = (*Config)(nil)
)

// Reasons shown in health and notices.
const (
	reasonNotLinked = "not linked: run relay whatsapp link"
)

// textLimit is the longest text one send carries. WhatsApp itself takes
// about 65,000 characters in a message, but long messages are folded
// behind "Read more" and are a spam signal; 4096 matches Telegram, keeps a
// notice readable on a phone, and is far below any protocol limit.
const textLimit = 4096

// maxPaceWait is the longest Send waits for its pacing slot itself; longer
// waits are returned as KindRateLimited for the dispatcher to handle.
const maxPaceWait = 5 * time.Second

// Connection retry after a failed dial that whatsmeow does not retry itself
// (it retries network errors on its own).
const (
	retryMin = 30 * time.Second
	retryMax = 10 * time.Minute
)

// lookupTTL is how long "this number is not on WhatsApp" is believed;
// a number found on WhatsApp is believed for the life of the process.
const lookupTTL = 24 * time.Hour

// Adapter is one WhatsApp channel.
type Adapter struct {
	name  string
	s     settings
	env   relay.Env
	log   *slog.Logger
	now   func() time.Time
	open  opener
	pace  *pacer
	ready chan struct{} // closed once the session store is open, or failed to

	cancel context.CancelFunc
	runCtx context.Context
	wg     sync.WaitGroup
	wake   chan time.Time // asks the supervisor to connect at a time

	mu        sync.Mutex
	be        backend
	openErr   error
	cli       client
	handlerID uint32
	down      string    // event-driven reason the channel cannot work
	downUntil time.Time // end of a temporary ban
	signalled *relay.HealthSignal
	linking   bool
	closed    bool
	lookups   map[string]lookup
}

type lookup struct {
	jid types.JID
	in  bool
	at  time.Time
}

// New builds the adapter. It opens nothing: the session store is opened and
// the connection made by Start, in the background.
func New(cfg any, env relay.Env) (relay.Adapter, error) {
	c, ok := cfg.(*Config)
	if !ok {
		return nil, fmt.Errorf("whatsapp: config is %T, want *whatsapp.Config", cfg)
	}
	s, errs := c.settings()
	if len(errs) > 0 {
		return nil, fmt.Errorf("whatsapp: %w", errors.Join(errs...))
	}
	env = fillEnv(env)
	return newAdapter(s, env, sqlOpener(s, newSlogLogger(env.Logger))), nil
}

func fillEnv(env relay.Env) relay.Env {
	if env.Logger == nil {
		env.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if env.Now == nil {
		env.Now = time.Now
	}
	if env.Signal == nil {
		env.Signal = func(relay.HealthSignal) {}
	}
	return env
}

func newAdapter(s settings, env relay.Env, open opener) *Adapter {
	return &Adapter{
		name:    env.Name,
		s:       s,
		env:     env,
		log:     env.Logger.With("channel", env.Name),
		now:     env.Now,
		open:    open,
		pace:    newPacer(s),
		ready:   make(chan struct{}),
		wake:    make(chan time.Time, 1),
		lookups: map[string]lookup{},
	}
}

// Start opens the session store and connects when a device is linked, all
// in the background: it never blocks, and the daemon serves while WhatsApp
// is unreachable or the channel is not linked yet.
func (a *Adapter) Start(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return relay.ErrClosed
	}
	if a.runCtx != nil {
		return errors.New("whatsapp: already started")
	}
	a.runCtx, a.cancel = context.WithCancel(context.WithoutCancel(ctx))
	runCtx := a.runCtx
	a.wg.Go(func() { a.supervise(runCtx, ctx) })
	return nil
}

// supervise owns the connection: it opens the store, then connects whenever
// asked to (at start, after a ban expires, after a failed dial).
func (a *Adapter) supervise(ctx, startCtx context.Context) {
	stop := context.AfterFunc(startCtx, func() { a.cancel() })
	defer stop()

	be, err := a.open(ctx)
	var cli client
	if err == nil {
		cli, err = be.Client(ctx)
		if err != nil {
			be.Close()
		}
	}
	a.mu.Lock()
	if err != nil {
		a.openErr = err
	} else {
		a.be = be
		a.setClientLocked(cli)
	}
	close(a.ready)
	a.mu.Unlock()

	switch {
	case err != nil:
		a.log.Error("whatsapp session store unusable", "err", err)
		a.signal(relay.HealthSignal{Down: true, Reason: "session store: " + err.Error(), Notify: true})
		return
	case cli.ID() == nil:
		a.signal(relay.HealthSignal{Down: true, Reason: reasonNotLinked})
	default:
		a.connectAt(a.now())
	}

	timer := time.NewTimer(0)
	if !timer.Stop() {
		<-timer.C
	}
	defer timer.Stop()
	backoff := retryMin
	for {
		select {
		case <-ctx.Done():
			return
		case at := <-a.wake:
			timer.Reset(max(at.Sub(a.now()), 0))
		case <-timer.C:
			if err := a.connect(ctx); err != nil {
				a.log.Warn("whatsapp connect failed", "err", err, "retry_in", backoff)
				timer.Reset(backoff)
				backoff = min(2*backoff, retryMax)
				continue
			}
			backoff = retryMin
		}
	}
}

// connectAt asks the supervisor to connect at t (replacing an earlier ask).
func (a *Adapter) connectAt(t time.Time) {
	for {
		select {
		case a.wake <- t:
			return
		default:
		}
		select {
		case <-a.wake:
		default:
		}
	}
}

func (a *Adapter) connect(ctx context.Context) error {
	a.mu.Lock()
	cli, linking := a.cli, a.linking
	a.mu.Unlock()
	if cli == nil || linking || cli.ID() == nil || cli.IsConnected() {
		return nil
	}
	err := cli.Connect(ctx)
	if errors.Is(err, whatsmeow.ErrAlreadyConnected) {
		return nil
	}
	return err
}

// setClientLocked makes c the current client and routes its events to the
// adapter. Events of a replaced client are ignored.
func (a *Adapter) setClientLocked(c client) {
	if a.cli != nil {
		a.cli.RemoveEventHandler(a.handlerID)
	}
	a.cli = c
	a.handlerID = c.AddEventHandler(func(evt any) bool { return a.handle(c, evt) })
}

func (a *Adapter) current() client {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cli
}

// signal reports a health change, once per change.
func (a *Adapter) signal(s relay.HealthSignal) {
	a.mu.Lock()
	if p := a.signalled; p != nil && p.Down == s.Down && p.Reason == s.Reason && p.Until.Equal(s.Until) {
		a.mu.Unlock()
		return
	}
	a.signalled = &s
	a.mu.Unlock()
	if s.Down {
		a.log.Warn("whatsapp channel down", "reason", s.Reason)
	} else {
		a.log.Info("whatsapp channel up")
	}
	a.env.Signal(s)
}

// TextLimit reports the longest text of one send; see textLimit.
func (a *Adapter) TextLimit() int { return textLimit }

// Idempotent reports true: Send derives the WhatsApp message ID from
// Outgoing.Key, so a resend after an ambiguous attempt carries the same ID,
// and WhatsApp clients drop a message whose ID they already have in that
// chat (whatsmeow's own retry path re-sends under the same ID for this
// reason). The recipient sees it once.
func (a *Adapter) Idempotent() bool { return true }

// messageID derives the WhatsApp message ID from the delivery's stable key.
// It has the shape of whatsmeow's GenerateMessageID: "3EB0" and 18 upper-case
// hex digits (9 bytes of a SHA-256), which WhatsApp clients expect of a
// web-client message.
func messageID(key string) types.MessageID {
	sum := sha256.Sum256([]byte("relay/whatsapp/message-id\x00" + key))
	return types.MessageID(whatsmeow.WebMessageIDPrefix + strings.ToUpper(hex.EncodeToString(sum[:9])))
}

// Send sends out.Text as a plain text message. Every failure is a
// *relay.Error.
func (a *Adapter) Send(ctx context.Context, out *relay.Outgoing) (relay.Sent, error) {
	if strings.TrimSpace(out.Text) == "" {
		return relay.Sent{}, relay.Errorf(relay.KindInvalid, "whatsapp: empty text")
	}
	to, phone, err := parseAddress(out.Address)
	if err != nil {
		return relay.Sent{}, relay.Errorf(relay.KindPermanent, "whatsapp: %w", err)
	}
	cli, rerr := a.usable()
	if rerr != nil {
		return relay.Sent{}, rerr
	}
	if phone != "" {
		if to, rerr = a.resolve(ctx, cli, phone); rerr != nil {
			return relay.Sent{}, rerr
		}
	}
	key := out.Key
	if key == "" {
		key = fmt.Sprintf("%s/%d", out.DeliveryID, out.Part)
	}
	id := messageID(key)

	maxWait := maxPaceWait
	if dl, ok := ctx.Deadline(); ok {
		// Leave the send itself a second of the attempt's time.
		maxWait = min(maxWait, dl.Sub(a.now())-time.Second)
	}
	wait, cancel, err := a.pace.admit(a.now(), to.String(), out.Text, maxWait)
	if err != nil {
		return relay.Sent{}, err
	}
	if wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			cancel()
			return relay.Sent{}, relay.Errorf(relay.KindTemporary, "whatsapp: not sent: %w while pacing", ctx.Err())
		case <-t.C:
		}
	}

	msg := &waE2E.Message{Conversation: proto.String(out.Text)}
	resp, err := cli.SendMessage(ctx, to, msg, whatsmeow.SendRequestExtra{ID: id})
	if err != nil {
		e := classify(err)
		a.log.Debug("whatsapp send failed", "message_id", id, "kind", e.Kind.String(), "err", err)
		return relay.Sent{}, e
	}
	if resp.ID == "" {
		resp.ID = id
	}
	return relay.Sent{UpstreamID: string(resp.ID)}, nil
}

// usable returns the client when the channel can send, or the reason it
// cannot as a *relay.Error.
func (a *Adapter) usable() (client, *relay.Error) {
	select {
	case <-a.ready:
	default:
		return nil, relay.Errorf(relay.KindTemporary, "whatsapp: starting")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.closed:
		return nil, relay.Errorf(relay.KindTemporary, "whatsapp: %w", relay.ErrClosed)
	case a.openErr != nil:
		return nil, relay.Errorf(relay.KindAuth, "whatsapp: session store: %w", a.openErr)
	case !a.downUntil.IsZero() && a.now().Before(a.downUntil):
		e := relay.Errorf(relay.KindAuth, "whatsapp: %s", a.down)
		e.RetryAfter = a.downUntil.Sub(a.now())
		return nil, e
	case a.down != "":
		return nil, relay.Errorf(relay.KindAuth, "whatsapp: %s", a.down)
	case a.cli.ID() == nil:
		return nil, relay.Errorf(relay.KindAuth, "whatsapp: %s", reasonNotLinked)
	}
	return a.cli, nil
}

// resolve checks once per number that it is on WhatsApp and returns the
// JID WhatsApp names for it. The check is a usync query; asking for many
// numbers is itself a ban signal, hence the cache.
func (a *Adapter) resolve(ctx context.Context, cli client, phone string) (types.JID, *relay.Error) {
	a.mu.Lock()
	l, ok := a.lookups[phone]
	a.mu.Unlock()
	if ok && (l.in || a.now().Sub(l.at) < lookupTTL) {
		if !l.in {
			return types.JID{}, relay.Errorf(relay.KindPermanent, "whatsapp: %s is not on WhatsApp", displayPhone(phone))
		}
		return l.jid, nil
	}
	res, err := cli.IsOnWhatsApp(ctx, []string{displayPhone(phone)})
	if err != nil {
		e := classify(err)
		if e.Kind == relay.KindAmbiguous {
			// Nothing was sent to the recipient yet.
			e.Kind = relay.KindTemporary
		}
		return types.JID{}, e
	}
	l = lookup{jid: types.NewJID(phone, types.DefaultUserServer), at: a.now()}
	for _, r := range res {
		if r.IsIn {
			l.in = true
			if !r.JID.IsEmpty() {
				l.jid = r.JID.ToNonAD()
			}
		}
	}
	a.mu.Lock()
	a.lookups[phone] = l
	a.mu.Unlock()
	if !l.in {
		return types.JID{}, relay.Errorf(relay.KindPermanent, "whatsapp: %s is not on WhatsApp", displayPhone(phone))
	}
	return l.jid, nil
}

// Probe reports whether the channel is connected and logged in. It makes no
// network call: whatsmeow keeps the connection alive with its own pings and
// reports trouble as events.
func (a *Adapter) Probe(ctx context.Context) error {
	cli, err := a.usable()
	if err != nil {
		return err
	}
	switch {
	case !cli.IsConnected():
		return relay.Errorf(relay.KindTemporary, "whatsapp: not connected (reconnecting)")
	case !cli.IsLoggedIn():
		return relay.Errorf(relay.KindTemporary, "whatsapp: connected, not logged in yet")
	}
	return nil
}

// Close disconnects, waits for the background work and closes the session
// store. It may be called more than once.
func (a *Adapter) Close() error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	cancel, cli := a.cancel, a.cli
	a.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	if cli != nil {
		cli.Disconnect()
	}
	a.wg.Wait()
	a.mu.Lock()
	be, cli := a.be, a.cli
	a.be = nil
	a.mu.Unlock()
	if cli != nil {
		// The supervisor may have set or dialled a client after the
		// first Disconnect; it has stopped now.
		cli.Disconnect()
	}
	if be != nil {
		return be.Close()
	}
	return nil
}
