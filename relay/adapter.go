package relay

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"
)

// Adapter is one configured channel instance: it sends one text to one
// address. Constructors (Factory.New) must not touch the network; the
// daemon calls Start, when present, after construction.
type Adapter interface {
	// Send delivers out.Text to out.Address. It returns the upstream's id
	// for the sent message when it has one. A failure is returned as an
	// *Error with its Kind; any other error counts as KindTemporary (or
	// KindAmbiguous for a context deadline). Send must return promptly
	// when ctx is done.
	Send(ctx context.Context, out *Outgoing) (Sent, error)
	// Probe makes the channel's cheapest authenticated call and returns
	// nil when the channel works. It returns ErrNoProbe when the channel
	// has no cheap probe; the channel is then judged by its sends alone.
	Probe(ctx context.Context) error
	// Close releases the adapter's resources. Send is not called after.
	Close() error
}

// Outgoing is one text for one address. The dispatcher has already split
// long texts to the adapter's limit: Part is 1-based of Parts.
type Outgoing struct {
	MessageID  string
	DeliveryID string
	Contact    string
	Address    string
	Subject    string
	Text       string
	Priority   string
	Part       int
	Parts      int
	CreatedAt  time.Time
	// Key is stable for this delivery, channel and part across retries and
	// restarts: adapters whose upstream honours an idempotency key (LINE's
	// X-Line-Retry-Key, a WhatsApp message ID) derive it from Key, so a
	// retry after an ambiguous attempt cannot send twice.
	Key string
}

// Sent is what an upstream reports for an accepted message.
type Sent struct {
	UpstreamID string
}

// Optional abilities, found at runtime with a type assertion.

// Starter is implemented by adapters that need background work (a
// connection, a poll loop). Start must not block; work it starts stops when
// ctx is done, and Close waits for it.
type Starter interface {
	Start(ctx context.Context) error
}

// TextLimiter reports the longest text, in characters (runes), one send
// may carry. Longer texts are split on word boundaries into parts that end
// with " (i/n)". Zero means no limit.
type TextLimiter interface {
	TextLimit() int
}

// Idempotent is implemented by adapters whose upstream deduplicates a
// resend of the same Outgoing.Key (LINE's retry key; a webhook receiver
// that deduplicates on delivery_id). Only those are retried on the same
// channel after an ambiguous attempt.
type Idempotent interface {
	Idempotent() bool
}

// WebhookReceiver is implemented by adapters that take inbound traffic over
// HTTP. The daemon mounts the handler at /v1/inbound/{type}/{channel}; the
// handler authenticates the upstream itself (signature, secret token).
type WebhookReceiver interface {
	Webhook() http.Handler
}

// InboundMessage is a message someone sent to one of our channels (a
// customer writing to the shop's bot).
type InboundMessage struct {
	Channel    string    // our channel name
	UpstreamID string    // the upstream's id for deduplication (update_id, webhookEventId, message id)
	SenderID   string    // the address to reply to on this channel
	SenderName string    // display name, if known
	Text       string    // text, or a short placeholder for media ("[photo]")
	ReplyTo    string    // upstream id of the message this one replies to, if any
	At         time.Time // when the upstream says it was sent
}

// InboundSink takes received messages. Accept returns only once the message
// is durable (or known to be a duplicate), so the adapter may acknowledge
// the upstream (answer the webhook, advance the poll offset) after it.
type InboundSink interface {
	Accept(ctx context.Context, m InboundMessage) error
}

// ReceiptKind says how far a sent message got.
type ReceiptKind string

// Receipt kinds.
const (
	ReceiptDelivered ReceiptKind = "delivered"
	ReceiptRead      ReceiptKind = "read"
)

// ReceiptSink records delivery and read receipts against the attempt whose
// UpstreamID matches.
type ReceiptSink interface {
	Receipt(ctx context.Context, channel, upstreamID string, kind ReceiptKind, at time.Time) error
}

