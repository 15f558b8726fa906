// Package webhook is the channel that POSTs each message as JSON to a URL:
// the glue to anything that can take an HTTP request.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/relay-project/relay/adapters/internal/httpx"
	"github.com/relay-project/relay/relay"
)

func init() {
	relay.Register(relay.Factory{Type: "webhook", NewConfig: func() any { return &Config{} }, New: New})
}

// Config is [channels.NAME] for type = "webhook".
type Config struct {
	URL        string `toml:"url"`
	Secret     string `toml:"secret"`
	SecretFile string `toml:"secret_file"`
	HealthURL  string `toml:"health_url"`
}

// Validate checks the URLs.
func (c *Config) Validate() []error {
	var errs []error
	if err := checkURL(c.URL); err != nil {
		errs = append(errs, fmt.Errorf("url: %w", err))
	}
	if c.HealthURL != "" {
		if err := checkURL(c.HealthURL); err != nil {
			errs = append(errs, fmt.Errorf("health_url: %w", err))
		}
	}
	return errs
}

// ValidateAddress accepts any non-empty address: the receiver gives it meaning.
func (c *Config) ValidateAddress(addr string) error {
	if addr == "" {
		return errors.New("empty address")
	}
	return nil
}

func checkURL(s string) error {
	if s == "" {
		return errors.New("required")
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http(s) URL", s)
	}
	return nil
}

// Payload is the JSON body POSTed for every message part.
type Payload struct {
	ID         string    `json:"id"`
	DeliveryID string    `json:"delivery_id"`
	To         string    `json:"to"`
	Contact    string    `json:"contact"`
	Text       string    `json:"text"`
	Subject    string    `json:"subject,omitempty"`
	Priority   string    `json:"priority,omitempty"`
	Part       int       `json:"part,omitempty"`
	Parts      int       `json:"parts,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
}

// Adapter posts messages to one URL.
type Adapter struct {
	cfg    Config
	client *http.Client
	closed atomic.Bool
}

var (
	_ relay.Adapter    = (*Adapter)(nil)
	_ relay.Idempotent = (*Adapter)(nil)
)

// New returns a webhook adapter; it does not touch the network.
func New(cfg any, env relay.Env) (relay.Adapter, error) {
	c, ok := cfg.(*Config)
	if !ok {
		return nil, fmt.Errorf("webhook: config is %T", cfg)
	}
	return &Adapter{
		cfg: *c,
		client: &http.Client{
			// No redirects: a 3xx is the receiver's misconfiguration, and
			// following it could post a message somewhere unexpected.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			Transport: &http.Transport{
				Proxy:               http.ProxyFromEnvironment,
				DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
				MaxIdleConnsPerHost: 64,
				IdleConnTimeout:     90 * time.Second,
			},
		},
	}, nil
}

// Idempotent reports true: every POST carries the delivery_id, so a
// receiver can drop a resend after an ambiguous attempt. SPEC documents
// this for webhook receivers.
func (a *Adapter) Idempotent() bool { return true }

// Send POSTs one part. 2xx is delivered; 408/429/5xx temporary or
// rate-limited; 401/403 auth; other 4xx and 3xx permanent.
func (a *Adapter) Send(ctx context.Context, out *relay.Outgoing) (relay.Sent, error) {
	body, err := json.Marshal(Payload{
		ID: out.MessageID, DeliveryID: out.DeliveryID, To: out.Address, Contact: out.Contact,
		Text: out.Text, Subject: out.Subject, Priority: out.Priority, Part: out.Part, Parts: out.Parts,
		CreatedAt: out.CreatedAt.UTC(),
	})
	if err != nil {
		return relay.Sent{}, relay.Errorf(relay.KindInvalid, "webhook: encode: %w", err)
	}
	var wrote atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(httptrace.WroteRequestInfo) { wrote.Store(true) },
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return relay.Sent{}, relay.Errorf(relay.KindInvalid, "webhook: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "relay")
	req.Header.Set("Idempotency-Key", out.Key)
	if a.cfg.Secret != "" {
		mac := hmac.New(sha256.New, []byte(a.cfg.Secret))
		mac.Write(body)
		req.Header.Set("X-Relay-Signature", hex.EncodeToString(mac.Sum(nil)))
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return relay.Sent{}, classifyTransport(err, wrote.Load())
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if err := classifyStatus(resp); err != nil {
		return relay.Sent{}, err
	}
	return relay.Sent{UpstreamID: resp.Header.Get("X-Request-Id")}, nil
}

// Probe GETs health_url; without one the channel has no probe.
func (a *Adapter) Probe(ctx context.Context) error {
	if a.cfg.HealthURL == "" {
		return relay.ErrNoProbe
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.cfg.HealthURL, nil)
	if err != nil {
		return relay.Errorf(relay.KindInvalid, "webhook: %w", err)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return classifyTransport(err, false)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return relay.Errorf(relay.KindTemporary, "webhook: health check: %s", resp.Status)
	}
	return nil
}

// Close releases idle connections; it may be called more than once.
func (a *Adapter) Close() error {
	if a.closed.CompareAndSwap(false, true) {
		a.client.CloseIdleConnections()
	}
	return nil
}

func classifyTransport(err error, wrote bool) error {
	// The URL may carry credentials (user:pass@host); url.Error prints it
	// redacted by net/url, but keep only the operation and the cause.
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if wrote && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || isTimeout(err)) {
		return relay.Errorf(relay.KindAmbiguous, "webhook: no answer after the request was sent: %w", err)
	}
	return relay.Errorf(relay.KindTemporary, "webhook: %w", err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func classifyStatus(resp *http.Response) error {
	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		return nil
	case code == http.StatusTooManyRequests:
		return relay.RateLimited(httpx.RetryAfterOr(resp.Header, time.Now(), 0), "webhook: %s", resp.Status)
	case code == http.StatusRequestTimeout || code >= 500:
		return relay.Errorf(relay.KindTemporary, "webhook: %s", resp.Status)
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return relay.Errorf(relay.KindAuth, "webhook: %s", resp.Status)
	default:
		return relay.Errorf(relay.KindPermanent, "webhook: %s", resp.Status)
	}
}
