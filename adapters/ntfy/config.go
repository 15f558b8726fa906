package ntfy

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// DefaultAPIURL is the public ntfy server.
const DefaultAPIURL = "https://ntfy.sh"

// Config is the [channels.NAME] table of a channel with type = "ntfy".
// A contact's address on the channel is the topic name.
type Config struct {
	// APIURL is the ntfy server's base URL (default https://ntfy.sh).
	APIURL string `toml:"api_url"`
	// Token is an ntfy access token (tk_...), sent as a Bearer token.
	Token     string `toml:"token"`
	TokenFile string `toml:"token_file"`
	// Username and Password are used for Basic auth when no token is set.
	Username     string `toml:"username"`
	Password     string `toml:"password"`
	PasswordFile string `toml:"password_file"`
	// DefaultTags are added to every message (emoji short codes or words).
	DefaultTags []string `toml:"default_tags"`
}

// topicPattern is ntfy's topic charset (server.go: topicRegex).
var topicPattern = regexp.MustCompile(`^[-_A-Za-z0-9]{1,64}$`)

// Validate reports every problem with the configuration, each naming its key.
func (c *Config) Validate() []error {
	var errs []error
	if c.APIURL != "" {
		u, err := url.Parse(c.APIURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("api_url: %q is not an http(s) URL", c.APIURL))
		}
	}
	hasToken := c.Token != "" || c.TokenFile != ""
	hasPassword := c.Password != "" || c.PasswordFile != ""
	if hasToken && (c.Username != "" || hasPassword) {
		errs = append(errs, errors.New("token: give either token or username/password, not both"))
	}
	if c.Username != "" && !hasPassword {
		errs = append(errs, errors.New("password: required with username"))
	}
	if hasPassword && c.Username == "" {
		errs = append(errs, errors.New("username: required with password"))
	}
	for i, t := range c.DefaultTags {
		if strings.TrimSpace(t) == "" || strings.Contains(t, ",") {
			errs = append(errs, fmt.Errorf("default_tags: tag %d (%q) must be non-empty and contain no comma", i+1, t))
		}
	}
	return errs
}

// ValidateAddress checks a topic name.
func (c *Config) ValidateAddress(addr string) error {
	if !topicPattern.MatchString(addr) {
		return fmt.Errorf("ntfy topic %q: want 1 to 64 letters, digits, '-' or '_'", addr)
	}
	return nil
}
