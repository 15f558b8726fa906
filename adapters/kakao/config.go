package kakao

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode"
)

// Default upstream base URLs.
const (
	DefaultAPIURL  = "https://kapi.kakao.com"
	DefaultAuthURL = "https://kauth.kakao.com"
)

// AddressMe is the address that sends to the logged-in user's own chat
// ("나에게 보내기"); every other address is a friend UUID.
const AddressMe = "me"

// Config is the [channels.NAME] table of a kakao channel. Secrets may be
// given as X_file; the config package reads the file into X before New.
type Config struct {
	// RestAPIKey is the app's REST API key, the OAuth client_id.
	RestAPIKey     string `toml:"rest_api_key"`
	RestAPIKeyFile string `toml:"rest_api_key_file"`
	// ClientSecret is needed only when the app turns client secrets on.
	ClientSecret     string `toml:"client_secret"`
	ClientSecretFile string `toml:"client_secret_file"`
	// RefreshToken optionally bootstraps the channel: when the store holds
	// no tokens yet, an access token is obtained from it. Refreshed and
	// rotated tokens live in the store, never here.
	RefreshToken     string `toml:"refresh_token"`
	RefreshTokenFile string `toml:"refresh_token_file"`
	// LinkURL is the text template's required link (web_url and
	// mobile_web_url); its domain must be registered in the Kakao app.
	LinkURL string `toml:"link_url"`
	// APIURL is the kapi base URL, AuthURL the kauth base URL.
	APIURL  string `toml:"api_url"`
	AuthURL string `toml:"auth_url"`
}

// Validate reports every problem of the table, each starting with its key.
func (c *Config) Validate() []error {
	var errs []error
	if strings.TrimSpace(c.RestAPIKey) == "" && c.RestAPIKeyFile == "" {
		errs = append(errs, errors.New("rest_api_key: required (the Kakao app's REST API key)"))
	}
	if strings.TrimSpace(c.LinkURL) == "" {
		errs = append(errs, errors.New("link_url: required (a page on a web domain registered in the Kakao app)"))
	} else if err := checkHTTPURL(c.LinkURL); err != nil {
		errs = append(errs, fmt.Errorf("link_url: %w", err))
	}
	if c.APIURL != "" {
		if err := checkHTTPURL(c.APIURL); err != nil {
			errs = append(errs, fmt.Errorf("api_url: %w", err))
		}
	}
	if c.AuthURL != "" {
		if err := checkHTTPURL(c.AuthURL); err != nil {
			errs = append(errs, fmt.Errorf("auth_url: %w", err))
		}
	}
	return errs
}

// ValidateAddress accepts "me" or a friend UUID as the Friends API returns
// it (URL-safe letters, digits and a few punctuation marks, no spaces).
func (c *Config) ValidateAddress(addr string) error {
	if addr == AddressMe {
		return nil
	}
	if addr == "" {
		return errors.New(`kakao address: empty; use "me" or a friend UUID`)
	}
	if len(addr) > 256 {
		return errors.New("kakao address: too long for a friend UUID")
	}
	for _, r := range addr {
		if r > unicode.MaxASCII || !(unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("-_=.", r)) {
			return fmt.Errorf(`kakao address %q: not "me" and not a friend UUID`, addr)
		}
	}
	return nil
}

func checkHTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL")
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", s)
	}
	return nil
}

// withDefaults returns a copy with zero values replaced by defaults.
func (c Config) withDefaults() Config {
	if c.APIURL == "" {
		c.APIURL = DefaultAPIURL
	}
	if c.AuthURL == "" {
		c.AuthURL = DefaultAuthURL
	}
	// Secrets read from files often end in a newline; keys and tokens
	// never contain white space.
	c.RestAPIKey = strings.TrimSpace(c.RestAPIKey)
	c.ClientSecret = strings.TrimSpace(c.ClientSecret)
	c.RefreshToken = strings.TrimSpace(c.RefreshToken)
	c.APIURL = strings.TrimRight(c.APIURL, "/")
	c.AuthURL = strings.TrimRight(c.AuthURL, "/")
	return c
}
