// Package line is the LINE Messaging API channel: it pushes texts to LINE
// users, groups and rooms with an idempotent retry key, probes with the bot
// info call, and receives customer messages over the signed webhook.
package line

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/line/line-bot-sdk-go/v8/linebot/messaging_api"
	"github.com/relay-project/relay/relay"
)

func init() {
	relay.Register(relay.Factory{Type: "line", NewConfig: func() any { return &Config{} }, New: New})
}

// TextLimit is the longest text message LINE takes, in characters
// (developers.line.biz/en/reference/messaging-api/#text-message).
const TextLimit = 5000

// retryKeyNamespace is the UUID namespace of retry keys. It is fixed
// forever: changing it would make a retry after an upgrade send twice.
var retryKeyNamespace = uuid.MustParse("6f1d4a52-3c0e-4c55-9f65-2b1c8a0d7e31")

// RetryKey returns the X-Line-Retry-Key for an Outgoing.Key: a name-based
// (SHA-1) UUID, so every retry of one delivery part on this channel, also
// after a restart, carries the same key and LINE accepts it only once.
func RetryKey(key string) string {
	return uuid.NewSHA1(retryKeyNamespace, []byte(key)).String()
}

// Adapter is one LINE channel.
type Adapter struct {
	token    string
	secret   string
	endpoint string
	env      relay.Env
	log      *slog.Logger
	now      func() time.Time
	httpc    *http.Client
	closed   atomic.Bool

	mu         sync.Mutex
	quotaUntil time.Time // non-zero while the monthly quota is known to be spent
}

var (
	_ relay.Adapter          = (*Adapter)(nil)
	_ relay.TextLimiter      = (*Adapter)(nil)
	_ relay.Idempotent       = (*Adapter)(nil)
	_ relay.WebhookReceiver  = (*Adapter)(nil)
	_ relay.ConfigValidator  = (*Config)(nil)
	_ relay.AddressValidator = (*Config)(nil)
)

// New builds a LINE channel from its *Config. It does not touch the network.
func New(cfg any, env relay.Env) (relay.Adapter, error) {
	c, ok := cfg.(*Config)
	if !ok {
		return nil, fmt.Errorf("line: config is %T, want *line.Config", cfg)
	}
	if c.ChannelAccessToken == "" {
		return nil, errors.New("line: channel_access_token: required")
	}
	endpoint := c.APIURL
	if endpoint == "" {
		endpoint = DefaultAPIURL
	}
	if err := checkAPIURL(endpoint); err != nil {
		return nil, fmt.Errorf("line: api_url: %w", err)
	}
	a := &Adapter{
		token:    c.ChannelAccessToken,
		secret:   c.ChannelSecret,
		endpoint: endpoint,
		env:      env,
		log:      env.Logger,
		now:      env.Now,
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	a.log = a.log.With("channel", env.Name, "type", "line")
	if a.now == nil {
		a.now = time.Now
	}
	if a.env.Signal == nil {
		a.env.Signal = func(relay.HealthSignal) {}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	a.httpc = &http.Client{
		Transport: tr,
		// The caller's context bounds every call; this only stops a call
		// made without a deadline from hanging forever.
		Timeout: 2 * time.Minute,
		// api.line.me does not redirect; following one would be a surprise.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return a, nil
}

// client returns a Messaging API client bound to ctx. The SDK keeps the
// context in the client (WithContext mutates it), so each call gets its
// own; building one is cheap and makes no network call.
func (a *Adapter) client(ctx context.Context) (*messaging_api.MessagingApiAPI, error) {
	c, err := messaging_api.NewMessagingApiAPI(a.token,
		messaging_api.WithEndpoint(a.endpoint),
		messaging_api.WithHTTPClient(a.httpc))
	if err != nil {
		// Only an empty token or a bad endpoint, both checked in New.
		return nil, fmt.Errorf("line: client: %w", err)
	}
	return c.WithContext(ctx), nil
}

// TextLimit implements relay.TextLimiter.
func (a *Adapter) TextLimit() int { return TextLimit }

// Idempotent implements relay.Idempotent: every push carries a retry key
// derived from Outgoing.Key, which LINE accepts once within 24 hours.
func (a *Adapter) Idempotent() bool { return true }

// Send pushes out.Text to out.Address (a user, group or room ID) with the
// retry key derived from out.Key. A 409 "retry key already accepted" means
// an earlier try got through, and counts as sent.
func (a *Adapter) Send(ctx context.Context, out *relay.Outgoing) (relay.Sent, error) {
	if a.closed.Load() {
		return relay.Sent{}, relay.Errorf(relay.KindTemporary, "line: %w", relay.ErrClosed)
	}
	if out.Text == "" {
		return relay.Sent{}, relay.Errorf(relay.KindInvalid, "line: empty text")
	}
	if n := utf8.RuneCountInString(out.Text); n > TextLimit {
		return relay.Sent{}, relay.Errorf(relay.KindInvalid, "line: text has %d characters, LINE takes %d", n, TextLimit)
	}
	key := out.Key
	if key == "" {
		// The dispatcher always sets Key; this keeps the key stable for a
		// caller that does not.
		key = fmt.Sprintf("%s/%s/%s/%d", out.MessageID, out.DeliveryID, out.Address, out.Part)
	}

	var wrote atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(i httptrace.WroteRequestInfo) {
			if i.Err == nil {
				wrote.Store(true)
			}
		},
	})
	c, err := a.client(ctx)
	if err != nil {
		return relay.Sent{}, relay.Errorf(relay.KindAuth, "%w", err)
	}
	req := &messaging_api.PushMessageRequest{
		To:       out.Address,
		Messages: []messaging_api.MessageInterface{&messaging_api.TextMessage{Text: out.Text}},
	}
	res, body, err := c.PushMessageWithHttpInfo(req, RetryKey(key))
	if res == nil {
		if err == nil {
			err = errors.New("no response")
		}
		return relay.Sent{}, classifyTransport("push", err, wrote.Load())
	}
	if res.StatusCode/100 == 2 {
		if body != nil && len(body.SentMessages) > 0 && body.SentMessages[0].Id != "" {
			return relay.Sent{UpstreamID: body.SentMessages[0].Id}, nil
		}
		// LINE answered 2xx, so it accepted the push even if the body did
		// not decode; resending would only repeat it.
		return relay.Sent{UpstreamID: res.Header.Get("X-Line-Request-Id")}, nil
	}
	errBody, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10)) // the SDK left a re-readable copy
	sent, rerr, quotaUntil := classifyHTTP("push", res.StatusCode, res.Header, errBody, a.now())
	if !quotaUntil.IsZero() {
		a.quotaSpent(quotaUntil)
	}
	if rerr != nil {
		return relay.Sent{}, rerr
	}
	return sent, nil
}

