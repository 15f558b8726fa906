// Package console is the channel that writes each message to stdout or
// appends it to a file: a channel that works on any machine, for trying
// relay out and for tests.
package console

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/relay-project/relay/relay"
)

func init() {
	relay.Register(relay.Factory{Type: "console", NewConfig: func() any { return &Config{} }, New: New})
}

// Config is [channels.NAME] for type = "console".
type Config struct {
	// File, when set, receives the messages (appended, created 0600);
	// otherwise they go to stdout.
	File string `toml:"file"`
	// Fail makes every send fail temporarily: a channel to practise
	// failover with ("a messenger that is down").
	Fail bool `toml:"fail"`
}

// Validate has nothing to check: every setting is optional.
func (c *Config) Validate() []error { return nil }

// ValidateAddress accepts any address; it is printed as it is.
func (c *Config) ValidateAddress(addr string) error {
	if strings.ContainsAny(addr, "\r\n") {
		return errors.New("address contains a line break")
	}
	return nil
}

// Adapter prints messages.
type Adapter struct {
	cfg  Config
	name string
	now  func() time.Time

	mu     sync.Mutex
	w      io.Writer
	file   *os.File
	closed bool
}

var _ relay.Adapter = (*Adapter)(nil)

// New returns a console adapter. The file, if any, is opened on first use.
func New(cfg any, env relay.Env) (relay.Adapter, error) {
	c, ok := cfg.(*Config)
	if !ok {
		return nil, fmt.Errorf("console: config is %T", cfg)
	}
	now := env.Now
	if now == nil {
		now = time.Now
	}
	return &Adapter{cfg: *c, name: env.Name, now: now}, nil
}

// Send writes one line block: time, channel, address, subject and text.
func (a *Adapter) Send(ctx context.Context, out *relay.Outgoing) (relay.Sent, error) {
	if err := ctx.Err(); err != nil {
		return relay.Sent{}, relay.Errorf(relay.KindTemporary, "console: %w", err)
	}
	if a.cfg.Fail {
		return relay.Sent{}, relay.Errorf(relay.KindTemporary, "console: configured to fail (fail = true)")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	w, err := a.writer()
	if err != nil {
		return relay.Sent{}, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s [%s] to %s (%s)", a.now().UTC().Format(time.RFC3339), a.name, out.Contact, out.Address)
	if out.Subject != "" {
		fmt.Fprintf(&b, " subject=%q", out.Subject)
	}
	fmt.Fprintf(&b, " id=%s\n%s\n", out.MessageID, out.Text)
	if _, err := io.WriteString(w, b.String()); err != nil {
		return relay.Sent{}, relay.Errorf(relay.KindTemporary, "console: write: %w", err)
	}
	if a.file != nil {
		if err := a.file.Sync(); err != nil {
			return relay.Sent{}, relay.Errorf(relay.KindTemporary, "console: sync: %w", err)
		}
	}
	return relay.Sent{UpstreamID: out.Key}, nil
}

func (a *Adapter) writer() (io.Writer, error) {
	if a.closed {
		return nil, relay.Errorf(relay.KindTemporary, "console: %w", relay.ErrClosed)
	}
	if a.w != nil {
		return a.w, nil
	}
	if a.cfg.File == "" {
		a.w = os.Stdout
		return a.w, nil
	}
	f, err := os.OpenFile(a.cfg.File, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, relay.Errorf(relay.KindTemporary, "console: %w", err)
	}
	a.file, a.w = f, f
	return f, nil
}

// Probe reports the configured failure, or checks the file can be opened.
func (a *Adapter) Probe(ctx context.Context) error {
	if a.cfg.Fail {
		return relay.Errorf(relay.KindTemporary, "console: configured to fail (fail = true)")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	_, err := a.writer()
	return err
}

// Close closes the file; it may be called more than once.
func (a *Adapter) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closed = true
	if a.file != nil {
		err := a.file.Close()
		a.file = nil
		return err
	}
	return nil
}
