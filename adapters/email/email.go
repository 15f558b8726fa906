// Package email is relay's email channel: one message per SMTP session to
// a submission server, plain text in UTF-8.
//
// The SMTP client is github.com/emersion/go-smtp. Every failed command
// there returns *smtp.SMTPError with the reply code and the parsed RFC 3463
// enhanced code, and the session is driven one step at a time, so a reply
// is classified knowing which command it answered (a 550 to RCPT and a 550
// to MAIL FROM mean different things). github.com/wneessen/go-mail was
// weighed and not taken: its SendError derives the code by parsing the first
// characters of the error text, reports the enhanced code only when the
// server advertises ENHANCEDSTATUSCODES, and dial, EHLO, STARTTLS and AUTH
// failures do not come as SendError at all.
package email

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/relay-project/relay/relay"
)

func init() {
	relay.Register(relay.Factory{Type: "email", NewConfig: func() any { return &Config{} }, New: New})
}

var (
	_ relay.Adapter          = (*Adapter)(nil)
	_ relay.TextLimiter      = (*Adapter)(nil)
	_ relay.ConfigValidator  = (*Config)(nil)
	_ relay.AddressValidator = (*Config)(nil)
)

// Adapter sends email over SMTP. Each Send and Probe opens its own session,
// so it is safe for concurrent use and holds no connection between sends.
type Adapter struct {
	cfg     Config
	mode    string
	host    string
	from    *mail.Address
	helo    string
	tlsConf *tls.Config // nil for tls = "none"
	log     *slog.Logger
	now     func() time.Time
	closed  atomic.Bool
}

// New builds an email adapter from a *Config. It reads ca_file, if set, and
// touches no network.
func New(cfg any, env relay.Env) (relay.Adapter, error) {
	c, ok := cfg.(*Config)
	if !ok {
		return nil, fmt.Errorf("email: config is %T, want *email.Config", cfg)
	}
	if errs := c.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("email: %w", errors.Join(errs...))
	}
	host, _ := splitHostPort(c.SMTP)
	from, _ := mail.ParseAddress(c.From)
	a := &Adapter{
		cfg:  *c,
		mode: c.tlsMode(),
		host: host,
		from: from,
		helo: c.Helo,
		log:  env.Logger,
		now:  env.Now,
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.helo == "" {
		a.helo = defaultHelo()
	}
	if a.mode != TLSNone {
		tc := &tls.Config{
			ServerName:         host,
			MinVersion:         tls.VersionTLS12,
			InsecureSkipVerify: c.InsecureSkipVerify, // the operator's explicit choice
		}
		if c.CAFile != "" {
			pool, err := loadCAs(c.CAFile)
			if err != nil {
				return nil, err
			}
			tc.RootCAs = pool
		}
		a.tlsConf = tc
	}
	return a, nil
}

// loadCAs returns the system roots plus the certificates in file.
func loadCAs(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("ca_file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("ca_file: no PEM certificate in %s", file)
	}
	return pool, nil
}

// defaultHelo is this machine's host name, or "localhost".
func defaultHelo() string {
	h, err := os.Hostname()
	if err != nil || h == "" || strings.ContainsAny(h, " \t\r\n") {
		return "localhost"
	}
	return h
}

// TextLimit is zero: an email carries any length of text.
func (a *Adapter) TextLimit() int { return 0 }

// Send mails out.Text to out.Address in one SMTP session. The Message-ID
// is derived from out.Key and returned as the upstream id.
func (a *Adapter) Send(ctx context.Context, out *relay.Outgoing) (relay.Sent, error) {
	if a.closed.Load() {
		return relay.Sent{}, relay.Errorf(relay.KindTemporary, "email: %w", relay.ErrClosed)
	}
	to, err := parseRecipient(out.Address)
	if err != nil {
		return relay.Sent{}, relay.Errorf(relay.KindInvalid, "email: address: %v", err)
	}
	if strings.TrimSpace(out.Text) == "" && strings.TrimSpace(out.Subject) == "" {
		return relay.Sent{}, relay.Errorf(relay.KindInvalid, "email: empty message")
	}
	date := out.CreatedAt
	if date.IsZero() {
		date = a.now()
	}
	msg := compose(out, a.from, to, subjectOf(out, a.cfg.SubjectPrefix), date)

	s, err := a.open(ctx)
	if err != nil {
		return relay.Sent{}, err
	}
	defer s.close()
	st, err := s.deliver(a.from.Address, to.Address, msg.Bytes)
	if err != nil {
		return relay.Sent{}, classify(st, err, ctx.Err())
	}
	a.log.DebugContext(ctx, "email sent", "message_id", msg.MessageID, "delivery_id", out.DeliveryID)
	return relay.Sent{UpstreamID: msg.MessageID}, nil
}

