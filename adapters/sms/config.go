package sms

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode"
)

// Providers and their default API URLs.
const (
	ProviderTwilio = "twilio"
	ProviderSolapi = "solapi"

	DefaultTwilioURL = "https://api.twilio.com"
	DefaultSolapiURL = "https://api.solapi.com"
)

// Config is the [channels.NAME] table of a channel with type = "sms".
// A contact's address is a phone number, national (read in
// default_region) or international; it is normalised to E.164.
type Config struct {
	// Provider is "twilio" or "solapi".
	Provider string `toml:"provider"`
	// APIURL is the provider's base URL (defaults per provider).
	APIURL string `toml:"api_url"`

	// Twilio: Account SID (AC…), auth token, and From: an E.164 number,
	// an alphanumeric sender id, or a Messaging Service SID (MG…).
	AccountSID    string `toml:"account_sid"`
	AuthToken     string `toml:"auth_token"`
	AuthTokenFile string `toml:"auth_token_file"`

	// Solapi: API key and secret; From is a sender number registered
	// with Solapi (발신번호 사전 등록).
	APIKey        string `toml:"api_key"`
	APISecret     string `toml:"api_secret"`
	APISecretFile string `toml:"api_secret_file"`

	From string `toml:"from"`

	// MaxPerDay caps billable units per day (0 = unlimited): SMS segments
	// for Twilio (which bills per segment), messages for Solapi (which
	// bills per SMS or LMS message).
	MaxPerDay int `toml:"max_per_day"`
	// MaxPerContactPerDay caps the same units per contact (0 = unlimited).
	MaxPerContactPerDay int `toml:"max_per_contact_per_day"`
	// DefaultRegion reads national numbers ("010-1234-5678"); default KR.
	DefaultRegion string `toml:"default_region"`
	// BudgetTimezone is where a budget day starts: "Local" (default, the
	// box's zone) or an IANA name such as "Asia/Seoul".
	BudgetTimezone string `toml:"budget_timezone"`
}

func (c *Config) region() string {
	if c.DefaultRegion == "" {
		return "KR"
	}
	return strings.ToUpper(c.DefaultRegion)
}

func (c *Config) location() (*time.Location, error) {
	switch c.BudgetTimezone {
	case "", "Local", "local":
		return time.Local, nil
	}
	return time.LoadLocation(c.BudgetTimezone)
}

// Validate reports every problem with the configuration, each naming its key.
func (c *Config) Validate() []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	switch c.Provider {
	case ProviderTwilio:
		if c.AccountSID == "" {
			add("account_sid: required for provider twilio")
		} else if !strings.HasPrefix(c.AccountSID, "AC") {
			add("account_sid: %q does not start with AC", c.AccountSID)
		}
		if c.AuthToken == "" && c.AuthTokenFile == "" {
			add("auth_token: required for provider twilio")
		}
		for key, v := range map[string]string{"api_key": c.APIKey, "api_secret": c.APISecret + c.APISecretFile} {
			if v != "" {
				add("%s: only for provider solapi", key)
			}
		}
	case ProviderSolapi:
		if c.APIKey == "" {
			add("api_key: required for provider solapi")
		}
		if c.APISecret == "" && c.APISecretFile == "" {
			add("api_secret: required for provider solapi")
		}
		for key, v := range map[string]string{"account_sid": c.AccountSID, "auth_token": c.AuthToken + c.AuthTokenFile} {
			if v != "" {
				add("%s: only for provider twilio", key)
			}
		}
	case "":
		add("provider: required: %q or %q", ProviderTwilio, ProviderSolapi)
	default:
		add("provider: %q is not %q or %q", c.Provider, ProviderTwilio, ProviderSolapi)
	}
	if c.APIURL != "" {
		u, err := url.Parse(c.APIURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add("api_url: %q is not an http(s) URL", c.APIURL)
		}
	}
	if _, ok := regions[c.region()]; !ok {
		add("default_region: %q is not one of the known regions (KR, US, JP, ...)", c.DefaultRegion)
	}
	if c.From == "" {
		add("from: required")
	} else if err := c.validateFrom(); err != nil {
		add("from: %v", err)
	}
	if c.MaxPerDay < 0 {
		add("max_per_day: must not be negative")
	}
	if c.MaxPerContactPerDay < 0 {
		add("max_per_contact_per_day: must not be negative")
	}
	if _, err := c.location(); err != nil {
		add("budget_timezone: %v", err)
	}
	return errs
}

func (c *Config) validateFrom() error {
	switch c.Provider {
	case ProviderTwilio:
		// A Messaging Service SID or an alphanumeric sender id is passed as is.
		if strings.IndexFunc(c.From, unicode.IsLetter) >= 0 {
			return nil
		}
		_, err := NormalizePhone(c.From, c.region())
		return err
	case ProviderSolapi:
		e164, err := NormalizePhone(c.From, "KR")
		if err != nil {
			return err
		}
		if _, ok := nationalKR(e164); !ok {
			return errors.New("solapi sends from a registered Korean number")
		}
	}
	return nil
}

// ValidateAddress checks a contact's phone number.
func (c *Config) ValidateAddress(addr string) error {
	_, err := c.recipient(addr)
	return err
}

// recipient returns the address in the form the provider takes: E.164
// for Twilio, the national Korean form for Solapi.
func (c *Config) recipient(addr string) (string, error) {
	e164, err := NormalizePhone(addr, c.region())
	if err != nil {
		return "", err
	}
	if c.Provider == ProviderSolapi {
		national, ok := nationalKR(e164)
		if !ok {
			return "", fmt.Errorf("%w: solapi sends to Korean numbers (+82) only, not %s", ErrBadPhone, e164)
		}
		return national, nil
	}
	return e164, nil
}
