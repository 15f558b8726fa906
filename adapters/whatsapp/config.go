package whatsapp

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Config is the [channels.NAME] table of a WhatsApp channel. Zero values
// take the defaults below, applied in New.
type Config struct {
	// Session is the SQLite file holding the linked-device session
	// (whatsmeow's sqlstore). Default "whatsapp.db". One process per file:
	// a second connection with the same keys gets StreamReplaced.
	Session string `toml:"session"`
	// Dialect selects the session database: "sqlite" (default, Session is
	// the file) or "postgres" (DSN is a PostgreSQL URL, opened with pgx).
	Dialect string `toml:"dialect"`
	// DSN is the session database address for dialect "postgres". It may
	// hold a password, so it may be given as dsn_file.
	DSN     string `toml:"dsn"`
	DSNFile string `toml:"dsn_file"`

	// RecipientInterval is the least time between two sends to one
	// recipient. Default "3s".
	RecipientInterval string `toml:"recipient_interval"`
	// SendsPerMinute caps all sends of the channel. Default 20.
	SendsPerMinute int `toml:"sends_per_minute"`
	// BulkRecipients is how many different recipients may get the same
	// text within BulkWindow; one more is refused (rate limited). Default 5.
	BulkRecipients int `toml:"bulk_recipients"`
	// BulkWindow is the window of BulkRecipients. Default "10m".
	BulkWindow string `toml:"bulk_window"`
}

// Defaults. The pacing numbers stay well under what a person typing on a
// phone does, because WhatsApp bans numbers that send like a bot: temporary
// ban 101 (messages to people who do not have you in their address book)
// and 104 (the same message to too many people) are the ones an alerting
// daemon can trip.
const (
	defaultSession           = "whatsapp.db"
	defaultDialect           = "sqlite"
	defaultRecipientInterval = 3 * time.Second
	defaultSendsPerMinute    = 20
	defaultBulkRecipients    = 5
	defaultBulkWindow        = 10 * time.Minute
)

// settings is Config with defaults applied and durations parsed.
type settings struct {
	session           string
	dialect           string
	dsn               string
	recipientInterval time.Duration
	sendsPerMinute    int
	bulkRecipients    int
	bulkWindow        time.Duration
}

// Validate checks the config; every error starts with its key.
func (c *Config) Validate() []error {
	_, errs := c.settings()
	return errs
}

// ValidateAddress checks a contact's WhatsApp address: a phone number in
// international form ("+82 10-1234-5678"), or a WhatsApp JID.
func (c *Config) ValidateAddress(addr string) error {
	_, _, err := parseAddress(addr)
	return err
}

func (c *Config) settings() (settings, []error) {
	s := settings{
		session:           c.Session,
		dialect:           c.Dialect,
		dsn:               c.DSN,
		recipientInterval: defaultRecipientInterval,
		sendsPerMinute:    c.SendsPerMinute,
		bulkRecipients:    c.BulkRecipients,
		bulkWindow:        defaultBulkWindow,
	}
	var errs []error
	if s.dialect == "" {
		s.dialect = defaultDialect
	}
	switch s.dialect {
	case "sqlite":
		if s.dsn != "" {
			errs = append(errs, errors.New(`dsn: only used with dialect = "postgres"; SQLite uses session`))
		}
		if s.session == "" {
			s.session = defaultSession
		}
		if strings.ContainsAny(s.session, "?#") {
			errs = append(errs, fmt.Errorf("session: %q: the path may not contain '?' or '#'", s.session))
		}
	case "postgres":
		if s.dsn == "" {
			errs = append(errs, errors.New(`dsn: required with dialect = "postgres"`))
		}
		if s.session != "" {
			errs = append(errs, errors.New(`session: not used with dialect = "postgres"; the session lives at dsn`))
		}
	default:
		errs = append(errs, fmt.Errorf("dialect: %q: want \"sqlite\" or \"postgres\"", s.dialect))
	}
	if c.RecipientInterval != "" {
		d, err := time.ParseDuration(c.RecipientInterval)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("recipient_interval: %q: want a positive duration such as \"3s\"", c.RecipientInterval))
		}
		s.recipientInterval = d
	}
	if c.BulkWindow != "" {
		d, err := time.ParseDuration(c.BulkWindow)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("bulk_window: %q: want a positive duration such as \"10m\"", c.BulkWindow))
		}
		s.bulkWindow = d
	}
	switch {
	case s.sendsPerMinute < 0:
		errs = append(errs, fmt.Errorf("sends_per_minute: %d: may not be negative", s.sendsPerMinute))
	case s.sendsPerMinute == 0:
		s.sendsPerMinute = defaultSendsPerMinute
	}
	switch {
	case s.bulkRecipients < 0:
		errs = append(errs, fmt.Errorf("bulk_recipients: %d: may not be negative", s.bulkRecipients))
	case s.bulkRecipients == 0:
		s.bulkRecipients = defaultBulkRecipients
	}
	return s, errs
}
