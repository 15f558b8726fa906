package telegram

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// DefaultAPIURL is the Bot API server; a self-hosted telegram-bot-api
// server or a test fake replaces it through api_url.
const DefaultAPIURL = "https://api.telegram.org"

// DefaultPollTimeout is the getUpdates long-poll timeout in seconds.
const DefaultPollTimeout = 30

// maxPollTimeout is the server's clamp (LONG_POLL_MAX_TIMEOUT in
// tdlib/telegram-bot-api Client.h); a larger value would only be cut down.
const maxPollTimeout = 50

// Receive modes.
const (
	ReceiveNone    = ""
	ReceivePoll    = "poll"
	ReceiveWebhook = "webhook"
)

// Config is a [channels.NAME] table with type = "telegram".
type Config struct {
	// Token is the bot token from @BotFather ("123456:ABC-...").
	Token     string `toml:"token"`
	TokenFile string `toml:"token_file"`
	// APIURL is the Bot API base URL, without the /bot<token>/ path.
	APIURL string `toml:"api_url"`
	// Receive takes customer messages: "" (send only), "poll"
	// (getUpdates long polling) or "webhook" (Telegram POSTs to
	// /v1/inbound/telegram/{channel}).
	Receive string `toml:"receive"`
	// WebhookSecret is the secret_token given to setWebhook; Telegram
	// echoes it in X-Telegram-Bot-Api-Secret-Token. Required for webhook.
	WebhookSecret     string `toml:"webhook_secret"`
	WebhookSecretFile string `toml:"webhook_secret_file"`
	// WebhookURL, when set, is registered with setWebhook at Start: the
	// public https URL that reaches this daemon's
	// /v1/inbound/telegram/{channel}. Empty: register it yourself.
	WebhookURL string `toml:"webhook_url"`
	// PollTimeout is the long-poll timeout in seconds (default 30, at
	// most 50).
	PollTimeout int `toml:"poll_timeout"`
}

// secretTokenRE is setWebhook's rule for secret_token: 1-256 characters
// A-Z, a-z, 0-9, _ and - (Bot API doc, setWebhook; server check in
// tdlib/telegram-bot-api Client.cpp).
var secretTokenRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,256}$`)

// tokenRE is the shape of a bot token: the bot's numeric id, a colon, and
// a secret of URL-safe characters. The check keeps a pasted token with a
// stray slash or space from producing a confusing URL.
var tokenRE = regexp.MustCompile(`^[0-9]+:[A-Za-z0-9_-]+$`)

// usernameRE is a public chat's @username (5-32 characters).
var usernameRE = regexp.MustCompile(`^@[A-Za-z0-9_]{5,32}$`)

// Validate returns every problem in the config, each naming its key.
// Errors never repeat the secret values.
func (c *Config) Validate() []error {
	var errs []error
	switch {
	case c.Token == "":
		errs = append(errs, errors.New("token: required (the bot token from @BotFather)"))
	case !tokenRE.MatchString(c.Token):
		errs = append(errs, errors.New(`token: not a bot token (want "<bot id>:<secret>")`))
	}
	if c.APIURL != "" {
		if err := checkHTTPURL(c.APIURL); err != nil {
			errs = append(errs, fmt.Errorf("api_url: %v", err))
		}
	}
	switch c.Receive {
	case ReceiveNone, ReceivePoll, ReceiveWebhook:
	default:
		errs = append(errs, fmt.Errorf(`receive: %q is not "", "poll" or "webhook"`, c.Receive))
	}
	if c.Receive == ReceiveWebhook {
		switch {
		case c.WebhookSecret == "":
			errs = append(errs, errors.New(`webhook_secret: required when receive = "webhook"`))
		case !secretTokenRE.MatchString(c.WebhookSecret):
			errs = append(errs, errors.New("webhook_secret: must be 1-256 characters of A-Z, a-z, 0-9, _ and -"))
		}
	}
	if c.WebhookURL != "" {
		if c.Receive != ReceiveWebhook {
			errs = append(errs, errors.New(`webhook_url: only used with receive = "webhook"`))
		}
		u, err := url.Parse(c.WebhookURL)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			errs = append(errs, errors.New("webhook_url: must be an absolute https URL (Telegram only delivers to https)"))
		}
	}
	if c.PollTimeout < 0 || c.PollTimeout > maxPollTimeout {
		errs = append(errs, fmt.Errorf("poll_timeout: %d is outside 0..%d seconds", c.PollTimeout, maxPollTimeout))
	}
	return errs
}

// ValidateAddress checks a contact's telegram address: a numeric chat id
// (negative for groups) or a public @channelusername.
func (c *Config) ValidateAddress(addr string) error {
	_, _, err := parseAddress(addr)
	return err
}

// parseAddress returns the chat id or the @username of addr.
func parseAddress(addr string) (id int64, username string, err error) {
	addr = strings.TrimSpace(addr)
	if strings.HasPrefix(addr, "@") {
		if !usernameRE.MatchString(addr) {
			return 0, "", fmt.Errorf("telegram address %q: a @username has 5-32 letters, digits or _", addr)
		}
		return 0, addr, nil
	}
	id, err = strconv.ParseInt(addr, 10, 64)
	if err != nil || id == 0 {
		return 0, "", fmt.Errorf("telegram address %q: want a numeric chat id or @channelusername", addr)
	}
	return id, "", nil
}

func checkHTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return errors.New("want an absolute http(s) URL")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return errors.New("must not have a query or fragment")
	}
	return nil
}

// withDefaults returns a copy with zero values replaced by defaults.
func (c Config) withDefaults() Config {
	if c.APIURL == "" {
		c.APIURL = DefaultAPIURL
	}
	if c.PollTimeout == 0 {
		c.PollTimeout = DefaultPollTimeout
	}
	return c
}

// endpoint is the SDK's fmt format for a method URL: token, then method
// (tgbotapi.APIEndpoint is "https://api.telegram.org/bot%s/%s").
func (c Config) endpoint() string {
	base := strings.TrimRight(c.APIURL, "/")
	return strings.ReplaceAll(base, "%", "%%") + "/bot%s/%s"
}
