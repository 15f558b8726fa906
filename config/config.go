// Package config loads relay's one TOML file: strict decoding (unknown keys
// are problems), ${ENV} expansion, secrets from X_file, defaults, and
// validation that reports every problem at once, each with its key path and
// line.
package config

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/relay-project/relay/relay"
)

// Defaults for keys the file may leave out.
const (
	DefaultListen            = "127.0.0.1:8780"
	DefaultStorePath         = "relay.db"
	DefaultSynchronous       = "FULL"
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultTTL               = 24 * time.Hour
	DefaultAttemptTimeout    = 10 * time.Second
	DefaultRetryMin          = 5 * time.Second
	DefaultRetryMax          = 5 * time.Minute
	DefaultRateLimitWait     = 5 * time.Second
	DefaultShutdownTimeout   = 10 * time.Second
	DefaultWorkers           = 16
	DefaultConcurrency       = 4
	DefaultHealthInterval    = 30 * time.Second
	DefaultHealthTimeout     = 5 * time.Second
	DefaultHealthFall        = 3
	DefaultHealthRise        = 2
	DefaultAutoReplyEvery    = 24 * time.Hour
	DefaultInboundMaxLength  = 4000
	DefaultInboundPerHour    = 20
)

// Scopes a token may hold.
const (
	ScopeSend  = "send"
	ScopeRead  = "read"
	ScopeAdmin = "admin"
)

// Config is a loaded, expanded and validated configuration.
type Config struct {
	// Path is the file it was read from.
	Path string

	Server struct {
		// Listen is "host:port" or "unix:/path".
		Listen            string
		Tokens            []Token
		ReadHeaderTimeout time.Duration
	}
	Store struct {
		// Path is the SQLite file, relative to the working directory; empty
		// when DSN is set.
		Path string
		// DSN is a PostgreSQL connection string; empty for SQLite.
		DSN string
		// Synchronous is SQLite's synchronous pragma: "FULL" or "NORMAL".
		Synchronous string
	}
	Delivery struct {
		TTL, AttemptTimeout, RetryMin, RetryMax, RateLimitWait, ShutdownTimeout time.Duration
		// Admin is the contact that gets notices; empty for none.
		Admin   string
		Workers int
	}
	Routing struct {
		// Default is the route of contacts without their own, filtered to
		// the channels where the contact has an address.
		Default []string
	}
	Channels map[string]*Channel
	// ChannelOrder lists the channel names in the order of the file.
	ChannelOrder []string
	Contacts     map[string]*Contact
	// ContactOrder lists the contact names in the order of the file.
	ContactOrder []string
	// Groups maps a group name to its member contacts.
	Groups  map[string][]string
	Inbound struct {
		// ForwardTo names the contacts customer messages are forwarded to.
		ForwardTo      []string
		AutoReply      string
		AutoReplyEvery time.Duration
		// MaxLength is the longest inbound text kept, in characters.
		MaxLength int
		// RatePerHour caps inbound messages per sender and hour; 0 is no cap.
		RatePerHour int
		// FormToken, when set, is required from the website form endpoint.
		FormToken string
	}
}

// Token is one API client's credential.
type Token struct {
	Name   string
	Secret string
	// SendTo, when non-empty, limits the recipients this token may address
	// to these contacts and "group:NAME" groups.
	SendTo []string
	// Scopes are some of "send", "read", "admin".
	Scopes []string
}

// HasScope reports whether the token holds scope.
func (t Token) HasScope(scope string) bool {
	for _, s := range t.Scopes {
		if s == scope {
			return true
		}
	}
	return false
}

// Channel is one configured adapter instance, [channels.NAME].
type Channel struct {
	Name string
	Type string
	// Health configures active probes and state changes.
	Health Health
	// Concurrency is how many sends may run on this channel at once.
	Concurrency int
	// MaxRate caps sends per second; 0 is no cap.
	MaxRate float64
	// Settings is the adapter's own config struct (a pointer, as returned
	// by the factory's NewConfig), decoded, expanded and with secrets read
	// from their X_file. Pass it to relay.Factory.New.
	Settings any
}

// Health is a channel's health-check settings.
type Health struct {
	Interval, Timeout time.Duration
	Fall, Rise        int
}

// Contact is a named person.
type Contact struct {
	Name string
	// Route is the ordered list of channels to try; every one has an
	// address in Addresses.
	Route []string
	// Addresses maps a channel name to this contact's address there.
	Addresses map[string]string
}

// Directory returns the contacts and groups as the dispatcher uses them.
// It builds a new, independent Directory on each call.
func (c *Config) Directory() *relay.Directory {
	d := &relay.Directory{
		Contacts: make(map[string]*relay.Contact, len(c.Contacts)),
		Groups:   make(map[string][]string, len(c.Groups)),
	}
	for name, ct := range c.Contacts {
		addrs := make(map[string]string, len(ct.Addresses))
		for k, v := range ct.Addresses {
			addrs[k] = v
		}
		d.Contacts[name] = &relay.Contact{Name: name, Route: append([]string(nil), ct.Route...), Addresses: addrs}
	}
	for name, members := range c.Groups {
		d.Groups[name] = append([]string(nil), members...)
	}
	return d
}

// Find returns the configuration file's path: flag (from -c) when set, else
// $RELAY_CONFIG, else ./relay.toml when it exists, else
// /etc/relay/relay.toml.
func Find(flag string) string {
	if flag != "" {
		return flag
	}
	if env := os.Getenv("RELAY_CONFIG"); env != "" {
		return env
	}
	if _, err := os.Stat("relay.toml"); err == nil {
		return "relay.toml"
	}
	return "/etc/relay/relay.toml"
}

// Load reads the file at path and returns its configuration. When the file
// has problems the error is Problems, listing all of them.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes, expands and validates data, the contents of the file at
// path (path is used in problems and stored in Config.Path; secret files
// named in data are read from disk). When there are problems the error is
// Problems, listing all of them.
func Parse(path string, data []byte) (*Config, error) {
	l := &loader{c: &collector{file: path, index: buildLineIndex(data)}, cfg: &Config{Path: path}}
	l.load(data)
	if len(l.c.list) > 0 {
		sortProblems(l.c.list)
		return nil, l.c.list
	}
	return l.cfg, nil
}

// AsProblems returns the problems in err, if it is (or wraps) Problems.
func AsProblems(err error) (Problems, bool) {
	var ps Problems
	ok := errors.As(err, &ps)
	return ps, ok
}