// quotaSpent records that the monthly quota is gone until until, and tells
// the daemon once.
func (a *Adapter) quotaSpent(until time.Time) {
	a.mu.Lock()
	known := a.quotaUntil.Equal(until)
	a.quotaUntil = until
	a.mu.Unlock()
	if known {
		return
	}
	a.log.Warn("LINE monthly message quota reached", "until", until)
	a.env.Signal(relay.HealthSignal{
		Down:   true,
		Reason: "LINE monthly message quota reached: upgrade the plan or wait until " + until.Format("2006-01-02 15:04 MST"),
		Until:  until,
		Notify: true,
	})
}

// Probe gets the bot's info, LINE's cheapest authenticated call. While
// the monthly quota is known to be spent it also asks LINE whether it
// still is (a plan change lifts it), so a working token alone does not
// bring the channel back up before pushes can succeed.
func (a *Adapter) Probe(ctx context.Context) error {
	if a.closed.Load() {
		return relay.Errorf(relay.KindTemporary, "line: %w", relay.ErrClosed)
	}
	c, err := a.client(ctx)
	if err != nil {
		return relay.Errorf(relay.KindAuth, "%w", err)
	}
	if err := a.checkQuota(c); err != nil {
		return err
	}
	res, _, err := c.GetBotInfoWithHttpInfo()
	return a.callError("bot info", res, err)
}

// checkQuota returns the quota error while the monthly quota is spent, and
// clears it (signalling recovery) once LINE reports room again or the month
// has turned.
func (a *Adapter) checkQuota(c *messaging_api.MessagingApiAPI) error {
	a.mu.Lock()
	until := a.quotaUntil
	a.mu.Unlock()
	if until.IsZero() {
		return nil
	}
	now := a.now()
	if now.Before(until) {
		res, quota, err := c.GetMessageQuotaWithHttpInfo()
		if err := a.callError("message quota", res, err); err != nil {
			return err
		}
		res, used, err := c.GetMessageQuotaConsumptionWithHttpInfo()
		if err := a.callError("quota consumption", res, err); err != nil {
			return err
		}
		if quota.Type != messaging_api.QuotaType_NONE && used.TotalUsage >= quota.Value {
			rerr := relay.Errorf(relay.KindAuth, "line: LINE monthly message quota reached (%d of %d sent; renews %s)",
				used.TotalUsage, quota.Value, until.Format("2006-01-02 15:04 MST"))
			rerr.RetryAfter = until.Sub(now)
			return rerr
		}
	}
	a.mu.Lock()
	cleared := a.quotaUntil.Equal(until)
	if cleared {
		a.quotaUntil = time.Time{}
	}
	a.mu.Unlock()
	if cleared {
		a.log.Info("LINE monthly message quota available again")
		a.env.Signal(relay.HealthSignal{Down: false, Reason: "LINE monthly message quota available again"})
	}
	return nil
}

// callError turns the result of a read-only SDK call into nil or a
// classified error. Nothing was sent, so no answer is temporary, never
// ambiguous.
func (a *Adapter) callError(op string, res *http.Response, err error) error {
	if res == nil {
		if err == nil {
			return nil
		}
		return classifyTransport(op, err, false)
	}
	if res.StatusCode/100 == 2 {
		if err != nil {
			return relay.Errorf(relay.KindTemporary, "line: %s: %w", op, err)
		}
		return nil
	}
	body, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	_, rerr, _ := classifyHTTP(op, res.StatusCode, res.Header, body, a.now())
	if rerr == nil {
		return relay.Errorf(relay.KindTemporary, "line: %s: unexpected %d", op, res.StatusCode)
	}
	return rerr
}

// Close releases idle connections. It may be called more than once.
func (a *Adapter) Close() error {
	if a.closed.Swap(true) {
		return nil
	}
	a.httpc.CloseIdleConnections()
	return nil
}
