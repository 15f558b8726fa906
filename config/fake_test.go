package config

import (
	"errors"
	"strings"

	"github.com/relay-project/relay/relay"
)

// fakeConfig is the config struct of the "fake" adapter type registered
// for these tests: a secret with its _file twin, a URL, a list and a nested
// table, like a real network adapter's.
type fakeConfig struct {
	Token     string   `toml:"token"`
	TokenFile string   `toml:"token_file"`
	APIURL    string   `toml:"api_url"`
	Tags      []string `toml:"tags"`
	Nested    struct {
		Header string `toml:"header"`
	} `toml:"nested"`
}

func (c *fakeConfig) Validate() []error {
	var errs []error
	if c.Token == "" {
		errs = append(errs, errors.New("token: required"))
	}
	if c.APIURL != "" && !strings.HasPrefix(c.APIURL, "http") {
		errs = append(errs, errors.New("api_url: must be an http(s) URL"))
	}
	return errs
}

func (c *fakeConfig) ValidateAddress(addr string) error {
	if strings.Trim(addr, "0123456789") != "" {
		return errors.New("must be a numeric chat id")
	}
	return nil
}

// plainConfig has neither Validate nor ValidateAddress.
type plainConfig struct {
	URL string `toml:"url"`
}

func init() {
	relay.Register(relay.Factory{Type: "fake", NewConfig: func() any { return &fakeConfig{} }, New: newNothing})
	relay.Register(relay.Factory{Type: "plain", NewConfig: func() any { return &plainConfig{} }, New: newNothing})
}

func newNothing(any, relay.Env) (relay.Adapter, error) { return nil, errors.New("not for running") }
