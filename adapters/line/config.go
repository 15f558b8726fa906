package line

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
)

// DefaultAPIURL is the LINE Messaging API's base URL.
const DefaultAPIURL = "https://api.line.me"

// Config is the [channels.NAME] table of a channel with type = "line".
type Config struct {
	// ChannelAccessToken is the long-lived channel access token (Messaging
	// API console, "Channel access token").
	ChannelAccessToken     string `toml:"channel_access_token"`
	ChannelAccessTokenFile string `toml:"channel_access_token_file"`
	// ChannelSecret verifies the X-Line-Signature of webhook requests. It
	// is needed only to receive messages; without it every webhook request
	// is refused.
	ChannelSecret     string `toml:"channel_secret"`
	ChannelSecretFile string `toml:"channel_secret_file"`
	// APIURL is the Messaging API base URL; tests point it at a fake.
	APIURL string `toml:"api_url"`
}

// Validate reports every problem with the table, each starting with its key.
func (c *Config) Validate() []error {
	var errs []error
	if c.ChannelAccessToken == "" && c.ChannelAccessTokenFile == "" {
		errs = append(errs, errors.New("channel_access_token: required (or channel_access_token_file)"))
	}
	if c.APIURL != "" {
		if err := checkAPIURL(c.APIURL); err != nil {
			errs = append(errs, fmt.Errorf("api_url: %w", err))
		}
	}
	return errs
}

// String hides the secrets, so a config printed by mistake leaks nothing.
func (c Config) String() string {
	return fmt.Sprintf("line.Config{channel_access_token:%s channel_secret:%s api_url:%q}",
		redacted(c.ChannelAccessToken), redacted(c.ChannelSecret), c.APIURL)
}

// GoString is String, for %#v.
func (c Config) GoString() string { return c.String() }

func redacted(s string) string {
	if s == "" {
		return `""`
	}
	return "[redacted]"
}

func checkAPIURL(s string) error {
	u, err := url.ParseRequestURI(s)
	if err != nil {
		return errors.New("not an absolute URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("scheme %q: want https (or http)", u.Scheme)
	}
	if u.Host == "" {
		return errors.New("no host")
	}
	if u.User != nil {
		return errors.New("credentials in the URL are not allowed; use channel_access_token")
	}
	return nil
}

// addressRE is the shape of the IDs LINE gives a push target: a user ID
// (U), a group chat ID (C) or a multi-person chat ID (R), each followed by
// 32 lowercase hex digits (developers.line.biz, "Get user IDs" and the
// webhook source object).
var addressRE = regexp.MustCompile(`^[UCR][0-9a-f]{32}$`)

// ValidateAddress checks that addr is a LINE user, group or room ID. A
// LINE ID ("@shop", a display name) is not an address: the Messaging API
// only takes the opaque IDs that webhooks carry.
func (c *Config) ValidateAddress(addr string) error {
	if !addressRE.MatchString(addr) {
		return fmt.Errorf("line address %q: want a user ID (U + 32 hex digits), a group ID (C…) or a room ID (R…), as webhook events carry it", addr)
	}
	return nil
}
