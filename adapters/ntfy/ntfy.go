// Package ntfy is the relay adapter for ntfy (https://ntfy.sh or a
// self-hosted server): one message is one publish to a topic.
//
// Wire format: https://docs.ntfy.sh/publish/#publish-as-json. The JSON
// publish API (POST {api_url}/ with {"topic","message","title",...}) is used
// instead of headers because it carries UTF-8 titles without RFC 2047.
package ntfy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/relay-project/relay/relay"
)

func init() {
	relay.Register(relay.Factory{Type: "ntfy", NewConfig: func() any { return &Config{} }, New: New})
}

var (
	_ relay.Adapter          = (*Adapter)(nil)
	_ relay.TextLimiter      = (*Adapter)(nil)
	_ relay.ConfigValidator  = (*Config)(nil)
	_ relay.AddressValidator = (*Config)(nil)
)

// TextLimit is the longest text of one publish, in runes. ntfy's default
// message-size-limit is 4096 bytes (server/config.go DefaultMessageSizeLimit);
// a longer body becomes an attachment or is refused. 1024 runes are at most
// 4096 bytes of UTF-8 whatever the script (Hangul is 3 bytes a rune, emoji 4).
const TextLimit = 1024

// maxResponse bounds how much of a response body is read.
const maxResponse = 64 << 10

// Priorities of ntfy (https://docs.ntfy.sh/publish/#message-priority).
const (
	priorityDefault = 3
	priorityHigh    = 4
)

// Adapter publishes to ntfy topics.
type Adapter struct {
	cfg    Config
	base   string
	client *http.Client
	log    *slog.Logger
	once   sync.Once
}

// New builds an ntfy adapter from a *Config. It does not touch the network.
func New(cfg any, env relay.Env) (relay.Adapter, error) {
	c, ok := cfg.(*Config)
	if !ok {
		return nil, fmt.Errorf("ntfy: config is %T, want *ntfy.Config", cfg)
	}
	if errs := c.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("ntfy: %w", errs[0])
	}
	a := &Adapter{cfg: *c, log: env.Logger}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	a.base = strings.TrimRight(c.APIURL, "/")
	if a.base == "" {
		a.base = DefaultAPIURL
	}
	a.client = &http.Client{
		// A redirect would drop or leak the Authorization header: refuse it.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return a, nil
}

// TextLimit implements relay.TextLimiter.
func (a *Adapter) TextLimit() int { return TextLimit }

// publishRequest is the JSON publish body.
type publishRequest struct {
	Topic    string   `json:"topic"`
	Message  string   `json:"message"`
	Title    string   `json:"title,omitempty"`
	Priority int      `json:"priority"`
	Tags     []string `json:"tags,omitempty"`
}

// publishResponse is the part of ntfy's message JSON we use.
type publishResponse struct {
	ID string `json:"id"`
}

// Send publishes out.Text to the topic out.Address.
func (a *Adapter) Send(ctx context.Context, out *relay.Outgoing) (relay.Sent, error) {
	if err := a.cfg.ValidateAddress(out.Address); err != nil {
		return relay.Sent{}, relay.Errorf(relay.KindPermanent, "ntfy: %v", err)
	}
	if strings.TrimSpace(out.Text) == "" {
		return relay.Sent{}, relay.Errorf(relay.KindInvalid, "ntfy: empty message")
	}
	p := publishRequest{
		Topic:    out.Address,
		Message:  out.Text,
		Title:    out.Subject,
		Priority: priorityDefault,
		Tags:     a.cfg.DefaultTags,
	}
	if out.Priority == relay.PriorityHigh {
		p.Priority = priorityHigh
	}
	body, err := json.Marshal(p)
	if err != nil {
		return relay.Sent{}, relay.Errorf(relay.KindInvalid, "ntfy: encode: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.base+"/", bytes.NewReader(body))
	if err != nil {
		return relay.Sent{}, relay.Errorf(relay.KindAuth, "ntfy: bad api_url: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	a.authorize(req)
	resp, err := a.client.Do(req)
	if err != nil {
		return relay.Sent{}, classifyTransport("publish", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return relay.Sent{}, classifyResponse(resp.StatusCode, resp.Header, raw)
	}
	var pr publishResponse
	if err != nil || json.Unmarshal(raw, &pr) != nil {
		// ntfy answered 2xx: the message is published, only its id is lost.
		a.log.Warn("ntfy: unreadable publish response", "status", resp.StatusCode)
	}
	return relay.Sent{UpstreamID: pr.ID}, nil
}

// Probe checks the server's health endpoint (GET /v1/health, which needs
// no auth) and, when credentials are configured, that they are accepted
// (GET /v1/account answers 401 to a bad token or password).
func (a *Adapter) Probe(ctx context.Context) error {
	var health struct {
		Healthy bool `json:"healthy"`
	}
	if err := a.getJSON(ctx, "/v1/health", false, &health); err != nil {
		return err
	}
	if !health.Healthy {
		return relay.Errorf(relay.KindTemporary, "ntfy: server reports unhealthy")
	}
	if a.cfg.Token == "" && a.cfg.Username == "" {
		return nil
	}
	var account struct {
		Username string `json:"username"`
	}
	if err := a.getJSON(ctx, "/v1/account", true, &account); err != nil {
		return err
	}
	// ntfy answers an unauthenticated /v1/account with the anonymous user "*".
	if account.Username == "" || account.Username == "*" {
		return relay.Errorf(relay.KindAuth, "ntfy: credentials not recognised (anonymous account)")
	}
	return nil
}

func (a *Adapter) getJSON(ctx context.Context, path string, auth bool, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+path, nil)
	if err != nil {
		return relay.Errorf(relay.KindAuth, "ntfy: bad api_url: %w", err)
	}
	if auth {
		a.authorize(req)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return classifyTransport("probe", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return classifyResponse(resp.StatusCode, resp.Header, raw)
	}
	if err != nil {
		return classifyTransport("probe", err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return relay.Errorf(relay.KindTemporary, "ntfy: %s: unreadable response: %w", path, err)
	}
	return nil
}

func (a *Adapter) authorize(req *http.Request) {
	switch {
	case a.cfg.Token != "":
		req.Header.Set("Authorization", "Bearer "+a.cfg.Token)
	case a.cfg.Username != "":
		req.SetBasicAuth(a.cfg.Username, a.cfg.Password)
	}
}

// Close releases idle connections. It may be called more than once.
func (a *Adapter) Close() error {
	a.once.Do(a.client.CloseIdleConnections)
	return nil
}