// Probe connects, says EHLO, sets up TLS as configured, authenticates when
// a username is set, and ends with NOOP and QUIT.
func (a *Adapter) Probe(ctx context.Context) error {
	if a.closed.Load() {
		return relay.Errorf(relay.KindTemporary, "email: %w", relay.ErrClosed)
	}
	s, err := a.open(ctx)
	if err != nil {
		return err
	}
	defer s.close()
	if err := s.c.Noop(); err != nil {
		return classify(stageNoop, err, ctx.Err())
	}
	if err := s.c.Quit(); err != nil {
		return classify(stageNoop, err, ctx.Err())
	}
	return nil
}

// Close marks the adapter closed; it holds no connections. It may be
// called more than once.
func (a *Adapter) Close() error {
	a.closed.Store(true)
	return nil
}

// session is one SMTP connection, closed when ctx ends.
type session struct {
	c    *smtp.Client
	stop func() bool
}

// close ends the session, politely only if it is still usable.
func (s *session) close() {
	s.stop()
	s.c.Close()
}

// open dials the server and brings the session up to the point where MAIL
// can be sent: greeting, EHLO, TLS per config, AUTH when a username is set.
// Errors come classified.
func (a *Adapter) open(ctx context.Context) (*session, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", a.cfg.SMTP)
	if err != nil {
		return nil, classify(stageConnect, err, ctx.Err())
	}
	// go-smtp sets its own per-command deadlines, so the context is
	// enforced by closing the connection when it ends: every blocked read
	// or write then returns at once.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	fail := func(st stage, err error) (*session, error) {
		stop()
		conn.Close()
		return nil, classify(st, err, ctx.Err())
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}

	var c *smtp.Client
	switch a.mode {
	case TLSImplicit:
		tc := tls.Client(conn, a.tlsConf)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fail(stageTLS, err)
		}
		c = smtp.NewClient(tc)
	case TLSStartTLS:
		// NewClientStartTLS reads the greeting, says EHLO (as "localhost":
		// the library gives no way to name itself before STARTTLS) and
		// sends STARTTLS; the handshake runs with the next command.
		c, err = smtp.NewClientStartTLS(conn, a.tlsConf)
		if err != nil {
			if isStartTLSMissing(err) {
				err = errNoStartTLS
			}
			return fail(stageHello, err)
		}
	default:
		c = smtp.NewClient(conn)
	}
	a.setTimeouts(ctx, c)
	if err := c.Hello(a.helo); err != nil {
		st := stageHello
		if a.mode == TLSStartTLS {
			var se *smtp.SMTPError
			if !errors.As(err, &se) {
				st = stageTLS // the first write after STARTTLS runs the handshake
			}
		}
		return fail(st, err)
	}
	if a.cfg.Username != "" {
		if err := a.auth(c); err != nil {
			return fail(stageAuth, err)
		}
	}
	return &session{c: c, stop: stop}, nil
}

// setTimeouts bounds every command by the context's deadline. go-smtp
// sets (and clears) a deadline around each command; without this it would
// replace ours with its RFC 5321 defaults of minutes.
func (a *Adapter) setTimeouts(ctx context.Context, c *smtp.Client) {
	if dl, ok := ctx.Deadline(); ok {
		left := max(time.Until(dl), time.Millisecond)
		c.CommandTimeout = left
		c.SubmissionTimeout = left
	}
}

// auth authenticates with PLAIN, or LOGIN when the server offers only that.
func (a *Adapter) auth(c *smtp.Client) error {
	var mech sasl.Client
	switch {
	case c.SupportsAuth(sasl.Plain):
		mech = sasl.NewPlainClient("", a.cfg.Username, a.cfg.Password)
	case c.SupportsAuth(sasl.Login):
		mech = sasl.NewLoginClient(a.cfg.Username, a.cfg.Password)
	default:
		return errNoAuth
	}
	return c.Auth(mech)
}

// deliver runs one mail transaction and QUIT. It returns the stage of a
// failure for classification.
func (s *session) deliver(from, to string, msg []byte) (stage, error) {
	var opts *smtp.MailOptions
	if !isASCII(to) {
		if ok, _ := s.c.Extension("SMTPUTF8"); !ok {
			return stageMail, relay.Errorf(relay.KindInvalid, "email: the server does not support SMTPUTF8, needed for %q", to)
		}
		opts = &smtp.MailOptions{UTF8: true}
	}
	if err := s.c.Mail(from, opts); err != nil {
		return stageMail, err
	}
	if err := s.c.Rcpt(to, nil); err != nil {
		return stageRcpt, err
	}
	w, err := s.c.Data()
	if err != nil {
		return stageData, err
	}
	if _, err := w.Write(msg); err != nil {
		return stageData, err
	}
	// From here the final dot may reach the server: a lost reply leaves
	// the outcome unknown.
	if _, err := w.CloseWithResponse(); err != nil {
		return stageDataEnd, err
	}
	// The message is accepted; a failed QUIT changes nothing.
	_ = s.c.Quit()
	return "", nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