// HealthSignal is what an adapter knows about its own health from events
// (WhatsApp logged out, a quota spent) beyond probes and sends.
type HealthSignal struct {
	Down   bool
	Reason string // plain words: "WhatsApp was logged out: run relay whatsapp link"
	Until  time.Time
	// Notify asks for a notice to delivery.admin over another channel.
	Notify bool
}

// StateStore keeps small durable values for one channel (refreshed tokens,
// a poll offset). Keys are scoped to the channel.
type StateStore interface {
	Get(ctx context.Context, key string) (value []byte, ok bool, err error)
	Put(ctx context.Context, key string, value []byte) error
}

// Env is what the daemon gives an adapter at construction. Every field may
// be used from any goroutine. Inbound, Receipts and Signal are never nil.
type Env struct {
	Name     string // the channel name, [channels.NAME]
	Logger   *slog.Logger
	State    StateStore
	Inbound  InboundSink
	Receipts ReceiptSink
	Signal   func(HealthSignal)
	Now      func() time.Time
}

// Factory builds adapters of one type.
type Factory struct {
	// Type is the `type` value in [channels.NAME].
	Type string
	// NewConfig returns a pointer to a zero config struct with toml tags;
	// the [channels.NAME] table is decoded into it strictly (the keys
	// type, health, concurrency and max_rate are the daemon's). Secret
	// fields X may be given as X_file; declare both, the config package
	// reads the file into X.
	NewConfig func() any
	// New builds the adapter from the decoded config. It must not block
	// or touch the network.
	New func(cfg any, env Env) (Adapter, error)
}

// ConfigValidator is implemented by adapter config structs that can check
// themselves; every problem is returned, each naming its key.
type ConfigValidator interface {
	Validate() []error
}

// AddressValidator is implemented by adapter config structs that can check
// a contact's address for the channel (a phone number, a chat id).
type AddressValidator interface {
	ValidateAddress(address string) error
}

var (
	registryMu sync.RWMutex
	registry   = map[string]Factory{}
)

// Register makes an adapter type available. Adapter packages call it from
// init; registering a type twice panics.
func Register(f Factory) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[f.Type]; dup {
		panic(fmt.Sprintf("relay: adapter type %q registered twice", f.Type))
	}
	registry[f.Type] = f
}

// Lookup returns the factory for an adapter type.
func Lookup(typ string) (Factory, bool) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	f, ok := registry[typ]
	return f, ok
}

// Types lists the registered adapter types, sorted.
func Types() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	out := make([]string, 0, len(registry))
	for t := range registry {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// Linker is implemented by channels that are linked to an account by
// pairing a device (WhatsApp). The daemon holds the only connection, so
// the CLI and the web console link through the daemon's API.
type Linker interface {
	// Link starts pairing and sends events until the account is linked,
	// pairing fails or ctx is done; then it closes the channel. With a
	// phone number it asks for a pairing code instead of QR codes. Link
	// fails at once when the channel is already linked.
	Link(ctx context.Context, phone string) (<-chan LinkEvent, error)
	// Unlink logs the device out and forgets the session.
	Unlink(ctx context.Context) error
	// LinkedAccount returns the linked account ("+82 10-…" or a JID), or
	// "" when the channel is not linked.
	LinkedAccount() string
}

// LinkEvent is one step of pairing.
type LinkEvent struct {
	Kind    string `json:"kind"`              // "qr", "code", "success", "error"
	Code    string `json:"code,omitempty"`    // the QR payload or the pairing code
	Account string `json:"account,omitempty"` // on success
	Error   string `json:"error,omitempty"`   // on error
}

// Authorizer is implemented by channels logged in with an OAuth
// authorization-code flow (Kakao). The CLI (`relay kakao login`, loopback
// redirect) and the web console (/ui/kakao/callback) drive it.
type Authorizer interface {
	// AuthURL returns the URL to open in a browser.
	AuthURL(redirectURI, state string) string
	// Authorize exchanges the code for tokens and stores them durably; the
	// channel uses them from then on.
	Authorize(ctx context.Context, code, redirectURI string) error
}
